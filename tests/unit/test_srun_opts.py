"""srun's option parsing (spurcli.srun_opts): the allocation spec, the step parameters,
srun's input environment variables and its checks, with Slurm 25.11's messages."""

from __future__ import annotations

import pytest

from spurcli import srun, srun_opts
from spurcli.common import CliError, Exit, UsageError


def parse(args, env=None, **kw):
    return srun_opts.parse(args, environ=env or {}, cwd="/work", now=1_700_000_000, uid=kw.pop("uid", 1000), **kw)


def test_plain_command():
    req = parse(["hostname", "-n", "9"])
    assert req.command == ["hostname", "-n", "9"]  # options after the command belong to it
    assert req.spec == {"name": "hostname"}
    step = req.step
    assert (step["ntasks"], step["ntasks_set"], step["nodes"], step["mpi"]) == (1, False, None, "pmi2")  # Spur's MpiDefault
    assert (step["label"], step["unbuffered"], step["overlap"], step["exclusive"]) == (False, False, False, True)


def test_step_parameters(tmp_path):
    conf = tmp_path / "mp.conf"
    conf.write_text("0-3 hostname\n")
    req = parse(["-n4", "-N2", "-c", "2", "-l", "-u", "--mpi=pmi2", "-m", "plane=2", "--overlap", "-K",
                 "-W", "30", "-o", "out.%t", "-e", "err", "-i", "none", "--open-mode=a", "-w", "n[1-2]",
                 "--ntasks-per-node=2", "--exact", "--jobid=77", "-X", "--quit-on-interrupt",
                 "--multi-prog", str(conf)])
    step = req.step
    assert (step["ntasks"], step["nodes"], step["cpus_per_task"], step["ntasks_per_node"]) == (4, 2, 2, 2)
    assert (step["label"], step["unbuffered"], step["overlap"], step["exact"]) == (True, True, True, True)
    assert (step["distribution"], step["plane_size"]) == ("plane", 2)
    assert (step["mpi"], step["kill_on_bad_exit"], step["wait"]) == ("pmi2", 1, 30)
    assert (step["output"], step["error"], step["input"], step["open_mode"]) == ("out.%t", "err", "/dev/null",
                                                                                 "append")
    assert (step["nodelist"], step["jobid"], step["relative"]) == ("n[1-2]", 77, None)
    assert parse(["-r", "1", "true"]).step["relative"] == 1
    assert step["disable_status"] and step["quit_on_interrupt"] and step["multi_prog"]
    assert step["multi_prog_config"] == "0-3 hostname\n"  # sent with the step: each node reads its tasks' lines
    assert step["exclusive"] is False  # --overlap
    # the allocation part of the same options
    assert req.spec["nodes"] == 2 and req.spec["ntasks"] == 4 and req.spec["nodelist"] == "n[1-2]"
    assert req.spec["stdout"] == "out.%t"


def test_allocation_spec_has_the_same_keys_as_sbatch():
    req = parse(["-J", "x", "-t", "1:00:00", "-p", "p1", "-A", "a", "--mem=2G", "--begin=now+10", "-q", "q",
                 "--comment=c", "--exclusive", "--signal=USR1@5", "true"])
    spec = req.spec
    assert (spec["name"], spec["time_limit"], spec["partition"], spec["account"]) == ("x", 3600, "p1", "a")
    assert (spec["mem_mb"], spec["begin_time"], spec["qos"], spec["comment"]) == (2048, 1_700_000_010.0, "q", "c")
    assert (spec["exclusive"], spec["signal"], spec["signal_time"]) == ("exclusive", 10, 5)
    assert req.step["exact"]  # srun --exclusive implies --exact for a step


def test_step_options_are_kept_out_of_the_job_options():
    req = parse(["--cpu-bind=none", "--gres=gpu:1", "--task-prolog=/bin/true", "-l", "true"])
    assert "options" not in req.spec and req.spec["gres"] == "gpu:1"  # GRES: typed JobSpec fields
    assert req.step["options"] == {"cpu-bind": "none", "gres": "gpu:1", "task-prolog": "/bin/true"}


