"""What a controller's restart costs, phase by phase, in one process (no cluster).

    python -m benchmarks.restart [--jobs 1000,10000,100000] [--repeat 3]

For each size, a hot state of that many jobs is built through the reducer, then:

* snapshot decode as a replica loads it (``decode_state`` with the collector paused and
  the result frozen, ``spurcore.snapshot.gc_paused(freeze=True)``), in the current format
  beside the previous one (version 4, one field list per job, written here by
  :func:`encode_v4`: the code before version 5 wrote exactly this), same state, same run;
* the young-generation collection that follows a load when the result is not frozen
  (what every restart paid before ``gc.freeze``);
* snapshot encode (the forked child's work) and the snapshot's size in both formats;
* replay of a WAL tail of 20,000 submissions (the most a replica replays: it snapshots every
  ``compaction_entries`` = 20,000 ops).

Two kinds of state: ``held`` (what benchmarks.spur_workloads.scale queues: every job
``sbatch -H --wrap true``-like, equal specs) and ``distinct`` (every spec different: its own
name, argv and a 40-variable environment as ``sbatch`` exports it), so that sharing equal
specs is not mistaken for the whole gain.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import msgpack

from spurcore.model import ClusterState
from spurcore.ops import JobSpec, JobSubmitted, NodeRegistered
from spurcore.reduce import apply

ENV = {f"VAR_{i}": f"/some/value/number/{i}" for i in range(40)}


def spec_for(kind: str, i: int) -> JobSpec:
    if kind == "held":
        return JobSpec("held", "root", 0, 0, "#!/bin/sh\ntrue\n", (), {}, "/tmp", stdout="/dev/null", hold=True)
    return JobSpec(f"job{i}", "alice", 1000, 100, "#!/bin/bash\nsrun ./sim $1\n", (str(i),), dict(ENV),
                   "/home/alice", stdout="/dev/null", hold=True, submit_line=f"sbatch -H job.sh {i}")


def build(kind: str, n: int) -> ClusterState:
    state = ClusterState()
    apply(state, NodeRegistered("node1", 2, 4096, "", 0.0))
    held = spec_for("held", 0)
    for i in range(n):
        apply(state, JobSubmitted(f"r{i}", held if kind == "held" else spec_for(kind, i), 1.0e9 + i))
    return state


def encode_v4(state: ClusterState) -> bytes:
    """Version 4's layout (before jobs went into columns): one field list per job, the spec
    as its field list. Kept here as the baseline; spurcore.snapshot still reads it."""
    import attrs

    from spurcore.model import Job, Step
    from spurcore.snapshot import _ACCOUNT, _ASSOC, _PARTITION, _QOS, _USER, _enc_action, _enc_node

    job_fields = [f.name for f in attrs.fields(Job)]
    step_fields = [f.name for f in attrs.fields(Step)]
    spec_fields = [f.name for f in attrs.fields(JobSpec)]

    def enc_job(job: Job) -> list[Any]:
        out = [getattr(job, f) for f in job_fields]
        out[job_fields.index("spec")] = [getattr(job.spec, f) for f in spec_fields]
        out[job_fields.index("state")] = job.state.value
        for f in ("unlaunched", "undone"):
            out[job_fields.index(f)] = sorted(getattr(job, f))
        out[job_fields.index("steps")] = [[getattr(s, f) for f in step_fields] for s in job.steps.values()]
        return out

    body = [
        "spur-state", 4, state.next_job_id, state.next_action_id, state.rejected,
        [enc_job(j) for j in state.jobs.values()],
        [_enc_node(n) for n in state.nodes.values()],
        [_enc_action(a) for a in state.actions.values()],
        [[k, v] for k, v in state.requests.items()],
        list(state.pending), list(state.unlaunched), [[k, v] for k, v in state.array_purged.items()],
        [_PARTITION.enc(p) for p in state.partitions.values()], state.settings, state.config_digest,
        [_ACCOUNT.enc(a) for a in state.accounts.values()], [_USER.enc(u) for u in state.users.values()],
        [_ASSOC.enc(a) for a in state.assocs.values()], [_QOS.enc(q) for q in state.qos.values()],
        [[k, v] for k, v in state.usage.items()], [[k, v] for k, v in state.usage_epoch.items()],
        state.usage_epoch_no, state.prio_rev,
    ]
    return msgpack.packb(body, use_bin_type=True)


def _best(f: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def _load(data: bytes, freeze: bool) -> tuple[ClusterState, float]:
    """decode_state as a replica runs it; returns the state and the time from the end of the
    decode to the first container allocated after it: the young collection that allocation
    triggers once the collector is back on (none when the state was frozen)."""
    from spurcore.snapshot import decode_state, gc_paused

    with gc_paused(freeze=freeze):
        state = decode_state(data)
        t0 = time.perf_counter()
    [].append(None)  # a container: the collection, if due, runs here (if not already in __exit__)
    return state, time.perf_counter() - t0


def measure(kind: str, n: int, repeat: int = 3) -> dict[str, Any]:
    from spurcore.snapshot import decode_state, encode_state, tune_gc

    tune_gc()  # the controller's collector thresholds (spurctld.main)

    state = build(kind, n)
    v4, v5 = encode_v4(state), encode_state(state)
    assert decode_state(v4) == state and decode_state(v5) == state
    out: dict[str, Any] = {"kind": kind, "jobs": n, "bytes_v4": len(v4), "bytes_v5": len(v5)}
    gc.freeze()  # the built state and the encodings: keep them out of the collections timed below
    for name, data in (("v4", v4), ("v5", v5)):
        def once(data: bytes = data) -> None:
            loaded, _ = _load(data, freeze=True)
            gc.unfreeze()  # let the next round's collect() see (and free) this one again
            del loaded
            gc.freeze()
        out[f"decode_{name}_s"] = _best(once, repeat)
    loaded, young = _load(v5, freeze=False)
    out["young_collection_s"] = young
    del loaded
    out["encode_v5_s"] = _best(lambda: encode_state(state), repeat)
    out["encode_v4_s"] = _best(lambda: encode_v4(state), repeat)
    gc.unfreeze()
    return out


def tail_replay(ops: int = 20_000, repeat: int = 3) -> dict[str, Any]:
    """Replaying a WAL tail of ``ops`` held submissions onto a state: decode + apply, as
    spurctld.replica._load_local does (one op per entry: the worst case)."""
    from spurcore.codec import decode_batch, encode_batch
    from spurcore.snapshot import gc_paused

    spec = spec_for("held", 0)
    blobs = [encode_batch([JobSubmitted(f"t{i}", spec, 2.0e9 + i)]) for i in range(ops)]

    def replay() -> None:
        state = ClusterState()
        with gc_paused(freeze=False):
            for blob in blobs:
                for op in decode_batch(blob):
                    apply(state, op)

    return {"ops": ops, "replay_s": _best(replay, repeat)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", default="1000,10000,100000")
    parser.add_argument("--kinds", default="held,distinct")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tail", type=int, default=20_000)
    args = parser.parse_args(argv)
    results = []
    for kind in args.kinds.split(","):
        for n in map(int, args.jobs.split(",")):
            r = measure(kind, n, args.repeat)
            results.append(r)
            print(f"{kind:8} {n:>7,} jobs: decode v4 {r['decode_v4_s'] * 1e3:7.1f} ms, v5 {r['decode_v5_s'] * 1e3:7.1f} ms "
                  f"({r['decode_v4_s'] / r['decode_v5_s']:.1f}x); young collection after an unfrozen load "
                  f"{r['young_collection_s'] * 1e3:6.1f} ms; encode v4 {r['encode_v4_s'] * 1e3:6.1f} ms, "
                  f"v5 {r['encode_v5_s'] * 1e3:6.1f} ms; bytes v4 {r['bytes_v4']:,}, v5 {r['bytes_v5']:,}",
                  flush=True)
    if args.tail:
        t = tail_replay(args.tail, args.repeat)
        results.append(t)
        print(f"WAL tail of {t['ops']:,} submissions: {t['replay_s'] * 1e3:.0f} ms "
              f"({t['ops'] / t['replay_s']:,.0f} ops/s)")
    return results


if __name__ == "__main__":
    main()
