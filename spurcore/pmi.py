"""The PMI wire protocol, sans I/O: what ``srun --mpi=pmi2`` serves to MPI tasks.

Slurm's mpi/pmi2 plugin (src/plugins/mpi/pmi2: pmi1.c, pmi2.c, kvs.c) speaks both wires
that MPICH's built-in client uses over the descriptor in ``PMI_FD``:

- PMI-1: one line per command, ``cmd=NAME key=value ...\\n`` (MPICH's default);
- PMI-2: ``%6d`` length then ``cmd=NAME;key=value;...``, chosen by a client whose first
  ``cmd=init`` asks for ``pmi_version=2``.

``PmiNode`` is the state of one node's part of a step: its local ranks, the key-value
space they have put since the last fence, and the global space from every node as of the
last fence. It turns bytes from a rank into bytes for that rank and, when every local rank
has entered a barrier, a *fence* (the node's new pairs) that the caller carries to srun;
srun answers with the pairs of all nodes (``fence_done``), which releases the barrier.

Invariants: no I/O, no clock; one ``PmiNode`` per node and step; a get answers from the
global space or this node's pending puts (a rank sees its own put before the fence, as in
Slurm's kvs.c); a malformed or unknown command is answered with ``rc=-1``, never raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

KVS_NAME_MAX = 256
KEY_MAX = 256
VAL_MAX = 1024


def process_mapping(node_of_rank: Sequence[int]) -> str:
    """Slurm's ``PMI_process_mapping``: ``(vector,(node,nnodes,ppn),...)`` from the node
    index of every rank, consecutive ranks on one node grouped, groups on consecutive nodes
    with the same size merged (``(vector,(0,2,2))`` for 4 ranks block on 2 nodes)."""
    blocks: list[list[int]] = []  # [node, count]
    for node in node_of_rank:
        if blocks and blocks[-1][0] == node:
            blocks[-1][1] += 1
        else:
            blocks.append([node, 1])
    merged: list[list[int]] = []  # [start, nnodes, ppn]
    for node, count in blocks:
        last = merged[-1] if merged else None
        if last is not None and last[2] == count and node == last[0] + last[1]:
            last[1] += 1
        else:
            merged.append([node, 1, count])
    return "(vector," + ",".join(f"({a},{b},{c})" for a, b, c in merged) + ")"


def parse_pmi1(line: bytes) -> dict[str, str]:
    """``cmd=put kvsname=k key=a value=b`` -> dict (a value may contain ``=``)."""
    out: dict[str, str] = {}
    for word in line.decode(errors="replace").strip().split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out


def fmt_pmi1(cmd: str, **fields: object) -> bytes:
    return (" ".join([f"cmd={cmd}", *(f"{k}={v}" for k, v in fields.items())]) + "\n").encode()


def parse_pmi2(body: bytes) -> dict[str, str]:
    """``cmd=kvs-put;key=a;value=b;`` -> dict (``;;`` is an escaped ``;``)."""
    text = body.decode(errors="replace").replace(";;", "\0")
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value.replace("\0", ";")
    return out


def fmt_pmi2(cmd: str, **fields: object) -> bytes:
    parts = [f"cmd={cmd}", *(f"{k.replace('_', '-') if k != 'rc' else k}={str(v).replace(';', ';;')}"
                             for k, v in fields.items())]
    body = (";".join(parts) + ";").encode()
    return f"{len(body):<6d}".encode() + body


@attrs.define
class _Rank:
    rank: int
    buf: bytearray = attrs.field(factory=bytearray)
    version: int = 1
    in_barrier: bool = False
    finalized: bool = False


@attrs.define
class PmiNode:
    """One node's PMI server state for a step (see the module docstring)."""

    jobid: str  # the KVS name: Slurm uses "<jobid>.<stepid>"
    size: int  # ranks in the whole step
    ranks: tuple[int, ...]  # this node's ranks
    mapping: str = ""  # PMI_process_mapping
    appnum: int = 0
    kvs: dict[str, str] = attrs.field(factory=dict)  # global, as of the last fence
    pending: dict[str, str] = attrs.field(factory=dict)  # this node's puts since then
    node_attrs: dict[str, str] = attrs.field(factory=dict)
    aborted: tuple[int, int, str] | None = None  # (rank, exit code, message)
    _states: dict[int, _Rank] = attrs.field(factory=dict)
    fencing: bool = False  # a fence is out: waiting for fence_done

    def __attrs_post_init__(self) -> None:
        self._states = {r: _Rank(r) for r in self.ranks}

    # --- bytes in, bytes out ----------------------------------------------------------

    def feed(self, rank: int, data: bytes) -> tuple[list[tuple[int, bytes]], dict[str, str] | None]:
        """Bytes read from ``rank``'s PMI socket -> (replies per rank, a fence to send to
        srun or None). The replies may be for other ranks (a barrier that completes)."""
        st = self._states[rank]
        st.buf += data
        out: list[tuple[int, bytes]] = []
        fence: dict[str, str] | None = None
        for msg in self._messages(st):
            replies, f = self._command(st, msg)
            out.extend(replies)
            if f is not None:
                fence = f
        return out, fence

    def fence_done(self, kvs: dict[str, str]) -> list[tuple[int, bytes]]:
        """srun merged every node's fence: the barrier is over on this node."""
        self.kvs.update(kvs)
        self.pending.clear()
        self.fencing = False
        out = []
        for st in self._states.values():
            if st.in_barrier:
                st.in_barrier = False
                out.append((st.rank, fmt_pmi1("barrier_out", rc=0) if st.version == 1
                            else fmt_pmi2("kvs-fence-response", rc=0)))
        return out

    def _messages(self, st: _Rank) -> Iterable[dict[str, str]]:
        while True:
            if st.version == 2:
                if len(st.buf) < 6:
                    return
                try:
                    length = int(bytes(st.buf[:6]).decode().strip() or "0")
                except ValueError:
                    st.buf.clear()
                    return
                if len(st.buf) < 6 + length:
                    return
                body = bytes(st.buf[6:6 + length])
                del st.buf[:6 + length]
                yield parse_pmi2(body)
            else:
                end = st.buf.find(b"\n")
                if end < 0:
                    return
                line = bytes(st.buf[:end + 1])
                del st.buf[:end + 1]
                yield parse_pmi1(line)

    # --- commands ---------------------------------------------------------------------

    def _command(self, st: _Rank, m: dict[str, str]) -> tuple[list[tuple[int, bytes]], dict[str, str] | None]:
        cmd = m.get("cmd", "")
        if st.version == 1:
            return self._pmi1(st, cmd, m)
        return self._pmi2(st, cmd, m)

    def _pmi1(self, st: _Rank, cmd: str, m: dict[str, str]) -> tuple[list[tuple[int, bytes]], dict[str, str] | None]:
        r = st.rank
        one = lambda b: ([(r, b)], None)  # noqa: E731
        if cmd == "init":
            if m.get("pmi_version") == "2":
                st.version = 2
                return one(fmt_pmi1("response_to_init", pmi_version=2, pmi_subversion=0, rc=0))
            return one(fmt_pmi1("response_to_init", pmi_version=1, pmi_subversion=1, rc=0))
        if cmd == "get_maxes":
            return one(fmt_pmi1("maxes", kvsname_max=KVS_NAME_MAX, keylen_max=KEY_MAX, vallen_max=VAL_MAX, rc=0))
        if cmd == "get_appnum":
            return one(fmt_pmi1("appnum", appnum=self.appnum, rc=0))
        if cmd == "get_my_kvsname":
            return one(fmt_pmi1("my_kvsname", kvsname=self.jobid, rc=0))
        if cmd == "get_universe_size":
            return one(fmt_pmi1("universe_size", size=self.size, rc=0))
        if cmd == "put":
            key, value = m.get("key", ""), m.get("value", "")
            if not key or len(key) > KEY_MAX or len(value) > VAL_MAX:
                return one(fmt_pmi1("put_result", rc=-1, msg="invalid_key_or_value"))
            self.pending[key] = value
            return one(fmt_pmi1("put_result", rc=0))
        if cmd == "get":
            value = self._lookup(m.get("key", ""))
            if value is None:
                return one(fmt_pmi1("get_result", rc=-1, msg="key_not_found"))
            return one(fmt_pmi1("get_result", rc=0, value=value))
        if cmd == "barrier_in":
            return self._enter_barrier(st)
        if cmd == "finalize":
            st.finalized = True
            return one(fmt_pmi1("finalize_ack", rc=0))
        if cmd == "abort":
            self.aborted = (r, int(m.get("exitcode", "1") or 1), m.get("message", ""))
            return [], None
        return one(fmt_pmi1(cmd or "unknown", rc=-1, msg="unsupported_command"))

    def _pmi2(self, st: _Rank, cmd: str, m: dict[str, str]) -> tuple[list[tuple[int, bytes]], dict[str, str] | None]:
        r = st.rank
        one = lambda b: ([(r, b)], None)  # noqa: E731
        if cmd == "fullinit":
            return one(fmt_pmi2("fullinit-response", rc=0, pmi_version=2, pmi_subversion=0, rank=r,
                                size=self.size, appnum=self.appnum, spawner_jobid=self.jobid, debugged="FALSE",
                                pmiverbose="FALSE"))
        if cmd == "job-getid":
            return one(fmt_pmi2("job-getid-response", rc=0, jobid=self.jobid))
        if cmd == "info-getjobattr":
            key = m.get("key", "")
            value = {"PMI_process_mapping": self.mapping, "universeSize": str(self.size)}.get(key)
            if value is None:
                return one(fmt_pmi2("info-getjobattr-response", rc=0, found="FALSE"))
            return one(fmt_pmi2("info-getjobattr-response", rc=0, found="TRUE", value=value))
        if cmd == "info-putnodeattr":
            self.node_attrs[m.get("key", "")] = m.get("value", "")
            return one(fmt_pmi2("info-putnodeattr-response", rc=0))
        if cmd == "info-getnodeattr":
            value = self.node_attrs.get(m.get("key", ""))
            if value is None:
                return one(fmt_pmi2("info-getnodeattr-response", rc=0, found="FALSE"))
            return one(fmt_pmi2("info-getnodeattr-response", rc=0, found="TRUE", value=value))
        if cmd == "kvs-put":
            self.pending[m.get("key", "")] = m.get("value", "")
            return one(fmt_pmi2("kvs-put-response", rc=0))
        if cmd == "kvs-get":
            value = self._lookup(m.get("key", ""))
            if value is None:
                return one(fmt_pmi2("kvs-get-response", rc=0, found="FALSE"))
            return one(fmt_pmi2("kvs-get-response", rc=0, found="TRUE", value=value))
        if cmd == "kvs-fence":
            return self._enter_barrier(st)
        if cmd == "finalize":
            st.finalized = True
            return one(fmt_pmi2("finalize-response", rc=0))
        if cmd == "abort":
            self.aborted = (r, 1, m.get("msg", ""))
            return [], None
        return one(fmt_pmi2(f"{cmd}-response" if cmd else "unknown", rc=-1, errmsg="unsupported command"))

    def _lookup(self, key: str) -> str | None:
        if key == "PMI_process_mapping" and self.mapping:
            return self.mapping
        return self.kvs.get(key, self.pending.get(key))

    def _enter_barrier(self, st: _Rank) -> tuple[list[tuple[int, bytes]], dict[str, str] | None]:
        st.in_barrier = True
        if self.fencing or not all(s.in_barrier for s in self._states.values()):
            return [], None
        self.fencing = True
        return [], dict(self.pending)