def test_mpi_list_and_bad_type(capsys):
    with pytest.raises(Exit) as info:
        parse(["--mpi=list"])
    assert info.value.code == 0
    assert capsys.readouterr().out == "MPI plugin types are...\n\tnone\n\tpmi2\n"
    with pytest.raises(CliError) as err:
        parse(["--mpi=pmix", "true"])
    assert err.value.code == 1
    assert capsys.readouterr().err == ("srun: error: MPI: Cannot create context for mpi/pmix\n"
                                       "srun: error: MPI: Unable to load any plugin\n"
                                       "srun: error: Invalid MPI type 'pmix', --mpi=list for acceptable types\n")
    assert parse(["--mpi=openmpi", "true"]).step["mpi"] == "none"  # openmpi is the none plugin


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [(["-m", "diagonal", "true"], "Invalid --distribution specification", 255),
     (["-m", "plane", "true"], "Invalid --distribution specification", 255),
     (["-K", "x", "true"], None, None),  # -K takes an attached argument only: "x" is the command
     (["--kill-on-bad-exit=x", "true"], 'Invalid numeric value "x" for --kill-on-bad-exit.', 1),
     (["-W", "soon", "true"], 'Invalid numeric value "soon" for --wait.', 1),
     (["-T", "0", "true"], 'Invalid numeric value "0" for --threads.', 1),
     (["--treewidth=x", "true"], "Invalid --treewidth value: x", 255),
     (["--send-libs=maybe", "true"], "Invalid --send-libs specification", 255),
     (["--het-group=x", "true"], "Invalid --het-group value: x", 1),
     (["--pty", "-o", "x", "bash"], "--error/--input/--output are incompatible with --pty", 1),
     (["--jobid=12.x", "true"], "srun: fatal: Bad step specified: 12", 1),
     (["--slurmd-debug=debug", "true"], "Use of --slurmd-debug is allowed only for root and SlurmUser(root)", 255),
     (["--multi-prog", "/nonexistent.conf"], "Unable to open configuration file /nonexistent.conf", 1),
     (["-n", "2"], "srun: fatal: No command given to execute.", 1),
     (["-N", "0-", "true"], "Maximum node count -1 is less than minimum node count 0", 255)],
)
def test_bad_values(args, message, code):
    if message is None:
        assert parse(args).command == ["x", "true"]
        return
    with pytest.raises(CliError) as info:
        parse(args)
    assert (info.value.message, info.value.code) == (message, code)


@pytest.mark.parametrize(
    ("args", "line"),
    [(["--exact", "--whole", "true"], "--exact and --whole are mutually exclusive."),
     (["--exclusive", "--overlap", "true"], "--exclusive and --overlap are mutually exclusive"),
     (["-Z", "true"], "must specify a node list with -Z, --no-allocate."),
     (["-r", "1", "-w", "n1", "true"], "-r,--relative not allowed with -w,--nodelist or -x,--exclude."),
     (["-v", "-Q", "true"], "don't specify both --verbose (-v) and --quiet (-Q)")],
)
def test_verify_errors_exit_1(args, line, capsys):
    with pytest.raises(CliError) as info:
        parse(args)
    assert info.value.code == 1
    assert capsys.readouterr().err == f"srun: error: {line}\n"


def test_cpu_bind_on_a_cluster_without_task_affinity(capsys):
    parse(["--cpu-bind=cores", "true"])
    assert capsys.readouterr().err == "srun: cluster configuration lacks support for cpu binding\n"
    with pytest.raises(CliError) as info:
        parse(["--cpu-bind=diagonal", "true"])
    assert info.value.message == "srun: fatal: Failed to parse --cpu-bind= values."
    assert capsys.readouterr().err.endswith('srun: error: unrecognized --cpu-bind argument "diagonal"\n')


