"""Every option of Slurm 25.11's sbatch and srun man pages (doc/man/man1/sbatch.1, srun.1,
OPTIONS section) parses: long and short forms, in each argument form the page documents,
and for sbatch as an ``#SBATCH`` directive too. The lists below are data copied from the man
pages, not derived from the table under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from spurcli import opts, sbatch, srun_opts
from spurcli.common import NO_ARG, OPTIONAL, REQUIRED, CliError, Exit, UsageError

# (short letter or "", long name, argument as documented: "" none, "=" required, "[=]" optional)
SBATCH_MAN = [
    ("A", "account", "="), ("", "acctg-freq", "="), ("a", "array", "="), ("", "batch", "="), ("", "bb", "="),
    ("", "bbf", "="), ("b", "begin", "="), ("D", "chdir", "="), ("", "cluster-constraint", "="),
    ("M", "clusters", "="), ("", "comment", "="), ("", "consolidate-segments", ""), ("C", "constraint", "="),
    ("", "container", "="), ("", "container-id", "="), ("", "contiguous", ""), ("S", "core-spec", "="),
    ("", "cores-per-socket", "="), ("", "cpu-freq", "="), ("", "cpus-per-gpu", "="), ("c", "cpus-per-task", "="),
    ("", "deadline", "="), ("", "delay-boot", "="), ("d", "dependency", "="), ("m", "distribution", "="),
    ("e", "error", "="), ("x", "exclude", "="), ("", "exclusive", "[="), ("", "export", "="),
    ("", "export-file", "="), ("", "extra", "="), ("B", "extra-node-info", "="), ("", "get-user-env", "[="),
    ("", "gid", "="), ("", "gpu-bind", "="), ("", "gpu-freq", "="), ("G", "gpus", "="),
    ("", "gpus-per-node", "="), ("", "gpus-per-socket", "="), ("", "gpus-per-task", "="), ("", "gres", "="),
    ("", "gres-flags", "="), ("h", "help", ""), ("", "hint", "="), ("H", "hold", ""), ("", "ignore-pbs", ""),
    ("i", "input", "="), ("J", "job-name", "="), ("", "kill-on-invalid-dep", "="), ("L", "licenses", "="),
    ("", "mail-type", "="), ("", "mail-user", "="), ("", "mcs-label", "="), ("", "mem", "="),
    ("", "mem-bind", "="), ("", "mem-per-cpu", "="), ("", "mem-per-gpu", "="), ("", "mincpus", "="),
    ("", "network", "="), ("", "nice", "[="), ("k", "no-kill", "[="), ("", "no-requeue", ""),
    ("F", "nodefile", "="), ("w", "nodelist", "="), ("N", "nodes", "="), ("n", "ntasks", "="),
    ("", "ntasks-per-core", "="), ("", "ntasks-per-gpu", "="), ("", "ntasks-per-node", "="),
    ("", "ntasks-per-socket", "="), ("", "oom-kill-step", "[="), ("", "open-mode", "="), ("o", "output", "="),
    ("O", "overcommit", ""), ("s", "oversubscribe", ""), ("", "parsable", ""), ("p", "partition", "="),
    ("", "prefer", "="), ("", "priority", "="), ("", "profile", "="), ("", "propagate", "[="),
    ("q", "qos", "="), ("Q", "quiet", ""), ("", "reboot", ""), ("", "requeue", "[="), ("", "reservation", "="),
    ("", "resources", "="), ("", "resv-ports", "[="), ("", "segment", "="), ("", "signal", "="),
    ("", "sockets-per-node", "="), ("", "spread-job", ""), ("", "spread-segments", ""), ("", "stepmgr", ""),
    ("", "switches", "="), ("", "test-only", ""), ("", "thread-spec", "="), ("", "threads-per-core", "="),
    ("t", "time", "="), ("", "time-min", "="), ("", "tmp", "="), ("", "tres-bind", "="),
    ("", "tres-per-task", "="), ("", "uid", "="), ("", "usage", ""), ("", "use-min-nodes", ""),
    ("v", "verbose", ""), ("V", "version", ""), ("W", "wait", ""), ("", "wait-all-nodes", "="),
    ("", "wckey", "="), ("", "wrap", "="),
]

SRUN_MAN = [
    ("A", "account", "="), ("", "acctg-freq", "="), ("", "bb", "="), ("", "bbf", "="), ("", "bcast", "[="),
    ("", "bcast-exclude", "="), ("b", "begin", "="), ("D", "chdir", "="), ("", "cluster-constraint", "="),
    ("M", "clusters", "="), ("", "comment", "="), ("", "compress", "[="), ("", "consolidate-segments", ""),
    ("C", "constraint", "="), ("", "container", "="), ("", "container-id", "="), ("", "contiguous", ""),
    ("S", "core-spec", "="), ("", "cores-per-socket", "="), ("", "cpu-bind", "="), ("", "cpu-freq", "="),
    ("", "cpus-per-gpu", "="), ("c", "cpus-per-task", "="), ("", "deadline", "="), ("", "delay-boot", "="),
    ("d", "dependency", "="), ("X", "disable-status", ""), ("m", "distribution", "="), ("", "epilog", "="),
    ("e", "error", "="), ("", "exact", ""), ("x", "exclude", "="), ("", "exclusive", "[="), ("", "export", "="),
    ("", "external-launcher", ""), ("", "extra", "="), ("B", "extra-node-info", "="), ("", "gpu-bind", "="),
    ("", "gpu-freq", "="), ("G", "gpus", "="), ("", "gpus-per-node", "="), ("", "gpus-per-socket", "="),
    ("", "gpus-per-task", "="), ("", "gres", "="), ("", "gres-flags", "="), ("h", "help", ""),
    ("", "het-group", "="), ("", "hint", "="), ("H", "hold", ""), ("I", "immediate", "[="), ("i", "input", "="),
    ("J", "job-name", "="), ("", "jobid", "="), ("K", "kill-on-bad-exit", "[="), ("l", "label", ""),
    ("L", "licenses", "="), ("", "mail-type", "="), ("", "mail-user", "="), ("", "mcs-label", "="),
    ("", "mem", "="), ("", "mem-bind", "="), ("", "mem-per-cpu", "="), ("", "mem-per-gpu", "="),
    ("", "mincpus", "="), ("", "mpi", "="), ("", "msg-timeout", "="), ("", "multi-prog", ""),
    ("", "network", "="), ("", "nice", "[="), ("Z", "no-allocate", ""), ("k", "no-kill", "[="),
    ("F", "nodefile", "="), ("w", "nodelist", "="), ("N", "nodes", "="), ("n", "ntasks", "="),
    ("", "ntasks-per-core", "="), ("", "ntasks-per-gpu", "="), ("", "ntasks-per-node", "="),
    ("", "ntasks-per-socket", "="), ("", "oom-kill-step", "[="), ("", "open-mode", "="), ("o", "output", "="),
    ("O", "overcommit", ""), ("", "overlap", ""), ("s", "oversubscribe", ""), ("p", "partition", "="),
    ("", "prefer", "="), ("E", "preserve-env", ""), ("", "priority", "="), ("", "profile", "="),
    ("", "prolog", "="), ("", "propagate", "[="), ("", "pty", "[="), ("q", "qos", "="), ("Q", "quiet", ""),
    ("", "quit-on-interrupt", ""), ("", "reboot", ""), ("r", "relative", "="), ("", "reservation", "="),
    ("", "resources", "="), ("", "resv-ports", "[="), ("", "segment", "="), ("", "send-libs", "[="),
    ("", "signal", "="), ("", "slurmd-debug", "="), ("", "sockets-per-node", "="), ("", "spread-job", ""),
    ("", "spread-segments", ""), ("", "stepmgr", ""), ("", "switches", "="), ("", "task-epilog", "="),
    ("", "task-prolog", "="), ("", "test-only", ""), ("", "thread-spec", "="), ("T", "threads", "="),
    ("", "threads-per-core", "="), ("t", "time", "="), ("", "time-min", "="), ("", "tmp", "="),
    ("", "treewidth", "="), ("", "tres-bind", "="), ("", "tres-per-task", "="), ("u", "unbuffered", ""),
    ("", "usage", ""), ("", "use-min-nodes", ""), ("v", "verbose", ""), ("V", "version", ""),
    ("", "wait-for-children", ""), ("W", "wait", "="), ("", "wckey", "="), ("", "x11", "[="),
]

#: salloc's man page, for the table salloc will share (Spur has no salloc command yet).
SALLOC_MAN = [
    ("A", "account", "="), ("", "acctg-freq", "="), ("", "bb", "="), ("", "bbf", "="), ("", "begin", "="),
    ("", "bell", ""), ("D", "chdir", "="), ("", "cluster-constraint", "="), ("M", "clusters", "="),
    ("", "comment", "="), ("", "consolidate-segments", ""), ("C", "constraint", "="), ("", "container", "="),
    ("", "container-id", "="), ("", "contiguous", ""), ("S", "core-spec", "="), ("", "cores-per-socket", "="),
    ("", "cpu-freq", "="), ("", "cpus-per-gpu", "="), ("c", "cpus-per-task", "="), ("", "deadline", "="),
    ("", "delay-boot", "="), ("d", "dependency", "="), ("m", "distribution", "="), ("x", "exclude", "="),
    ("", "exclusive", "[="), ("", "extra", "="), ("B", "extra-node-info", "="), ("", "gpu-bind", "="),
    ("", "gpu-freq", "="), ("G", "gpus", "="), ("", "gpus-per-node", "="), ("", "gpus-per-socket", "="),
    ("", "gpus-per-task", "="), ("", "gres", "="), ("", "gres-flags", "="), ("h", "help", ""),
    ("", "hint", "="), ("H", "hold", ""), ("I", "immediate", "[="), ("J", "job-name", "="),
    ("K", "kill-command", "[="), ("L", "licenses", "="), ("", "mail-type", "="), ("", "mail-user", "="),
    ("", "mcs-label", "="), ("", "mem", "="), ("", "mem-bind", "="), ("", "mem-per-cpu", "="),
    ("", "mem-per-gpu", "="), ("", "mincpus", "="), ("", "network", "="), ("", "nice", "[="),
    ("", "no-bell", ""), ("k", "no-kill", "[="), ("", "no-shell", ""), ("F", "nodefile", "="),
    ("w", "nodelist", "="), ("N", "nodes", "="), ("n", "ntasks", "="), ("", "ntasks-per-core", "="),
    ("", "ntasks-per-gpu", "="), ("", "ntasks-per-node", "="), ("", "ntasks-per-socket", "="),
    ("", "oom-kill-step", "[="), ("O", "overcommit", ""), ("s", "oversubscribe", ""), ("p", "partition", "="),
    ("", "prefer", "="), ("", "priority", "="), ("", "profile", "="), ("q", "qos", "="), ("Q", "quiet", ""),
    ("", "reboot", ""), ("", "reservation", "="), ("", "resources", "="), ("", "resv-ports", "[="),
    ("", "segment", "="), ("", "signal", "="), ("", "sockets-per-node", "="), ("", "spread-job", ""),
    ("", "spread-segments", ""), ("", "stepmgr", ""), ("", "switches", "="), ("", "thread-spec", "="),
    ("", "threads-per-core", "="), ("t", "time", "="), ("", "time-min", "="), ("", "tmp", "="),
    ("", "tres-bind", "="), ("", "tres-per-task", "="), ("", "usage", ""), ("", "use-min-nodes", ""),
    ("v", "verbose", ""), ("V", "version", ""), ("", "wait-all-nodes", "="), ("", "wckey", "="),
    ("", "x11", "[="),
]

#: A valid value for each option that takes one (the same for sbatch and srun).
VALUES = {
    "account": "acct", "acctg-freq": "task=30", "array": "0-3", "batch": "feat", "bb": "capacity=1G",
    "bbf": "bb.conf", "bcast": "/tmp/exe", "bcast-exclude": "NONE", "begin": "now+1hour", "chdir": "sub",
    "cluster-constraint": "c1", "clusters": "c1", "comment": "hello", "compress": "lz4", "constraint": "a&b",
    "container": "/bundle", "container-id": "cid", "core-spec": "2", "cores-per-socket": "4",
    "cpu-bind": "cores", "cpu-freq": "high", "cpus-per-gpu": "2", "cpus-per-task": "2",
    "deadline": "now+2hours", "delay-boot": "10", "dependency": "afterok:1", "distribution": "cyclic",
    "epilog": "/bin/true", "error": "e.txt", "exclude": "n9", "exclusive": "user", "export": "ALL",
    "export-file": "ENVFILE", "external-launcher": "", "extra": "x=1", "extra-node-info": "2:4:1",
    "get-user-env": "60L", "gid": "0", "gpu-bind": "closest", "gpu-freq": "high", "gpus": "1", "gpus-per-node": "1",
    "gpus-per-socket": "1", "gpus-per-task": "1", "gres": "gpu:1", "gres-flags": "enforce-binding",
    "het-group": "0", "hint": "compute_bound", "immediate": "5", "input": "none", "job-name": "jn",
    "jobid": "12", "kill-on-bad-exit": "1", "kill-on-invalid-dep": "yes", "licenses": "lic:2",
    "mail-type": "END", "mail-user": "me@example.org", "mcs-label": "grp", "mem": "1G", "mem-bind": "local",
    "mem-per-cpu": "512", "mem-per-gpu": "1G", "mincpus": "2", "mpi": "pmi2", "msg-timeout": "30",
    "network": "system", "nice": "10", "no-kill": "off", "nodefile": "HOSTFILE", "nodelist": "n[1-2]",
    "nodes": "2", "ntasks": "4", "ntasks-per-core": "1", "ntasks-per-gpu": "1", "ntasks-per-node": "2",
    "ntasks-per-socket": "1", "oom-kill-step": "1", "open-mode": "append", "output": "o.txt",
    "partition": "debug", "prefer": "feat", "priority": "10", "profile": "task", "prolog": "/bin/true",
    "propagate": "NOFILE", "pty": "", "qos": "normal", "relative": "0", "requeue": "expedite",
    "reservation": "resv", "resources": "lic:1", "resv-ports": "2", "segment": "2", "send-libs": "yes",
    "signal": "B:USR1@30", "slurmd-debug": "error", "sockets-per-node": "2", "switches": "1@10",
    "task-epilog": "/bin/true", "task-prolog": "/bin/true", "thread-spec": "1", "threads": "4",
    "threads-per-core": "1", "time": "10", "time-min": "5", "tmp": "1G", "treewidth": "16",
    "tres-bind": "gres/gpu:closest", "tres-per-task": "cpu=2", "uid": "0", "wait": "30",
    "wait-all-nodes": "1", "wckey": "wk", "wrap": "true", "x11": "all",
}

#: Options that end the command (exit 0) instead of giving a job.
EXITS = {"help", "usage", "version"}


def _ids(rows):
    return [r[1] for r in rows]


@pytest.fixture
def files(tmp_path):
    """A host file and an environment file the value table refers to; a script."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "hosts").write_text("n1\nn2\n")
    (tmp_path / "env").write_bytes(b"A=1\0B=2\0")
    (tmp_path / "job.sh").write_text("#!/bin/sh\ntrue\n")
    (tmp_path / "mp.conf").write_text("0 true\n")
    return tmp_path


