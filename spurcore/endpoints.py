"""A node's ``address`` as its agent registers it, read back without I/O.

An agent registers ``tcp:HOST:PORT unix:PATH`` (its TLS step endpoint and its Unix socket),
``unix:PATH`` alone, or (agents of earlier versions) ``HOST:PORT`` or a bare path. The rule
for splitting, here only (``spurio.stepserver`` uses it too): endpoints are separated by spaces and a
``unix:`` endpoint is the last one, running to the end of the string (a socket path may
hold spaces).

Invariants: pure functions of their arguments; never raise on a malformed address (a tool
showing a node must still show it).
"""

from __future__ import annotations

__all__ = ["split", "tcp_endpoint", "node_addr"]


def split(address: str) -> list[str]:
    """The endpoints of ``address``, in order."""
    out: list[str] = []
    rest = address.strip()
    while rest:
        if rest.startswith("unix:"):
            out.append(rest)
            break
        token, _, rest = rest.partition(" ")
        out.append(token)
        rest = rest.lstrip()
    return out


def tcp_endpoint(address: str) -> str:
    """``HOST:PORT`` of the first ``tcp:`` endpoint, or of a legacy bare ``HOST:PORT``
    address; "" when the node has none."""
    for ep in split(address):
        if ep.startswith("tcp:"):
            return ep[4:]
        if ep.startswith("unix:") or "/" in ep:
            continue
        _host, sep, port = ep.rpartition(":")
        if sep and port.isdigit():
            return ep
    return ""


def node_addr(address: str, name: str) -> str:
    """What Slurm shows as a node's ``NodeAddr`` (scontrol show node, sinfo ``%o``): the host
    of its TCP endpoint (``[v6]`` brackets removed), else the node's name (an agent that
    is reached only through its Unix socket lives on the host of that name)."""
    endpoint = tcp_endpoint(address)
    if endpoint:
        host = endpoint.rpartition(":")[0]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if host:
            return host
    return name