def test_warnings_and_info_lines(capsys):
    req = parse(["-N", "3", "-n", "2", "true"])
    assert (req.step["nodes"], req.step["ntasks"]) == (2, 2)
    assert capsys.readouterr().err == "srun: warning: can't run 2 processes on 3 nodes, setting nnodes to 2\n"
    parse(["--threads=100", "true"])
    assert capsys.readouterr().err == "srun: error: Thread value --threads=100 exceeds recommended limit of 60\n"
    parse(["--compress=zz", "true"])
    assert capsys.readouterr().err == ("srun: error: Compression type 'zz' unknown, disabling compression "
                                       "support.\n")


# --------------------------------------------------------------------------- environment


def test_inside_a_job_the_environment_gives_the_step():
    env = {"SLURM_JOB_ID": "55", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "2", "SLURM_CPUS_PER_TASK": "1"}
    step = parse(["true"], env).step
    assert (step["jobid"], step["ntasks"], step["nodes"], step["cpus_per_task"]) == (55, 4, 2, 1)
    step = parse(["-n", "1", "true"], env).step  # the command line wins
    assert step["ntasks"] == 1


def test_environment_order_and_precedence(capsys):
    env = {"SLURM_NPROCS": "3", "SLURM_NTASKS": "5"}
    assert parse(["true"], env).step["ntasks"] == 5  # SLURM_NTASKS is read after SLURM_NPROCS
    env = {"SLURM_EXPORT_ENV": "NONE", "SRUN_EXPORT_ENV": "ALL"}
    assert parse(["true"], env).step["export"] == "ALL"
    env = {"SLURM_STDOUTMODE": "a", "SRUN_OUTPUT": "b"}
    assert parse(["true"], env).step["output"] == "b"
    assert parse(["-o", "c", "true"], env).step["output"] == "c"
    env = {"SLURM_CPUS_PER_TASK": "1"}
    assert parse(["-c", "2", "true"], env).step["cpus_per_task"] == 2
    assert capsys.readouterr().err == ("srun: Job step's --cpus-per-task value exceeds that of job (2 > 1). "
                                       "Job step may never run.\n")
    for var, key, value in (("SLURM_LABELIO", "label", True), ("SLURM_UNBUFFEREDIO", "unbuffered", True),
                            ("SLURM_OVERLAP", "overlap", True), ("SLURM_MPI_TYPE", "mpi", "pmi2"),
                            ("SLURM_KILL_BAD_EXIT", "kill_on_bad_exit", 1), ("SLURM_WAIT", "wait", 7),
                            ("SLURM_DISTRIBUTION", "distribution", "cyclic"), ("SLURM_EXACT", "exact", True)):
        text = {"label": "1", "unbuffered": "yes", "overlap": "", "mpi": "pmi2", "kill_on_bad_exit": "1",
                "wait": "7", "distribution": "cyclic", "exact": "1"}[key]
        assert parse(["true"], {var: text}).step[key] == value, var


def test_memory_variables_and_the_srun_quirk():
    # srun's --mem drops an inherited --mem-per-cpu; a command-line option resets the others
    req = parse(["--mem=100", "true"], {"SLURM_MEM_PER_CPU": "10"})
    assert req.spec["mem_mb"] == 100 and "mem_per_cpu" not in req.spec
    req = parse(["--mem-per-cpu=1G", "true"], {"SLURM_MEM_PER_NODE": "100"})
    assert req.spec["mem_per_cpu"] == 1024 and "mem_mb" not in req.spec
    with pytest.raises(CliError, match="SLURM_MEM_PER_CPU, SLURM_MEM_PER_GPU, and SLURM_MEM_PER_NODE are"):
        parse(["true"], {"SLURM_MEM_PER_NODE": "100", "SLURM_MEM_PER_CPU": "10"})


def test_bad_environment_value():
    with pytest.raises(CliError) as info:
        parse(["-t", "5", "true"], {"SLURM_TIMELIMIT": "soon"})
    assert (info.value.message, info.value.code) == ("Invalid --time specification", 255)


