"""spurcli.common: getopt_long parsing, job ids, state names, spur.toml reading."""

from __future__ import annotations

import pytest

from spurcli import common
from spurcli.common import NO_ARG, OPTIONAL, REQUIRED, Opt, UsageError
from spurio import config

OPTS = (
    Opt("nodes", "N", "nodes", REQUIRED),
    Opt("ntasks", "n", "ntasks", REQUIRED),
    Opt("noheader", "h", "noheader", NO_ARG),
    Opt("jobs", "j", "jobs", OPTIONAL),
    Opt("verbose", "v", "verbose", NO_ARG),
    Opt("name", "J", ("job-name", "name"), REQUIRED),
)


def test_getopt_long_forms():
    pairs, ops = common.getopt(["--nodes=2", "--ntasks", "4", "x"], OPTS)
    assert pairs == [("nodes", "2"), ("ntasks", "4")]
    assert ops == ["x"]


def test_getopt_short_forms_and_clusters():
    pairs, ops = common.getopt(["-N2", "-n", "4", "-vvh"], OPTS)
    assert pairs == [("nodes", "2"), ("ntasks", "4"), ("verbose", None), ("verbose", None), ("noheader", None)]
    assert ops == []


def test_getopt_abbreviation_unique_and_alias():
    pairs, _ = common.getopt(["--noh", "--job-n=a", "--name", "b"], OPTS)
    assert pairs == [("noheader", None), ("name", "a"), ("name", "b")]


def test_getopt_ambiguous_prefix():
    with pytest.raises(UsageError, match="option '--n' is ambiguous"):
        common.getopt(["--n"], OPTS)


def test_getopt_errors_are_glibcs():
    with pytest.raises(UsageError, match="unrecognized option '--bogus'"):
        common.getopt(["--bogus"], OPTS)
    with pytest.raises(UsageError, match="invalid option -- 'z'"):
        common.getopt(["-z"], OPTS)
    with pytest.raises(UsageError, match="option requires an argument -- 'N'"):
        common.getopt(["-N"], OPTS)
    with pytest.raises(UsageError, match="option '--nodes' requires an argument"):
        common.getopt(["--nodes"], OPTS)
    with pytest.raises(UsageError, match="option '--verbose' doesn't allow an argument"):
        common.getopt(["--verbose=3"], OPTS)


def test_getopt_optional_argument_only_attached():
    # squeue -j: "-j5" carries the list, "-j 5" leaves 5 as an operand.
    assert common.getopt(["-j5"], OPTS) == ([("jobs", "5")], [])
    assert common.getopt(["-j", "5"], OPTS) == ([("jobs", None)], ["5"])
    assert common.getopt(["--jobs=5,6"], OPTS) == ([("jobs", "5,6")], [])


def test_getopt_stop_at_first_operand():
    pairs, ops = common.getopt(["-N", "1", "script.sh", "-n", "3"], OPTS, permute=False)
    assert pairs == [("nodes", "1")]
    assert ops == ["script.sh", "-n", "3"]
    pairs, ops = common.getopt(["-N", "1", "script.sh", "-n", "3"], OPTS, permute=True)
    assert pairs == [("nodes", "1"), ("ntasks", "3")]
    assert ops == ["script.sh"]


def test_getopt_double_dash():
    pairs, ops = common.getopt(["-v", "--", "-N", "x"], OPTS)
    assert pairs == [("verbose", None)]
    assert ops == ["-N", "x"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5", (5, None)), ("5.0", (5, 0)), ("12.3", (12, 3)), ("7.batch", (7, "batch")), (" 9 ", (9, None))],
)
def test_parse_job_step(text, expected):
    assert common.parse_job_step(text) == expected


@pytest.mark.parametrize("text", ["0", "INVALID", "12_3", "-1", "5.", "5.x", "", "1.2.3", "0x10"])
def test_parse_job_step_rejects(text):
    with pytest.raises(ValueError):
        common.parse_job_step(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("PD", "PENDING"), ("pending", "PENDING"), ("r", "RUNNING"), ("Cg", "COMPLETING"),
     ("CA", "CANCELLED"), ("canceled", "CANCELLED"), ("oom", "OUT_OF_MEMORY"), ("st", "STOPPED")],
)
def test_parse_state_long_or_short_any_case(text, expected):
    # Slurm job_state_num: long or compact names, case-insensitive.
    assert common.parse_state(text) == expected


