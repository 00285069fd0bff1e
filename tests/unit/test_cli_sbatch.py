"""sbatch (and srun) option handling: #SBATCH directives, --wrap, --export, time limits."""

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
    ("args", "message"),
    [(["-t", "abc"], "Invalid time limit specification"),
     (["--mem", "lots"], "Invalid --mem specification"),
     (["-n", "0"], 'Invalid numeric value "0" for --ntasks.'),
     (["-c", "x"], 'Invalid numeric value "x" for --cpus-per-task.'),
     (["-N", "zero"], "Invalid node count specification")],
)
def test_invalid_values(tmp_path, args, message):
    with pytest.raises(CliError) as info:
        sbatch.build_submission([*args, "--wrap=true"], environ={}, cwd=str(tmp_path))
    assert info.value.message == message


ENV = {"HOME": "/h", "PATH": "/bin", "SLURM_CONF": "/etc/slurm.conf", "FOO": "1"}


@pytest.mark.parametrize(
    ("export", "expected"),
    [
        (None, ENV),
        ("ALL", ENV),
        ("NONE", {"SLURM_CONF": "/etc/slurm.conf"}),
        ("NIL", {}),
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
    assert sub.spec["env"] == {"SLURM_CONF": "/etc/slurm.conf"}
    sub = sbatch.build_submission(["--wrap=true"], environ=ENV, cwd=str(tmp_path))
    assert sub.spec["env"] == ENV


def test_directive_tokenizer():
    assert sbatch.tokenize_directive(' -J "a b" --x=\'c d\'  # c -N 3') == ["-J", "a b", "--x=c d"]
    assert sbatch.tokenize_directive("") == []


def test_directive_needs_whitespace_after_magic_word():
    script = "#!/bin/sh\n#SBATCHX -N 5\n#SBATCH\t-N 4\ntrue\n"
    assert sbatch.script_directives(script) == ["-N", "4"]


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
    assert sbatch.main(["--bogus"]) == 1
    err = capsys.readouterr().err
    assert err == "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"


@pytest.mark.parametrize(
    ("raw", "code"),
    [(0, 0), (3 << 8, 3), (255 << 8, 255), (9, 1), (15, 1), (None, 1)],
)
def test_wait_exit_code(raw, code):
    # Slurm _job_wait: WIFEXITED -> WEXITSTATUS, otherwise 1.
    assert sbatch.wait_exit_code({"exit_code": raw}) == code