def _value(name: str, files: Path) -> str:
    return VALUES[name].replace("HOSTFILE", str(files / "hosts")).replace("ENVFILE", str(files / "env"))


def _forms(short: str, name: str, kind: str, value: str) -> list[list[str]]:
    """The command-line spellings of one option as its man page documents it."""
    forms: list[list[str]] = []
    if kind == "=":
        forms += [[f"--{name}={value}"], [f"--{name}", value]]
        if short:
            forms += [[f"-{short}", value], [f"-{short}{value}"]]
    elif kind == "[=":
        forms += [[f"--{name}"]]
        if value:
            forms += [[f"--{name}={value}"]]
        if short:
            forms += [[f"-{short}"]] + ([[f"-{short}{value}"]] if value else [])
    else:
        forms += [[f"--{name}"]]
        if short:
            forms += [[f"-{short}"]]
    return forms


def _companions(name: str, kind: str) -> list[str]:
    """What an option needs next to it to be valid (sbatch: --resv-ports wants --stepmgr)."""
    return ["--stepmgr"] if name == "resv-ports" else []


def _sbatch(args, files, **kw):
    return sbatch.build_submission(args, environ={"PATH": "/usr/bin:/bin"}, cwd=str(files), now=1_700_000_000,
                                   uid=0, **kw)


