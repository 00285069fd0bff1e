"""Spur's I/O edge: everything that touches sockets, TLS, asyncio, files or the
environment on behalf of the others, so that spurcore stays pure.

- ``spurio.rpc``: the RPC transport (blocking client for the tools, asyncio connections
  and servers for the daemons, TLS contexts, peer identity); frames come from the pure
  ``spurcore.frames``.
- ``spurio.client``: the cluster client the tools use (replica choice, leader cache,
  retries).
- ``spurio.config``: spur.toml (and slurm.conf) read from disk, config discovery.
- ``spurio.pki``: a throw-away PKI for tests and local clusters.
- ``spurio.fs``: durable file writes (the one atomic-write).
"""
