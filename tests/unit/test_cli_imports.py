"""What a command imports on its way through a real cluster (start-up time is part of the
commands' contract: users run them in loops; docs/performance.md, "Command start-up").

Each installed command runs as the shell runs it (the launcher beside this interpreter),
under ``python -X importtime``, against a real one-replica cluster with one node; every
module it imports is checked against :data:`HEAVY`. No timing: a module that creeps onto a
command's path fails here on any machine, however fast.

Also pinned: the launchers themselves (bin/, listed in pyproject.toml, installed in place of
pip's wrappers) and the exit they make (spurcli/_launch.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: Modules no command may import on its way (each costs from 0.5 to 10 ms of a 10 ms budget,
#: or drags such modules in: functools and contextlib import collections, socket imports enum).
HEAVY = frozenset({
    "asyncio", "threading", "ssl", "socket", "selectors", "subprocess", "logging", "argparse", "json",
    "tomllib", "re", "enum", "typing", "datetime", "collections", "functools", "contextlib", "inspect",
    "dataclasses", "pathlib", "shutil", "tempfile", "uuid", "random", "email", "locale", "gettext",
    "textwrap", "attr", "attrs", "cryptography", "rich", "msgpack", "pysyncobj",
    "spurcore.model", "spurcore.reduce", "spurcore.schema", "spurcore.ops", "spurcore.codec",
    # Python wrappers of built-in modules (0.1-0.3 ms each): _operator and _struct instead
    "operator", "struct",
    # extension modules: loading a shared library costs 0.2-0.4 ms each
    "zlib", "select",
    # squeue's on-demand parts (-s, -S, --helpformat; --json): none of COMMANDS needs them
    "spurcore.render.squeue_extra", "spurcore.render.data_parser",
})

#: What some commands still import today, each with where it comes from, by command name or
#: by one line of COMMANDS. These live in files of other areas; when one goes, remove it here
#: (test_allowances_are_still_needed says so).
ALLOWED: dict[str, dict[str, str]] = {
    "srun": {
        "attr": "spurcore/pmi.py: `import attrs` at load time (spurcli/srun.py imports it to launch a step)",
        "attrs": "spurcore/pmi.py",
        "threading": "through attrs",
        "typing": "spurio/stepserver.py (`from typing import Any`), and attrs",
        "dataclasses": "spurio/stepserver.py, imported by spurcli/srun.py for the step's I/O",
        "inspect": "through dataclasses",
        "re": "through dataclasses",
        "socket": "spurio/stepserver.py",
        "struct": "spurio/stepserver.py (SO_PEERCRED)",
        "contextlib": "spurio/stepserver.py",
        "selectors": "spurcli/srun.py's I/O loop; socket",
        "select": "through selectors",
        "enum": "signal (spurcli/srun.py), socket",
        "functools": "through enum",
        "collections": "through functools",
        "operator": "through collections",
    },
    "salloc": {
        "subprocess": "spurcli/salloc.py runs the command in the allocation",
        "threading": "through subprocess",
        "contextlib": "through subprocess",
        "selectors": "through subprocess",
        "select": "through subprocess",
        "re": "through subprocess (locale)",
        "locale": "through subprocess",
        "enum": "signal (spurcli/salloc.py)",
        "functools": "through enum",
        "collections": "through functools",
        "operator": "through collections",
    },
}

#: Each command as it is typed, on a cluster with held jobs queued (``{job}``: one of them).
COMMANDS: list[tuple[str, list[str]]] = [
    ("squeue", []),
    ("squeue", ["-j", "{job}"]),
    ("squeue", ["-l", "-w", "node1"]),
    ("sbatch", ["--parsable", "-H", "-o", "/dev/null", "--wrap", "true"]),
    ("sbatch", ["--parsable", "-H", "{script}"]),
    ("scancel", ["{job}"]),
    ("scontrol", ["show", "job", "{job}"]),
    ("sacct", ["-j", "{job}"]),
    ("sinfo", []),
    ("sinfo", ["-l", "-t", "idle"]),
    ("srun", ["-n1", "true"]),
    ("salloc", ["-n1", "true"]),
]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _launchers() -> list[str]:
    return sorted(p.name for p in (ROOT / "bin").iterdir() if not p.name.startswith("."))


def _template(name: str) -> str:
    return (f"#!python\n# Spur's {name} launcher: spurcli/_launch.py says why it is not pip's console-script "
            f"wrapper.\nfrom spurcli._launch import launch\n\nlaunch(\"spurcli.{name}\")\n")


# --------------------------------------------------------------------------- the launchers


def test_every_launcher_is_listed_and_runs_a_command_module() -> None:
    listed = sorted(Path(p).name for p in _pyproject()["tool"]["setuptools"]["script-files"])
    assert listed == _launchers(), "bin/ and [tool.setuptools] script-files in pyproject.toml must agree"
    for name in _launchers():
        assert (ROOT / "bin" / name).read_text() == _template(name), f"bin/{name}: copy bin/squeue, rename"
        assert os.access(ROOT / "bin" / name, os.X_OK), f"bin/{name} is not executable"
        module = __import__(f"spurcli.{name}", fromlist=["main"])
        assert callable(module.main)


def test_no_command_uses_a_console_script_wrapper() -> None:
    # pip's wrapper imports re on every run: commands are launchers in bin/ (see _template)
    scripts = _pyproject()["project"]["scripts"]
    wrapped = sorted(n for n, target in scripts.items() if n in _launchers() or target.startswith("spurcli."))
    assert wrapped == [], f"{wrapped}: add bin/<name> (a copy of bin/squeue) instead of a [project.scripts] entry"


def test_installed_commands_are_the_launchers() -> None:
    for name in _launchers():
        installed = BIN / name
        assert installed.exists(), f"{installed} missing: reinstall (make install)"
        first, _, body = installed.read_text().partition("\n")
        assert first.startswith("#!") and "python" in first, f"{installed}: {first}"
        assert body == _template(name).partition("\n")[2], f"{installed} is stale or pip's wrapper: make install"


# --------------------------------------------------------------------------- the exit


def _launch(body: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A throw-away command module run through spurcli._launch.launch."""
    code = ("import sys, types; m = types.ModuleType('fake_cmd'); exec(sys.argv[1], m.__dict__); "
            "sys.modules['fake_cmd'] = m; from spurcli._launch import launch; launch('fake_cmd')")
    return subprocess.run([sys.executable, "-c", code, body, *args], capture_output=True, text=True, timeout=60)