@pytest.mark.parametrize(("short", "name", "kind"), SBATCH_MAN, ids=_ids(SBATCH_MAN))
def test_sbatch_man_option_parses(short, name, kind, files, capsys):
    value = _value(name, files) if kind != "" else ""
    for form in _forms(short, name, kind, value):
        argv = [*form, *_companions(name, kind)]
        if name not in EXITS and name != "wrap":
            argv.append("job.sh")
        if name in EXITS:
            with pytest.raises(Exit) as info:
                _sbatch(argv, files)
            assert info.value.code == 0, form
            continue
        sub = _sbatch(argv, files)
        assert sub.spec["script"].startswith("#!/bin/sh"), form
    capsys.readouterr()


@pytest.mark.parametrize(("short", "name", "kind"), SBATCH_MAN, ids=_ids(SBATCH_MAN))
def test_sbatch_man_option_as_directive(short, name, kind, files, capsys):
    """Each option works on an #SBATCH line; the command-line-only ones (help, usage,
    version, verbose, quiet, wrap: Slurm's sbatch_early_pass) are accepted and ignored."""
    value = _value(name, files) if kind != "" else ""
    for form in _forms(short, name, kind, value):
        words = " ".join(f"'{w}'" if " " in w else w for w in form + _companions(name, kind))
        script = f"#!/bin/sh\n#SBATCH {words}\ntrue\n"
        sub = _sbatch([], files, stdin_text=script)
        assert sub.spec["script"] == script, form
    capsys.readouterr()