def test_parse_state_list_and_all():
    assert common.parse_state_list("pd,R,pending") == ["PENDING", "RUNNING"]
    assert common.parse_state_list("all") is None
    with pytest.raises(ValueError):
        common.parse_state_list("R,bogus")


def test_is_finished_waits_for_completing():
    assert not common.is_finished({"state": "COMPLETING", "base_state": "CANCELLED"})
    assert common.is_finished({"state": "CANCELLED", "base_state": "CANCELLED"})
    assert not common.is_finished({"state": "RUNNING", "base_state": "RUNNING"})


def test_simple_toml_reader_matches_tomllib(tmp_path):
    import tomllib

    text = """
# spur.toml
[cluster]
name = "spur"          # trailing comment
state_dir = 'state'
kill_wait = 2.5
min_job_age = 300

[[replica]]
id = 1
raft = "127.0.0.1:6821"
socket = "ctld-1.sock"

[[replica]]
id = 2
raft = "127.0.0.1:6822"
rpc = "127.0.0.1:6817"

[auth]
operators = [1001, 1002]
"""
    assert config._read_simple_toml(text) == tomllib.loads(text)


def test_read_config_falls_back_to_tomllib(tmp_path):
    path = tmp_path / "spur.toml"
    path.write_text('[[replica]]\nid = 1\nraft = "x"\nsocket = """s.sock"""\n')
    cfg = config.load(str(path))
    assert [r.socket for r in cfg.replicas] == [str(tmp_path / "s.sock")]


def test_read_config_resolves_relative_sockets(tmp_path):
    path = tmp_path / "spur.toml"
    path.write_text('[cluster]\nkill_wait = 7\n[[replica]]\nid = 3\nraft = "x"\nsocket = "run/c.sock"\n')
    cfg = config.load(str(path))
    assert cfg.replicas[0].id == 3
    assert cfg.replicas[0].socket == str(tmp_path / "run" / "c.sock")
    assert cfg.kill_wait == 7.0


def test_find_config_path_order(tmp_path):
    assert config.find_config_path({"SPUR_CONF": "/x/spur.toml"}, str(tmp_path)) == "/x/spur.toml"
    (tmp_path / "spur.toml").write_text("")
    assert config.find_config_path({}, str(tmp_path)) == str(tmp_path / "spur.toml")


def test_request_ids_are_unique_hex():
    a, b = common.new_request_id(), common.new_request_id()
    assert a != b and len(a) == 32 and int(a, 16) >= 0


def test_cli_does_not_import_attrs_or_asyncio():
    # Start-up time: the CLI path (config, client, rpc) must stay clear of attrs,
    # asyncio, ssl, rich and the reducer.
    import subprocess
    import sys

    code = (
        "import sys, spurcli.common, spurcli.sbatch, spurcli.scancel, spurcli.squeue, spurcli.srun, spurio.rpc,"
        " spurio.config, spurio.client;"
        # parsing a busy command line (the whole option table, times, host lists) stays light too
        "spurcli.sbatch.build_submission(['-N2', '-w', 'n[1-2]', '--begin=now+1hour', '--mail-type=ALL',"
        " '--signal=B:USR1@30', '--mem=1G', '--export=NONE', '--wrap=true'], environ={});"
        "import spurcli.srun_opts; spurcli.srun_opts.parse(['-n2', '-l', '--mpi=pmi2', 'true'], environ={});"
        "bad = [m for m in ('attr', 'attrs', 'asyncio', 'ssl', 'rich', 'spurcore.reduce', 'tomllib')"
        " if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_getopt_ambiguity_lists_possibilities_as_glibc():
    # an alias of the first match (same option) is not listed again; other options are
    opts_ = (Opt("bind", "", ("cpu-bind", "cpu_bind"), REQUIRED), Opt("freq", "", "cpu-freq", REQUIRED),
             Opt("cpt", "c", "cpus-per-task", REQUIRED))
    with pytest.raises(UsageError) as info:
        common.getopt(["--cpu"], opts_)
    assert info.value.message == ("option '--cpu' is ambiguous; possibilities: '--cpu-bind' '--cpu-freq' "
                                  "'--cpus-per-task'")
    # a prefix of two aliases only is not ambiguous
    assert common.getopt(["--cpu-b=x"], opts_)[0] == [("bind", "x")]


def test_run_usage_exit_code(capsys):
    def body(args):
        raise UsageError("unrecognized option '--x'")

    assert common.run("squeue", body, []) == 1
    assert common.run("sbatch", body, [], usage_code=255) == 255
    assert capsys.readouterr().err.endswith('Try "sbatch --help" for more information\n')