# --------------------------------------------------------------------------- getopt, srun.main


def test_getopt_errors_exit_255(capsys, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert srun.main(["--bogus", "true"]) == 255
    assert capsys.readouterr().err == ("srun: unrecognized option '--bogus'\n"
                                       "Try \"srun --help\" for more information\n")
    with pytest.raises(UsageError, match="option '--mpi' requires an argument"):
        parse(["--mpi"])


def test_srun_main_validates_every_option_before_connecting(capsys, monkeypatch):
    monkeypatch.setenv("SPUR_CONF", "/nonexistent/spur.toml")
    assert srun.main(["--open-mode=x", "true"]) == 255
    assert capsys.readouterr().err == "srun: error: Invalid --open-mode specification\n"
    assert srun.main(["--mpi=list"]) == 0
    assert "pmi2" in capsys.readouterr().out
    assert srun.main(["--usage"]) == 0
    assert capsys.readouterr().out.startswith("Usage: srun [-N nnodes]")


def test_srun_test_only_queries_and_runs_nothing(capsys, monkeypatch, utc):
    from spurcli import common

    class Ctl:
        calls: list = []

        def call(self, method, params):
            self.calls.append((method, params))
            return {"job_id": 3, "start_time": 1_700_000_000, "nodes": "n1", "partition": "debug", "cpus": 2}

        def close(self):
            pass

    ctl = Ctl()
    monkeypatch.setattr(common, "connect", lambda **kw: ctl)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert srun.main(["--test-only", "-n", "2", "hostname"]) == 0
    ((method, params),) = ctl.calls
    assert method == "submit" and params["test_only"] is True and params["spec"]["ntasks"] == 2
    assert capsys.readouterr().err == ("srun: Job 3 to start at 2023-11-14T22:13:20 a using 2 processors on "
                                       "nodes n1 in partition debug\n")


def test_multi_prog_sets_the_task_count_and_checks_the_file(tmp_path, capsys):
    """srun's verify_multi_name: without -n the step gets the tasks the file names; with -n
    every task needs exactly one line; errors as srun prints them (exit 1)."""
    conf = tmp_path / "mpmd.conf"
    conf.write_text("# two programs\n0 ./server %t\n1-3 ./client %o \\\n  continued\n")
    req = parse(["--multi-prog", str(conf), "--extra"])
    assert (req.step["ntasks"], req.step["ntasks_set"]) == (4, True)
    assert req.command == [str(conf), "--extra"]
    sp = srun.step_params(req.step)
    assert sp["ntasks"] == 4 and sp["multi_prog"] == conf.read_text()
    assert srun.step_params(parse(["true"]).step)["multi_prog"] is None

    cases = [
        (["-n", "5"], "0 a\n1-3 b\n", [], f"Configuration file {conf} invalid, no record for task id 4"),
        (["-n", "2"], "0-3 a\n", ["srun: error: Invalid task id, 3 >= ntasks"],
         f"Line 1 of configuration file {conf} invalid"),
        ([], "0 a\n0 b\n", ["srun: error: Duplicate record for task 0"], f"Line 2 of configuration file {conf} invalid"),
        ([], "* a\n1 b\n", ["srun: error: Task range specification with asterisk must be last"],
         f"Line 2 of configuration file {conf} invalid"),
        ([], "0\n", [], f"Line 1 of configuration file {conf} invalid"),
        ([], "x" * 70_000, [], f"Multi_prog config file {conf} is too large"),
    ]
    for options, text, before, message in cases:
        conf.write_text(text)
        capsys.readouterr()
        with pytest.raises(CliError) as info:
            parse([*options, "--multi-prog", str(conf)])
        assert (info.value.message, info.value.code) == (message, 1), text
        assert capsys.readouterr().err.splitlines() == before, text
    conf.write_text("* a\n")
    assert parse(["-n", "3", "--multi-prog", str(conf)]).step["ntasks"] == 3