@pytest.mark.parametrize(("short", "name", "kind"), SRUN_MAN, ids=_ids(SRUN_MAN))
def test_srun_man_option_parses(short, name, kind, files, capsys):
    value = _value(name, files) if kind != "" else ""
    for form in _forms(short, name, kind, value):
        command = [str(files / "mp.conf")] if name == "multi-prog" else ["hostname"]
        argv = [*form, *_companions(name, kind), *command]
        if name == "no-allocate":
            argv = [*form, "-w", "n1", *command]
        if name in EXITS:
            with pytest.raises(Exit) as info:
                srun_opts.parse(argv, environ={}, cwd=str(files), now=1_700_000_000, uid=0)
            assert info.value.code == 0, form
            continue
        req = srun_opts.parse(argv, environ={}, cwd=str(files), now=1_700_000_000, uid=0)
        assert req.command == command, form
    capsys.readouterr()


@pytest.mark.parametrize(("cmd", "rows"), [("sbatch", SBATCH_MAN), ("srun", SRUN_MAN), ("salloc", SALLOC_MAN)])
def test_table_kinds_match_the_man_pages(cmd, rows):
    """The documented argument form is what the table takes (an option documented without
    argument may take an optional one in slurm_opt.c: --overlap, --external-launcher; salloc's
    page does not mention -b, which slurm_opt.c gives it)."""
    for short, name, kind in rows:
        o = opts.option(cmd, name)
        assert o.short == short or (cmd, name) == ("salloc", "begin"), name
        if kind == "=":
            assert o.arg == REQUIRED, name
        elif kind == "[=":
            assert o.arg == OPTIONAL, name
        else:
            assert o.arg in (NO_ARG, OPTIONAL), name


