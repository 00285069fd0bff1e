"""sbatch option handling: #SBATCH directives, --wrap, --export, the input environment,
Slurm's value checks with their messages and exit statuses, --test-only."""

from __future__ import annotations

import pytest

from spurcli import sbatch
from spurcli.common import CliError, Exit

SCRIPT = """#!/bin/bash
#SBATCH -J fromscript
#SBATCH --time=1:30 -N 2   # a trailing comment
#SBATCH --output="out %j.txt"

# an ordinary comment does not end the block
#SBATCH --partition=short
echo hello
#SBATCH --account=too_late
"""


def _submit(tmp_path, args, script=SCRIPT, environ=None):
    path = tmp_path / "job.sh"
    path.write_text(script)
    argv = [a.replace("JOB", str(path)) for a in args]
    return sbatch.build_submission(argv, environ=environ or {"HOME": "/h"}, cwd=str(tmp_path))


def test_directives_are_read_until_first_command(tmp_path):
    sub = _submit(tmp_path, ["JOB"])
    spec = sub.spec
    assert spec["name"] == "fromscript"
    assert spec["nodes"] == 2
    assert spec["time_limit"] == 120  # 1:30 = 1 min 30 s, rounded up to minutes as Slurm stores it
    assert spec["stdout"] == "out %j.txt"
    assert spec["partition"] == "short"
    assert "account" not in spec  # after "echo hello": not a directive any more


def test_command_line_wins_over_directives(tmp_path):
    sub = _submit(tmp_path, ["-J", "cli", "--nodes=3", "-t", "5", "JOB"])
    assert sub.spec["name"] == "cli"
    assert sub.spec["nodes"] == 3
    assert sub.spec["time_limit"] == 300


def test_script_arguments_and_identity(tmp_path):
    sub = _submit(tmp_path, ["--parsable", "JOB", "a", "-N", "9"])
    spec = sub.spec
    assert spec["argv"] == ["a", "-N", "9"]  # options after the script belong to the script
    assert spec["nodes"] == 2
    assert spec["command"] == str(tmp_path / "job.sh")
    assert spec["cwd"] == str(tmp_path)
    assert spec["submit_line"].startswith("sbatch --parsable ") and spec["submit_line"].endswith(" a -N 9")
    assert spec["script"] == SCRIPT
    assert sub.parsable and not sub.wait and not sub.quiet
    assert isinstance(spec["uid"], int) and isinstance(spec["gid"], int) and spec["user"]
    assert spec["alloc_node"]


def test_default_name_is_script_basename(tmp_path):
    sub = _submit(tmp_path, ["JOB"], script="#!/bin/sh\ntrue\n")
    assert sub.spec["name"] == "job.sh"
    assert "time_limit" not in sub.spec  # no -t: the partition's limit (UNLIMITED)


def test_wrap_script_text_and_name(tmp_path):
    sub = sbatch.build_submission(["--wrap", "echo hi; exit 3"], environ={}, cwd=str(tmp_path))
    assert sub.spec["script"] == "#!/bin/sh\n# This script was created by sbatch --wrap.\n\necho hi; exit 3\n"
    assert sub.spec["name"] == "wrap"
    assert sub.spec["command"] == ""  # scontrol shows Command=(null)


def test_wrap_with_script_arguments_is_an_error(tmp_path):
    with pytest.raises(CliError, match="Script arguments not permitted with --wrap option"):
        sbatch.build_submission(["--wrap=true", "x"], environ={}, cwd=str(tmp_path))


def test_chdir_and_streams(tmp_path):
    sub = sbatch.build_submission(
        ["-D", "sub", "-o", "o.txt", "-e", "none", "-i", "in.txt", "-H", "-d", "afterok:5", "-A", "acct",
         "-c", "2", "-n", "4", "--mem=2G", "--wrap=true"],
        environ={}, cwd=str(tmp_path),
    )
    spec = sub.spec
    assert spec["cwd"] == str(tmp_path / "sub")
    assert spec["stdout"] == "o.txt" and spec["stderr"] == "/dev/null" and spec["stdin"] == "in.txt"
    assert spec["hold"] is True
    assert spec["dependency"] == "afterok:5"
    assert spec["account"] == "acct"
    assert spec["cpus_per_task"] == 2 and spec["ntasks"] == 4
    assert spec["mem_mb"] == 2048


