"""Scenario files for the simulation: a fault schedule and the views expected from it.

Syntax, one command per line (``#`` starts a comment)::

    cluster replicas=3 nodes=2 cpus=2 seed=7     # first line; all keys optional
    at 0.5 submit a sleep 2; exit 0              # a job named a, its script after the name
    at 0.5 submit b time_limit=2 sleep 60        # JobSpec fields (int) between name and script
    at 1 cancel a
    at 1 suspend b                               # scontrol suspend / resume
    at 2 resume b
    at 1 signal b USR1 full                      # scancel -s USR1 [--batch | --full]
    at 1 crash replica leader                    # or a replica number
    at 3 restart replica 1
    at 2 partition 1 | 2 3 node1 node2           # groups of replicas (numbers) and agents
    at 5 heal                                    # also clears drop and duplicate rates
    at 1 drop 0.2                                # message loss rate
    at 1 duplicate 0.1                           # message duplication rate
    at 2 crash agent node1
    at 4 restart agent node1
    at 6 expect squeue                           # capture a view at that moment
    run 20                                       # run until sim time 20
    quiesce                                      # heal, restart all, run until all is done
    expect squeue                                # squeue -o "%i %j %t %r", sacct, digests, figures
    expect sacct

``run_scenario`` returns the text of every ``expect``, which tests compare with the
scenario's ``.golden`` file (``SPUR_UPDATE_GOLDEN=1`` rewrites it). Every run ends with
``Sim.check`` (the invariants in tests/sim/sim.py).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import attrs

from spurcore.ops import JobSpec, SignalTarget
from spurcore.render import sacct, squeue
from spurcore.signals import parse_signal
from spurcore.snapshot import digest
from tests.sim.sim import Sim


class ScenarioError(ValueError):
    pass


def _view(sim: Sim, what: str) -> str:
    if what == "squeue":
        infos = sorted((i for i in sim.infos() if i["state"] in ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING")),
                       key=lambda i: i["job_id"])
        return squeue.render_jobs(infos, fmt="%i %j %t %r", now=sim.wall())
    if what == "sacct":
        infos = sorted(sim.infos(), key=lambda i: i["job_id"])
        return sacct.render(infos, "JobID,JobName,State,ExitCode", parsable2=True, now=sim.wall())
    if what == "digests":
        digests = {r.rid: digest(r.state) for r in sim.replicas}
        return "replicas agree\n" if len(set(digests.values())) == 1 else f"replicas differ: {digests}\n"
    if what == "leader":
        return f"leader {sim.log.leader.rid if sim.log.leader else None} term {sim.log.term}\n"
    raise ScenarioError(f"unknown view {what!r}")


def parse(text: str) -> tuple[dict[str, Any], list[tuple[float | None, str, list[str]]]]:
    settings: dict[str, Any] = {}
    steps: list[tuple[float | None, str, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "cluster":
            for word in words[1:]:
                key, _, value = word.partition("=")
                settings[key] = float(value) if "." in value else int(value)
            continue
        at: float | None = None
        if words[0] == "at":
            if len(words) < 3:
                raise ScenarioError(f"line {lineno}: 'at T command ...'")
            at, words = float(words[1]), words[2:]
            rest = line.split(None, 3)[3] if len(line.split(None, 3)) > 3 else ""
        else:
            rest = line.split(None, 1)[1] if len(words) > 1 else ""
        steps.append((at, words[0], [rest] if words[0] == "submit" else shlex.split(rest)))
    return settings, steps


_FIELDS = {f.name for f in attrs.fields(JobSpec)}


def _spec_fields(text: str) -> tuple[str, dict[str, int]]:
    """``time_limit=2 sleep 60``: the leading ``field=value`` words naming JobSpec fields,
    and the script after them."""
    fields: dict[str, int] = {}
    while True:
        word, _, rest = text.partition(" ")
        key, eq, value = word.partition("=")
        if not eq or key not in _FIELDS:
            return text, fields
        fields[key] = int(value)
        text = rest


def run_scenario(path: Path) -> str:
    settings, steps = parse(path.read_text())
    seed = int(settings.pop("seed", 1))
    sim = Sim(seed, **settings)
    out: list[str] = []

    def do(cmd: str, args: list[str]) -> None:
        if cmd == "submit":
            name, _, script = args[0].partition(" ")
            script, fields = _spec_fields(script)
            sim.submit(name, script, **fields)
        elif cmd == "cancel":
            sim.cancel(args[0])
        elif cmd == "suspend":
            sim.suspend(args[0])
        elif cmd == "resume":
            sim.resume(args[0])
        elif cmd == "signal":
            target = SignalTarget[args[2].upper()] if len(args) > 2 else SignalTarget.STEPS
            sim.signal(args[0], parse_signal(args[1]), target)
        elif cmd == "crash":
            (sim.crash_replica if args[0] == "replica" else lambda n: sim.agents[n].crash())(args[1])
        elif cmd == "restart":
            (sim.restart_replica if args[0] == "replica" else lambda n: sim.agents[n].restart())(args[1])
        elif cmd == "partition":
            groups, cur = [], []
            for word in args:
                if word == "|":
                    groups.append(cur)
                    cur = []
                else:
                    cur.append(word)
            groups.append(cur)
            sim.partition(groups)
        elif cmd == "heal":
            sim.heal()
        elif cmd == "drop":
            sim.net.drop = float(args[0])
        elif cmd == "duplicate":
            sim.net.dup = float(args[0])
        elif cmd == "expect":
            out.append(f"== t={sim.now:g} {args[0]}\n{_view(sim, args[0])}")
        elif cmd == "run":
            sim.run_until(float(args[0]))
        elif cmd == "quiesce":
            sim.quiesce()
        else:
            raise ScenarioError(f"unknown command {cmd!r}")

    for at, cmd, args in steps:
        if at is not None:
            sim.run_until(at)
        do(cmd, args)
    sim.check()
    return "".join(out)