@pytest.mark.parametrize(("short", "name", "kind"), [r for r in SBATCH_MAN if r[2] == ""],
                         ids=_ids([r for r in SBATCH_MAN if r[2] == ""]))
def test_sbatch_flag_refuses_an_argument(short, name, kind, capsys):
    with pytest.raises(UsageError, match=f"option '--{name}' doesn't allow an argument"):
        opts.parse_argv("sbatch", [f"--{name}=x"])


@pytest.mark.parametrize(("short", "name", "kind"), [r for r in SRUN_MAN if r[2] == "="],
                         ids=_ids([r for r in SRUN_MAN if r[2] == "="]))
def test_srun_required_argument_is_required(short, name, kind):
    with pytest.raises(UsageError, match=f"option '--{name}' requires an argument"):
        opts.parse_argv("srun", [f"--{name}"])
    if short:
        with pytest.raises(UsageError, match=f"option requires an argument -- '{short}'"):
            opts.parse_argv("srun", [f"-{short}"])


def test_optional_argument_is_only_attached():
    # getopt_long: an optional argument must be attached; "--nice 5" leaves 5 as the script
    pairs, operands = opts.parse_argv("sbatch", ["--nice", "5"])
    assert pairs == [("nice", None)] and operands == ["5"]
    pairs, operands = opts.parse_argv("sbatch", ["-k", "off"])
    assert pairs == [("no-kill", None)] and operands == ["off"]