@pytest.mark.parametrize(
    ("text", "secs"),
    [("10", 600), ("1:30", 120), ("1:00:00", 3600), ("2-0", 172800), ("1-1:1:1", 90120),
     ("0:30", 60), ("UNLIMITED", None), ("0", None)],
)
def test_time_formats(tmp_path, text, secs):
    sub = sbatch.build_submission(["-t", text, "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert sub.spec["time_limit"] == secs


@pytest.mark.parametrize(
    ("args", "message", "code"),
    # Slurm: a failing arg_set_* exits -1 (255); parse_int exits 1
    [(["-t", "abc"], "Invalid --time specification", 255),
     (["--mem", "lots"], "Invalid --mem specification", 255),
     (["-n", "0"], 'Invalid numeric value "0" for --ntasks.', 1),
     (["-c", "x"], 'Invalid numeric value "x" for --cpus-per-task.', 1),
     (["-N", "zero"], '"zero" is not a valid node count', 255)],
)
def test_invalid_values(tmp_path, args, message, code):
    with pytest.raises(CliError) as info:
        sbatch.build_submission([*args, "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert (info.value.message, info.value.code) == (message, code)


ENV = {"HOME": "/h", "PATH": "/bin", "SLURM_CONF": "/etc/slurm.conf", "FOO": "1"}


@pytest.mark.parametrize(
    ("export", "expected"),
    [
        (None, ENV),
        ("ALL", ENV),
        ("NONE", {"SLURM_CONF": "/etc/slurm.conf"}),
        ("NIL", {"SLURM_CONF": "/etc/slurm.conf"}),  # NIL, like NONE, keeps SLURM_* (sbatch.c)
        ("FOO", {"SLURM_CONF": "/etc/slurm.conf", "FOO": "1"}),
        ("FOO,BAR=2", {"SLURM_CONF": "/etc/slurm.conf", "FOO": "1", "BAR": "2"}),
        ("ALL,FOO=9", {**ENV, "FOO": "9"}),
        ("MISSING", {"SLURM_CONF": "/etc/slurm.conf"}),
        ("'A=x,y',FOO", {"SLURM_CONF": "/etc/slurm.conf", "A": "x,y", "FOO": "1"}),
    ],
)
def test_export_variants(export, expected):
    assert sbatch.build_env(export, ENV) == expected


def test_export_option_reaches_spec(tmp_path):
    sub = sbatch.build_submission(["--export=NONE", "--wrap=true"], environ=ENV, cwd=str(tmp_path))
    # sbatch sets SLURM_EXPORT_ENV for any --export but ALL, so srun in the job inherits it
    # (the man page's note: set SLURM_EXPORT_ENV=ALL in the script to undo it)
    assert sub.spec["env"] == {"SLURM_CONF": "/etc/slurm.conf", "SLURM_EXPORT_ENV": "NONE"}
    sub = sbatch.build_submission(["--wrap=true"], environ=ENV, cwd=str(tmp_path))
    assert sub.spec["env"] == ENV


def test_directive_tokenizer():
    assert sbatch.tokenize_directive(' -J "a b" --x=\'c d\'  # c -N 3') == ["-J", "a b", "--x=c d"]
    assert sbatch.tokenize_directive("") == []


def test_directive_magic_word_is_a_prefix(tmp_path):
    # _opt_batch_script compares the first 7 characters only: "#SBATCHX" yields the word "X",
    # which getopt stops at, and Slurm refuses the script
    script = "#!/bin/sh\n#SBATCH\t-N 4\n#SBATCH-J glued\ntrue\n"
    assert sbatch.script_directives(script) == ["-N", "4", "-J", "glued"]
    with pytest.raises(CliError) as info:
        _submit(tmp_path, ["JOB"], script="#!/bin/sh\n#SBATCHX -N 5\ntrue\n")
    assert (info.value.message, info.value.code) == ("Invalid directive found in batch script: X", 255)


@pytest.mark.parametrize(
    ("script", "message"),
    [("", "Batch script is empty!"), ("  \n\n", "Batch script contains only whitespace!"),
     ("echo hi\n", "This does not look like a batch script"),
     ("#!/bin/sh\r\ntrue\r\n", "DOS line breaks")],
)
def test_script_checks(tmp_path, script, message):
    with pytest.raises(CliError, match=message):
        _submit(tmp_path, ["JOB"], script=script)


def test_missing_script_file(tmp_path):
    with pytest.raises(CliError, match="Unable to open file"):
        sbatch.build_submission([str(tmp_path / "nope.sh")], environ={}, cwd=str(tmp_path))


def test_script_from_stdin(tmp_path):
    sub = sbatch.build_submission(["-J", "x"], environ={}, cwd=str(tmp_path), stdin_text="#!/bin/sh\ntrue\n")
    assert sub.spec["script"] == "#!/bin/sh\ntrue\n"
    assert sub.spec["name"] == "x"


def test_help_and_version_exit_zero(tmp_path, capsys):
    with pytest.raises(Exit):
        sbatch.build_submission(["--version"], environ={}, cwd=str(tmp_path))
    assert capsys.readouterr().out == "slurm 25.11.0\n"
    assert sbatch.main(["--usage"]) == 0
    assert capsys.readouterr().out.startswith("Usage: sbatch")
    assert sbatch.main(["--help"]) == 0
    assert "--wrap" in capsys.readouterr().out


def test_unknown_option_is_getopts_message(capsys):
    # slurm_opt.c's "?" handler prints the Try line and exits -1
    assert sbatch.main(["--bogus"]) == 255
    err = capsys.readouterr().err
    assert err == "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"


@pytest.mark.parametrize(
    ("raw", "code"),
    [(0, 0), (3 << 8, 3), (255 << 8, 255), (9, 1), (15, 1), (None, 1)],
)
def test_wait_exit_code(raw, code):
    # Slurm _job_wait: WIFEXITED -> WEXITSTATUS, otherwise 1.
    assert sbatch.wait_exit_code({"exit_code": raw}) == code


# --------------------------------------------------------------------------- Slurm's value checks


@pytest.fixture
def clean_env(monkeypatch):
    """No SBATCH_*/SLURM_* input variables from the machine running the tests."""
    import os

    for key in list(os.environ):
        if key.startswith(("SBATCH_", "SLURM_", "SALLOC_", "SRUN_")):
            monkeypatch.delenv(key)


BAD_VALUES = [
    # (arguments, stderr after "sbatch: error: " or the raw line, exit status) as Slurm 25.11
    (["--time=abc"], "error: Invalid --time specification", 255),
    (["--time-min=1:2:3:4"], "error: Invalid --time-min specification", 255),
    (["--mem=lots"], "error: Invalid --mem specification", 255),
    (["--mem-per-cpu=1X"], "error: Invalid --mem-per-cpu specification", 255),
    (["--mem-per-gpu=-1"], "error: Invalid --mem-per-gpu specification", 255),
    (["--tmp=1Q"], "error: Invalid --tmp specification", 255),
    (["--nodes=x"], 'error: "x" is not a valid node count', 255),
    (["--nodes=4-2"], "error: Maximum node count 2 is less than minimum node count 4", 255),
    (["--ntasks=-1"], 'error: Invalid numeric value "-1" for --ntasks.', 1),
    (["--ntasks-per-node=0"], 'error: Invalid numeric value "0" for --ntasks-per-node.', 1),
    (["--ntasks-per-node=4x"], 'error: Invalid numeric value "4x" for --ntasks-per-node.', 1),
    (["--ntasks-per-node=99999999999"], "error: Numeric argument (99999999999) too large for --ntasks-per-node.", 1),
    (["--cpus-per-task=0"], 'error: Invalid numeric value "0" for --cpus-per-task.', 1),
    (["--signal=WINCH"], "error: Invalid --signal specification", 255),  # not in sig_name2num's table
    (["--signal=USR1@x"], "error: Invalid --signal specification", 255),
    (["--signal=USR1@70000"], "error: Invalid --signal specification", 255),
    (["--signal=0"], "error: Invalid --signal specification", 255),
    (["--open-mode=x"], "error: Invalid --open-mode specification", 255),
    (["--mail-type=bogus"], "error: Invalid --mail-type specification", 255),
    (["--begin=tomorrowish"], "error: Invalid --begin specification", 255),
    (["--deadline=13/45"], "error: Invalid --deadline specification", 255),
    (["--nice=3000000000"], "error: Invalid --nice value, out of range (+/- 2147483645)", 255),
    (["--get-user-env=10X"], "error: Invalid --get-user-env specification", 255),
    (["--exclusive=bad"], "error: Invalid --exclusive specification", 255),
    (["--kill-on-invalid-dep=maybe"], "error: Invalid --kill-on-invalid-dep specification", 255),
    (["--distribution=diagonal"], "error: Invalid --distribution specification", 255),
    (["--no-kill=maybe"], "error: Invalid --no-kill specification", 255),
    (["--oom-kill-step=2"], "error: Invalid --oom-kill-step specification", 255),
    (["--priority=-1"], "error: Priority must be >= 0", 255),
    (["--profile=everything"], "error: invalid --profile=everything option", 255),
    (["--segment=x"], "error: Invalid --segment specification", 255),
    (["--wait-all-nodes=2"], "error: Invalid --wait-all-nodes specification", 255),
    (["--delay-boot=soon"], "error: Invalid --delay-boot specification", 255),
    (["--gpu-bind=fastest"], "error: Invalid --gpu-bind argument: fastest", 255),
    (["--gpu-freq=turbo"], "error: Invalid --gpu-freq argument: gpu:turbo", 255),
    (["--gres-flags=bogus"], "error: Invalid --gres-flags specification: bogus", 255),
    (["--cores-per-socket=0"], 'error: Invalid numeric value "0" for --cores-per-socket.', 1),
    (["-B", "x"], 'error: Invalid numeric value "x" for first arg of -B.', 1),
    (["--switches=0"], 'error: Invalid numeric value "0" for --switches.', 1),
    # conflicts: Slurm's fatal() (exit 1) and _opt_verify (exit 1)
    (["--mem=1G", "--mem-per-cpu=1G"], "fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.", 1),
    (["--exclusive", "-s"], "fatal: --exclusive and --oversubscribe options are mutually exclusive", 1),
    (["-S", "1", "--thread-spec=1"], "fatal: -S/--core-spec and --thred-spec options are mutually exclusive", 1),
    (["-c", "2", "--cpus-per-gpu=2"],
     "fatal: --cpus-per-task, --tres-per-task=cpu:#, and --cpus-per-gpu are mutually exclusive", 1),
    (["--tres-per-task=mem=1G"], "fatal: Invalid TRES for --tres-per-task: mem", 1),
    (["--begin=now+2hours", "--deadline=now+1hour"], "error: Incompatible begin and deadline time specification", 1),
    (["-v", "-Q"], "error: don't specify both --verbose (-v) and --quiet (-Q)", 1),
    (["--resv-ports"], "error: Slurmstepd step management must be enabled to use --resv-ports for job allocations", 1),
    (["--bb=x", "--bbf=y"], "error: Cannot specify both --burst-buffer and --bbf", 1),
    (["--hint=fast"], 'error: unrecognized --hint argument "fast", see --hint=help', 1),
]


@pytest.mark.parametrize(("args", "line", "code"), BAD_VALUES, ids=[" ".join(c[0]) for c in BAD_VALUES])
def test_bad_values_get_slurms_message_and_status(args, line, code, capsys, clean_env):
    assert sbatch.main([*args, "--wrap=true"]) == code
    assert capsys.readouterr().err == f"sbatch: {line}\n"


def test_a_bad_value_is_refused_even_when_a_later_one_is_good(capsys, clean_env):
    # every occurrence goes through Slurm's set function: the first bad one ends sbatch
    assert sbatch.main(["--time=abc", "--time=5", "--wrap=true"]) == 255
    assert capsys.readouterr().err == "sbatch: error: Invalid --time specification\n"


def test_getopt_errors_exit_255(capsys, clean_env):
    assert sbatch.main(["--time"]) == 255
    assert capsys.readouterr().err == ("sbatch: option '--time' requires an argument\n"
                                       "Try \"sbatch --help\" for more information\n")
    assert sbatch.main(["--parsable=yes", "--wrap=true"]) == 255
    assert "sbatch: option '--parsable' doesn't allow an argument\n" in capsys.readouterr().err


def test_acctg_freq_names_each_bad_item(capsys, clean_env):
    assert sbatch.main(["--acctg-freq=task=30,energy=x,gpu=3", "--wrap=true"]) == 255
    assert capsys.readouterr().err == ("sbatch: error: Invalid --acctg-freq specification: energy=x\n"
                                       "sbatch: error: Invalid --acctg-freq specification: gpu=3\n")


def test_root_only_options(tmp_path):
    with pytest.raises(CliError) as info:
        sbatch.build_submission(["--uid=0", "--wrap=true"], environ={}, cwd=str(tmp_path), uid=1000)
    assert (info.value.message, info.value.code) == ("--uid only permitted by root user", 255)
    with pytest.raises(CliError) as info:
        sbatch.build_submission(["--gid=0", "--wrap=true"], environ={}, cwd=str(tmp_path), uid=1000)
    assert info.value.message == "--gid only permitted by root user"
    sub = sbatch.build_submission(["--uid=0", "--gid=0", "--wrap=true"], environ={}, cwd=str(tmp_path), uid=0)
    assert (sub.spec["uid"], sub.spec["gid"], sub.spec["user"]) == (0, 0, "root")


def test_command_line_errors_come_before_script_errors(tmp_path):
    # Slurm's first pass runs the command line alone: its error is the one reported
    script = "#!/bin/sh\n#SBATCH --time=bad\ntrue\n"
    with pytest.raises(CliError, match="Invalid --mem specification"):
        _submit(tmp_path, ["--mem=bad", "JOB"], script=script)
    with pytest.raises(CliError, match="Invalid --time specification"):
        _submit(tmp_path, ["--mem=1", "JOB"], script=script)


def test_exit_status_from_slurm_exit_error(capsys, clean_env, monkeypatch):
    monkeypatch.setenv("SLURM_EXIT_ERROR", "7")
    assert sbatch.main(["--begin=now+2hours", "--deadline=now+1hour", "--wrap=true"]) == 7
    # a bad value is not an "error exit": still 255
    assert sbatch.main(["--time=x", "--wrap=true"]) == 255


# --------------------------------------------------------------------------- options → JobSpec


def test_option_surface_maps_to_jobspec_fields(tmp_path, utc):
    now = 1_700_000_000.0  # 2023-11-14T22:13:20 UTC
    sub = sbatch.build_submission(
        ["--array=1-5%2", "--ntasks-per-node=2", "-N", "3", "--mem-per-cpu=1G", "--exclusive=user",
         "-w", "n[1-3]", "-x", "n9", "--begin=2023-11-15T10:00", "--deadline=now+1day", "--open-mode=append",
         "--signal=RB:USR2@120", "--requeue", "--kill-on-invalid-dep=no", "--comment=c", "--wckey=w",
         "--nice", "-q", "high", "-C", "ssd", "--time-min=1:30", "--mail-type=END,FAIL",
         "--mail-user=u@x", "--gres=gpu:1", "--licenses=a:1", "--wrap=true"],
        environ={}, cwd=str(tmp_path), now=now)
    spec = sub.spec
    assert spec["array"] == "1-5%2"
    assert spec["stdout"] == "slurm-%A_%a.out"  # an array's default output pattern
    assert (spec["nodes"], spec["ntasks"], spec["ntasks_per_node"]) == (3, 6, 2)
    assert spec["mem_per_cpu"] == 1024 and "mem_mb" not in spec
    assert spec["exclusive"] == "user"
    assert (spec["nodelist"], spec["exclude"]) == ("n[1-3]", "n9")
    assert spec["begin_time"] == 1_700_042_400.0
    assert spec["deadline"] == now + 86400
    assert spec["open_mode"] == "append"
    assert (spec["signal"], spec["signal_time"], spec["signal_flags"]) == (12, 120, "RB")
    assert (spec["requeue"], spec["kill_on_invalid_dep"]) == (1, 0)
    assert (spec["comment"], spec["wckey"], spec["nice"], spec["qos"], spec["constraint"]) == ("c", "w", 100,
                                                                                              "high", "ssd")
    assert spec["time_min"] == 120
    assert (spec["mail_type"], spec["mail_user"]) == ("END,FAIL", "u@x")
    assert spec["options"] == {"licenses": "a:1"}
    assert spec["gres"] == "gpu:1"  # a typed JobSpec field


def test_flags_and_defaults_of_the_mapped_options(tmp_path):
    spec = sbatch.build_submission(["--no-requeue", "--exclusive", "--signal=10", "--wrap=true"], environ={},
                                   cwd=str(tmp_path)).spec
    assert (spec["requeue"], spec["exclusive"]) == (0, "exclusive")
    assert (spec["signal"], spec["signal_time"], spec["signal_flags"]) == (10, 60, "")  # Slurm's default 60 s
    spec = sbatch.build_submission(["-s", "--requeue=expedite", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert "exclusive" not in spec
    assert spec["options"] == {"oversubscribe": "", "requeue": "expedite"}
    assert spec["requeue"] == 1


def test_nodelist_sets_the_node_count_and_files_are_read(tmp_path):
    spec = sbatch.build_submission(["-w", "n[1-3],n2", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert (spec["nodes"], spec["ntasks"]) == (3, 3)  # without -N: the distinct hosts
    (tmp_path / "hosts").write_text("n4 # a comment\nn5,n6\n\n")
    spec = sbatch.build_submission(["-w", "./hosts", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert spec["nodelist"] == "n[4-6]"
    spec = sbatch.build_submission(["-F", "hosts", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert (spec["nodelist"], spec["nodes"]) == ("n[4-6]", 3)
    spec = sbatch.build_submission(["-x", "./hosts", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert spec["exclude"] == "n[4-6]"


def test_missing_node_file(tmp_path, capsys):
    with pytest.raises(CliError) as info:
        sbatch.build_submission(["-F", "nope", "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert (info.value.message, info.value.code) == ("Invalid --nodefile node file", 255)
    assert "sbatch: error: slurm_allocate_resources error opening file nope" in capsys.readouterr().err


def test_fewer_tasks_than_nodes_is_fixed_with_a_warning(tmp_path, capsys):
    spec = sbatch.build_submission(["-N", "3", "-n", "2", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert (spec["nodes"], spec["ntasks"]) == (2, 2)
    assert capsys.readouterr().err == "sbatch: warning: can't run 2 processes on 3 nodes, setting nnodes to 2\n"
    sbatch.build_submission(["-Q", "-N", "3", "-n", "2", "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert capsys.readouterr().err == ""  # -Q lowers the log level below warning()


def test_node_ranges_and_size_lists(tmp_path):
    for text, nodes in (("2-4", 2), ("1k", 1024), ("1,4,8", 1), ("2-8:2", 2)):
        spec = sbatch.build_submission(["-N", text, "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
        assert spec["nodes"] == nodes, text
        assert spec["ntasks"] >= spec["nodes"]


def test_tres_per_task_cpu_is_cpus_per_task(tmp_path):
    spec = sbatch.build_submission(["--tres-per-task=cpu=3", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert spec["cpus_per_task"] == 3
    with pytest.raises(CliError, match="You can not have --tres-per-task=cpu= and --cpus-per-task"):
        sbatch.build_submission(["--tres-per-task=cpu=3", "-c", "2", "--wrap=true"], environ={}, cwd=str(tmp_path))


def test_mail_type_list_is_normalized_as_scontrol_shows_it(tmp_path):
    for text, shown in (("ALL", "INVALID_DEPEND,BEGIN,END,FAIL,REQUEUE,STAGE_OUT"), ("end,begin", "BEGIN,END"),
                        ("NONE", "NONE"), ("BEGIN,bogus", "BEGIN"), ("TIME_LIMIT_90,ARRAY_TASKS",
                                                                     "ARRAY_TASKS,TIME_LIMIT_90")):
        spec = sbatch.build_submission([f"--mail-type={text}", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
        assert spec["mail_type"] == shown, text


def test_job_environment_gets_what_sbatch_sets(tmp_path):
    env = sbatch.build_submission(["-n", "4", "-c", "2", "--ntasks-per-node=2", "-m", "cyclic", "-d", "afterok:9",
                                   "--wrap=true"], environ={"HOME": "/h"}, cwd=str(tmp_path)).spec["env"]
    assert env["SLURM_NTASKS"] == env["SLURM_NPROCS"] == "4"
    assert env["SLURM_CPUS_PER_TASK"] == "2"
    assert env["SLURM_NTASKS_PER_NODE"] == "2"
    assert env["SLURM_DISTRIBUTION"] == "cyclic"
    assert env["SLURM_JOB_DEPENDENCY"] == "afterok:9"
    assert env["HOME"] == "/h"


# --------------------------------------------------------------------------- input environment


def test_precedence_command_line_then_environment_then_directives(tmp_path):
    script = "#!/bin/sh\n#SBATCH -p fromscript -t 7 -A scriptacct\ntrue\n"
    env = {"SBATCH_PARTITION": "fromenv", "SBATCH_TIMELIMIT": "3"}
    spec = _submit(tmp_path, ["JOB"], script=script, environ=env).spec
    assert (spec["partition"], spec["time_limit"], spec["account"]) == ("fromenv", 180, "scriptacct")
    spec = _submit(tmp_path, ["-p", "fromcli", "JOB"], script=script, environ=env).spec
    assert (spec["partition"], spec["time_limit"]) == ("fromcli", 180)
    spec = _submit(tmp_path, ["JOB"], script=script, environ={"HOME": "/h"}).spec
    assert (spec["partition"], spec["time_limit"]) == ("fromscript", 420)


@pytest.mark.parametrize(
    ("env", "key", "value"),
    [({"SBATCH_ACCOUNT": "a1"}, "account", "a1"),
     ({"SBATCH_ARRAY_INX": "0-3"}, "array", "0-3"),
     ({"SBATCH_ARRAY_INX": "0-3"}, "stdout", "slurm-%A_%a.out"),
     ({"SBATCH_OPEN_MODE": "truncate"}, "open_mode", "truncate"),
     ({"SBATCH_REQUEUE": ""}, "requeue", 1),
     ({"SBATCH_NO_REQUEUE": "1"}, "requeue", 0),
     ({"SBATCH_NO_REQUEUE": "yes", "SBATCH_REQUEUE": "1"}, "requeue", 1),  # SBATCH_REQUEUE is read later
     ({"SBATCH_WCKEY": "wk"}, "wckey", "wk"),
     ({"SBATCH_QOS": "q1"}, "qos", "q1"),
     ({"SBATCH_MEM_PER_CPU": "2G"}, "mem_per_cpu", 2048),
     ({"SBATCH_MEM_PER_NODE": "3G"}, "mem_mb", 3072),
     ({"SBATCH_EXCLUSIVE": ""}, "exclusive", "exclusive"),
     ({"SBATCH_EXCLUSIVE": "mcs"}, "exclusive", "mcs"),
     ({"SBATCH_SIGNAL": "B:HUP"}, "signal_flags", "B"),
     ({"SBATCH_JOB_NAME": "envname"}, "name", "envname"),
     ({"SBATCH_CONSTRAINT": "fast"}, "constraint", "fast"),
     ({"SBATCH_OUTPUT": "o%j"}, "stdout", "o%j"),
     ({"SBATCH_ERROR": "none"}, "stderr", "/dev/null"),
     ({"SBATCH_INPUT": "in.txt"}, "stdin", "in.txt"),
     ({"SBATCH_DISTRIBUTION": "block"}, "options", {"distribution": "block"}),
     ({"SBATCH_GRES": "gpu:1"}, "gres", "gpu:1")],
)
def test_input_environment_variables(tmp_path, env, key, value):
    spec = sbatch.build_submission(["--wrap=true"], environ=env, cwd=str(tmp_path)).spec
    assert spec[key] == value


def test_environment_flags_and_resets(tmp_path):
    sub = sbatch.build_submission(["--wrap=true"], environ={"SBATCH_WAIT": "1"}, cwd=str(tmp_path))
    assert sub.wait
    sub = sbatch.build_submission(["--wrap=true"], environ={"SBATCH_WAIT": "0"}, cwd=str(tmp_path))
    assert not sub.wait  # Slurm: a flag variable other than "", yes or a number resets
    spec = sbatch.build_submission(["--requeue", "--wrap=true"], environ={"SBATCH_NO_REQUEUE": "no"},
                                   cwd=str(tmp_path)).spec
    assert spec["requeue"] == 1


def test_memory_options_environment_and_directives(tmp_path):
    # an #SBATCH line counts as the command line: it beats a variable of the other kind
    script = "#!/bin/sh\n#SBATCH --mem=1G\ntrue\n"
    spec = _submit(tmp_path, ["JOB"], script=script, environ={"SBATCH_MEM_PER_CPU": "2G"}).spec
    assert spec["mem_mb"] == 1024 and "mem_per_cpu" not in spec
    spec = _submit(tmp_path, ["--mem-per-cpu=5", "JOB"], script="#!/bin/sh\ntrue\n",
                   environ={"SBATCH_MEM_PER_NODE": "2G"}).spec
    assert spec["mem_per_cpu"] == 5 and "mem_mb" not in spec
    with pytest.raises(CliError) as info:
        _submit(tmp_path, ["JOB"], script="#!/bin/sh\ntrue\n",
                environ={"SBATCH_MEM_PER_NODE": "2G", "SBATCH_MEM_PER_CPU": "1G"})
    assert info.value.message == ("sbatch: fatal: SLURM_MEM_PER_CPU, SLURM_MEM_PER_GPU, and SLURM_MEM_PER_NODE "
                                  "are mutually exclusive.")


def test_a_bad_environment_value_is_an_error_even_with_an_option(tmp_path):
    # the environment is applied before the command line's second pass
    with pytest.raises(CliError) as info:
        sbatch.build_submission(["-t", "5", "--wrap=true"], environ={"SBATCH_TIMELIMIT": "soon"}, cwd=str(tmp_path))
    assert (info.value.message, info.value.code) == ("Invalid --time specification", 255)


def test_export_from_the_environment(tmp_path):
    sub = sbatch.build_submission(["--wrap=true"], environ={**ENV, "SBATCH_EXPORT": "FOO"}, cwd=str(tmp_path))
    assert sub.spec["env"] == {"SLURM_CONF": "/etc/slurm.conf", "FOO": "1", "SLURM_EXPORT_ENV": "FOO"}


# --------------------------------------------------------------------------- --export-file


def test_export_file_nul_separated(tmp_path):
    (tmp_path / "env").write_bytes(b"A=1\0B=x=y\0NOEQUALS\0DISPLAY=:0\0C=multi\nline\0\0D=after-empty\0")
    spec = sbatch.build_submission(["--export-file=env", "--wrap=true"], environ=ENV, cwd=str(tmp_path)).spec
    # the caller's environment is not exported: Slurm unsets it when the file gives the job's
    assert spec["env"] == {"A": "1", "B": "x=y", "C": "multi\nline"}


def test_export_file_lines_and_descriptors(tmp_path):
    import os

    (tmp_path / "env").write_text("A=1\nB=2\n")
    spec = sbatch.build_submission(["--export-file", "env", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert spec["env"] == {"A": "1", "B": "2"}
    fd = os.open(tmp_path / "env", os.O_RDONLY)
    try:
        spec = sbatch.build_submission([f"--export-file={fd}", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    finally:
        os.close(fd)
    assert spec["env"] == {"A": "1", "B": "2"}


def test_export_file_with_export(tmp_path):
    (tmp_path / "env").write_bytes(b"A=1\0")
    spec = sbatch.build_submission(["--export-file=env", "--export=X=9", "--wrap=true"], environ=ENV,
                                   cwd=str(tmp_path)).spec
    assert spec["env"] == {"A": "1", "X": "9", "SLURM_EXPORT_ENV": "X=9"}
    spec = sbatch.build_submission(["--export-file=env", "--export=NONE", "--wrap=true"], environ=ENV,
                                   cwd=str(tmp_path)).spec
    assert spec["env"] == {"SLURM_EXPORT_ENV": "NONE"}  # NONE drops what the file gave, as Slurm


def test_export_file_missing(tmp_path):
    with pytest.raises(CliError) as info:
        sbatch.build_submission(["--export-file=nope", "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert (info.value.message, info.value.code) == ("Could not open user environment file nope", 1)


# --------------------------------------------------------------------------- directives


def test_directive_escapes_comments_and_slurm_magic(tmp_path, capsys):
    assert sbatch.tokenize_directive(r" --comment=a\ b\#c -J x#y # rest") == ["--comment=a b#c", "-J", "x"]
    assert sbatch.tokenize_directive(' --comment="" -N 2') == ["--comment=", "-N", "2"]
    assert sbatch.tokenize_directive(' "" -N 2') == []  # an empty word ends the line, as get_argument
    script = "#!/bin/sh\n   # indented comments do not end the block\n#SLURM -J old\n#SLURM -N 2\ntrue\n"
    spec = _submit(tmp_path, ["JOB"], script=script).spec
    assert (spec["name"], spec["nodes"]) == ("old", 2)
    assert capsys.readouterr().err == ("sbatch: error: Change from #SLURM to #SBATCH in your script and verify "
                                       "the options are valid in sbatch\n")


def test_directive_fatal_errors(tmp_path):
    with pytest.raises(CliError) as info:
        _submit(tmp_path, ["JOB"], script="#!/bin/sh\n#SBATCH --comment='open\ntrue\n")
    assert info.value.message == "sbatch: fatal: job.sh: line 2: Unmatched `'` in [ --comment='open]"
    assert info.value.code == 1
    with pytest.raises(CliError, match="Unexpected `:`"):
        _submit(tmp_path, ["JOB"], script="#!/bin/sh\n#SBATCH :\ntrue\n")
    with pytest.raises(CliError, match="Heterogeneous jobs"):
        _submit(tmp_path, ["JOB"], script="#!/bin/sh\n#SBATCH -N1\n#SBATCH hetjob\n#SBATCH -N2\ntrue\n")


def test_command_line_only_options_are_ignored_in_directives(tmp_path, capsys):
    script = "#!/bin/sh\n#SBATCH --help --version -Q -v --wrap=x\ntrue\n"
    sub = _submit(tmp_path, ["JOB"], script=script)
    assert sub.spec["script"] == script and not sub.quiet
    assert capsys.readouterr().out == ""


def test_script_found_in_chdir_then_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "sub" / "a.sh").write_text("#!/bin/sh\necho a\n")
    (tmp_path / "bin" / "b.sh").write_text("#!/bin/sh\necho b\n")
    env = {"PATH": str(tmp_path / "bin")}
    sub = sbatch.build_submission(["-D", "sub", "a.sh"], environ=env, cwd=str(tmp_path))
    assert sub.spec["command"] == str(tmp_path / "sub" / "a.sh")
    sub = sbatch.build_submission(["b.sh"], environ=env, cwd=str(tmp_path))
    assert sub.spec["command"] == str(tmp_path / "bin" / "b.sh")
    assert sub.spec["name"] == "b.sh"


def test_external_jobs_are_refused(tmp_path):
    with pytest.raises(CliError, match="not supported by Spur"):
        sbatch.build_submission(["--external"], environ={}, cwd=str(tmp_path))


# --------------------------------------------------------------------------- --test-only, output


class FakeCtl:
    """A controller stand-in: answers ``submit`` with ``answer`` (or raises it)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def call(self, method, params):
        self.calls.append((method, params))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self):
        pass


def test_test_only_asks_the_controller_and_prints_slurms_line(tmp_path, capsys, utc):
    sub = sbatch.build_submission(["--test-only", "-n", "4", "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert sub.test_only
    ctl = FakeCtl({"job_id": 7, "start_time": 1_700_000_000, "nodes": "n[1-2]", "partition": "debug", "cpus": 4})
    assert sbatch.run_test_only(ctl, sub) == 0
    ((method, params),) = ctl.calls
    assert method == "submit" and params["test_only"] is True and params["spec"]["ntasks"] == 4
    out = capsys.readouterr()
    assert out.out == ""
    # src/api/allocate.c slurm_job_will_run, 25.11's text (with its " a using")
    assert out.err == ("sbatch: Job 7 to start at 2023-11-14T22:13:20 a using 4 processors on nodes n[1-2] "
                       "in partition debug\n")


def test_test_only_failure(tmp_path, capsys):
    from spurio.rpc import RpcError

    sub = sbatch.build_submission(["--test-only", "--wrap=true"], environ={}, cwd=str(tmp_path))
    ctl = FakeCtl(RpcError("node_config", "Requested node configuration is not available"))
    with pytest.raises(CliError) as info:
        sbatch.run_test_only(ctl, sub)
    assert info.value.raw and info.value.code == 1
    assert info.value.message == "allocation failure: Requested node configuration is not available"


def test_main_test_only_and_parsable_array(monkeypatch, capsys, clean_env, utc):
    from spurcli import common

    ctl = FakeCtl({"job_id": 42, "start_time": 1_700_000_000, "nodes": "n1", "partition": "p", "cpus": 1})
    monkeypatch.setattr(common, "connect", lambda **kw: ctl)
    assert sbatch.main(["--test-only", "--wrap=true"]) == 0
    assert capsys.readouterr().err.startswith("sbatch: Job 42 to start at ")
    assert sbatch.main(["--parsable", "--array=0-9", "--wrap=true"]) == 0
    assert capsys.readouterr().out == "42\n"  # the array's job id only
    assert sbatch.main(["--parsable", "-Q", "--wrap=true"]) == 0
    assert capsys.readouterr().out == ""  # Slurm: -Q silences --parsable too
    assert [p.get("test_only", False) for _, p in ctl.calls] == [True, False, False]