def test_launch_exits_with_mains_status_and_output() -> None:
    done = _launch("import sys\ndef main():\n    sys.stdout.write('out'); sys.stderr.write('err'); return 3\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out", "err")
    done = _launch("def main():\n    print('x' * 100000, end='')\n")  # buffered output is flushed
    assert (done.returncode, len(done.stdout)) == (0, 100000)
    done = _launch("def main():\n    raise SystemExit('bye')\n")
    assert (done.returncode, done.stderr) == (1, "bye\n")


def test_launch_lets_threads_and_atexit_hooks_finish() -> None:
    thread = _launch("import threading, time, sys\n"
                     "def late():\n    time.sleep(0.2); sys.stdout.write('thread done'); sys.stdout.flush()\n"
                     "def main():\n    threading.Thread(target=late).start(); return 0\n")
    assert (thread.returncode, thread.stdout) == (0, "thread done")
    hook = _launch("import atexit\ndef main():\n    atexit.register(print, 'hook ran'); return 5\n")
    assert (hook.returncode, hook.stdout) == (5, "hook ran\n")


def test_launch_collects_garbage_while_the_command_runs() -> None:
    done = _launch("import gc\ndef main():\n    print(gc.isenabled(), gc.get_freeze_count() > 0)\n")
    assert done.stdout.split() == ["True", "True"]


# --------------------------------------------------------------------------- the imports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    d = tmp_path_factory.mktemp("imports")
    write_config(d, replicas=1, nodes=1, cpus=2, kill_wait=1.0)
    c = LocalCluster(d)
    try:
        c.up()
        yield c
    finally:
        c.down()


def _imports(cluster: LocalCluster, name: str, args: list[str]) -> set[str]:
    """The modules the installed command imports, run as the shell runs it."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(BIN / name), *args], env=cluster.env,
                          cwd=cluster.dir, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 0, f"{name} {args}: exit {proc.returncode}: " + "\n".join(
        line for line in lines if not line.startswith("import time:"))
    return {line.split("|")[2].strip() for line in lines
            if line.startswith("import time:") and "imported package" not in line}


def _submit_held(cluster: LocalCluster) -> str:
    out = subprocess.run([str(BIN / "sbatch"), "--parsable", "-H", "-o", "/dev/null", "--wrap", "true"],
                         env=cluster.env, cwd=cluster.dir, capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def _line(name: str, args: list[str]) -> str:
    return " ".join([name, *args])


@pytest.fixture(scope="module")
def imported(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Per line of COMMANDS (as written there), what the command imports."""
    script = tmp_path_factory.mktemp("script") / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -J imports\n#SBATCH --time=5 --mem=100M\n#SBATCH -o /dev/null\ntrue\n")
    for _ in range(3):
        _submit_held(cluster)
    seen: dict[str, set[str]] = {}
    for name, args in COMMANDS:
        job = _submit_held(cluster)
        seen[_line(name, args)] = _imports(cluster, name, [a.format(job=job, script=script) for a in args])
    return seen


def _listed(module: str, names: Iterable[str]) -> bool:
    """``module`` is one of ``names`` or in a package named there (``re`` lists ``re._parser``;
    ``spurcore.model`` lists itself alone)."""
    return module in names or module.split(".")[0] in names


def _allowed(name: str, args: list[str]) -> dict[str, str]:
    return {**ALLOWED.get(name, {}), **ALLOWED.get(_line(name, args), {})}


@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[_line(n, a) for n, a in COMMANDS])
def test_no_heavy_module_on_the_command_path(imported: dict[str, set[str]], name: str, args: list[str]) -> None:
    allowed = _allowed(name, args)
    heavy = sorted(m for m in imported[_line(name, args)] if _listed(m, HEAVY))
    unexpected = [m for m in heavy if not _listed(m, allowed)]
    assert unexpected == [], (f"{name} imports {unexpected} at run time: import it inside the function that "
                              f"needs it (see spurcli/common.py's docstring); run `{sys.executable} -X importtime "
                              f"{BIN / name} ...` to see who imports it")


def test_allowances_are_still_needed(imported: dict[str, set[str]]) -> None:
    used = {(key, m.split(".")[0]) for name, args in COMMANDS for key in (name, _line(name, args))
            for m in imported[_line(name, args)]}
    stale = sorted(f"{key}: {module}" for key, modules in ALLOWED.items() for module in modules
                   if (key, module) not in used)
    assert stale == [], f"no longer imported (good): remove them from ALLOWED: {stale}"


def test_small_messages_travel_without_msgpack(imported: dict[str, set[str]]) -> None:
    # spurcore.wirecodec's pure-Python path carries them (msgpack is in HEAVY)
    assert all("spurcore.wirecodec" in modules for modules in imported.values())