def test_srun_and_sbatch_differ_where_slurm_does():
    # -W: sbatch --wait is a flag, srun --wait=<seconds>; -K: srun --kill-on-bad-exit only
    assert opts.option("sbatch", "wait").arg == NO_ARG
    assert opts.option("srun", "wait").arg == REQUIRED
    assert opts.parse_argv("srun", ["-K", "x"]) == ([("kill-on-bad-exit", None)], ["x"])
    with pytest.raises(UsageError, match="invalid option -- 'K'"):
        opts.parse_argv("sbatch", ["-K"])
    with pytest.raises(UsageError, match="unrecognized option '--label'"):
        opts.parse_argv("sbatch", ["--label"])
    with pytest.raises(UsageError, match="unrecognized option '--array=1'"[:-3]):
        opts.parse_argv("srun", ["--array=1"])


def test_aliases_and_abbreviations():
    assert opts.parse_argv("srun", ["--cpu_bind=none", "x"])[0] == [("cpu-bind", "none")]
    assert opts.parse_argv("sbatch", ["--tasks-per-node=3"])[0] == [("ntasks-per-node", "3")]
    assert opts.parse_argv("srun", ["--pack-group=0", "x"])[0] == [("het-group", "0")]
    assert opts.parse_argv("sbatch", ["--parsa"])[0] == [("parsable", None)]
    # glibc: the possibilities of an ambiguous prefix leave out an alias of the first one
    with pytest.raises(UsageError) as info:
        opts.parse_argv("srun", ["--cpu"])
    assert info.value.message == ("option '--cpu' is ambiguous; possibilities: '--cpu-bind' '--cpu-freq' "
                                  "'--cpus-per-gpu' '--cpus-per-task'")


def test_every_man_option_is_in_the_table_and_documented():
    doc = (Path(__file__).parents[2] / "docs" / "options.md").read_text()
    for cmd, rows in (("sbatch", SBATCH_MAN), ("srun", SRUN_MAN)):
        for _short, name, _kind in rows:
            assert opts.option(cmd, name)
            assert f"`--{name}" in doc, name


def test_options_doc_is_generated_from_the_table():
    doc = (Path(__file__).parents[2] / "docs" / "options.md").read_text()
    assert doc == opts.render_doc()
    # one line per option, each with its effect
    rows = [line for line in doc.splitlines() if line.startswith("| `") or line.startswith("| (")]
    assert len(rows) == len(opts.OPTIONS)
    assert all("|" not in o.doc and o.effect in ("real", "recorded", "cli") for o in opts.OPTIONS)
    assert all(f"| {o.effect} |" in row for o, row in zip(opts.OPTIONS, rows, strict=True))


def test_env_vars_name_options_of_their_command():
    for cmd, table in opts.ENV_VARS.items():
        for var, name in table:
            assert opts.option(cmd, name), (cmd, var)


def test_every_long_name_is_unique_per_command():
    for cmd in ("sbatch", "srun", "salloc"):
        seen: dict[str, str] = {}
        shorts: dict[str, str] = {}
        for o in opts.options_for(cmd):
            for name in o.longs:
                assert name not in seen, (cmd, name)
                seen[name] = o.name
            if o.short:
                assert o.short not in shorts, (cmd, o.short)
                shorts[o.short] = o.name


def test_unknown_values_are_refused_even_for_recorded_options(files):
    with pytest.raises(CliError) as info:
        _sbatch(["--gres-flags=bogus", "job.sh"], files)
    assert (info.value.message, info.value.code) == ("Invalid --gres-flags specification: bogus", 255)


# --------------------------------------------------------------------------- the value parsers


@pytest.mark.parametrize(
    ("text", "num"),
    [("USR1", 10), ("sigusr1", 10), (" TERM ", 15), ("10", 10), ("10 ", 10), ("99", 99), ("10x", 0),
     ("WINCH", 0), ("SIGKILLX", 0), ("", 0), ("XCPU", 24)],
)
def test_sig_name2num_is_slurms(text, num):
    from spurcore.signals import sig_name2num

    # proc_args.c: numbers as strtol reads them, or one of 18 names (not kill -l's whole list)
    assert sig_name2num(text) == num


@pytest.mark.parametrize(
    ("text", "mb"),
    [("100", 100), ("100M", 100), ("2G", 2048), ("2gb", 2048), ("1T", 1048576), ("512K", 1), ("1025k", 2),
     (" 7", 7), ("+7", 7), ("0", 0), ("-1", None), ("x", None), ("2GiB", None), ("2 G", None), ("7 ", None)],
)
def test_str_to_mbytes_is_slurms(text, mb):
    from spurcore.timefmt import str_to_mbytes

    assert str_to_mbytes(text) == mb


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("USR1", (10, 60, "")), ("B:USR1", (10, 60, "B")), ("R:10@5", (10, 5, "R")), ("RB:HUP@0", (1, 0, "RB")),
     ("BR:HUP", (1, 60, "RB")), ("b10", (10, 60, "B")), ("USR1@", (10, 0, "")), ("USR1@x", None),
     ("USR1@-1", None), ("BUS", None), ("0", None)],
)
def test_signal_option_parsing(text, parsed):
    assert opts.parse_signal_opts(text) == parsed


@pytest.mark.parametrize(
    ("text", "result"),
    [("block", ("block", 0)), ("Cyclic", ("cyclic", 0)), ("*", ("block", 0)), ("*:*", ("block:cyclic", 0)),
     ("block:fcyclic,Pack", ("block:fcyclic,pack", 0)), ("arbitrary", ("arbitrary", 0)),
     ("hostfile", ("arbitrary", 0)), ("plane=4", ("plane", 4)), ("pack", ("pack", 0))],
)
def test_distribution_parsing(text, result):
    assert opts.parse_distribution(text, {}, lambda line: None) == result


@pytest.mark.parametrize("text", ["", "diagonal", "block:diagonal", "block,sideways", "a:b:c:d", "plane=0",
                                  "plane=x", ",block"])
def test_distribution_refused(text):
    with pytest.raises(ValueError):
        opts.parse_distribution(text, {}, lambda line: None)


def test_plane_size_from_the_environment():
    assert opts.parse_distribution("plane", {"SLURM_DIST_PLANESIZE": "3"}, lambda line: None) == ("plane", 3)


@pytest.mark.parametrize(
    ("text", "nodes"),
    [("2", (2, 2)), ("2-4", (2, 4)), ("-4", (1, 4)), ("1k", (1024, 1024)), ("3,1,7", (1, 7)), ("2-10:4", (2, 6)),
     ("0", (0, 0))],
)
def test_node_counts(text, nodes):
    assert opts.verify_node_count(text) == nodes


def test_autocomplete_lists_matching_flags(capsys):
    with pytest.raises(Exit):
        opts.apply(opts.State("sbatch"), "autocomplete", "--wai", env=False)
    assert capsys.readouterr().out == "--wait\n--wait-all-nodes=\n\n"
