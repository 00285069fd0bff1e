"""Multi-node srun steps on a ``spur local`` cluster with two real agents (issue 10).

Each case cites the Slurm 25.11 behaviour it pins: srun(1) for distributions, labels,
-K and exit statuses, src/srun/launch.c for the task exit lines, stepmgr.c for the step
status, salloc(1)/sattach(1)/sstat(1) for those commands.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config
from tests.integration.conftest import wait_for

BIN = Path(sys.executable).parent
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("steps")
    write_config(d, replicas=1, nodes=2, cpus=8, kill_wait=1.0, node_timeout=4.0)
    c = LocalCluster(d)
    c.up()
    yield c
    c.down()


@pytest.fixture
def work(tmp_path):
    return tmp_path


def run(cluster, *args, cwd=None, check=True, timeout=90, input=None, env=None):
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                          env={**cluster.env, **(env or {})}, cwd=cwd, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def alloc(cluster, work, *argv: str, nodes: int = 2, ntasks: int = 4, check=True, input=None, env=None):
    """``salloc -N2 -n4 srun ...``: the step inside a fresh two-node allocation."""
    return run(cluster, "salloc", "-Q", f"-N{nodes}", f"-n{ntasks}", str(BIN / "srun"), *argv, cwd=work,
               check=check, input=input, env=env)


def labelled(out: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\s*(\d+): (.*)$", out, re.M)}


def show_step(cluster, job_id: int, step: int) -> list[str]:
    return run(cluster, "sacct", "-n", "-P", "-j", f"{job_id}", "-o", "JobID,State,ExitCode").stdout.splitlines()


# --- fan-out, placement, labels, environment --------------------------------------------


def test_fan_out_ranks_and_environment(cluster, work):
    """srun -N2 -n4 -l: four tasks, two per node (block), each knowing its rank."""
    fmt = ("$SLURM_PROCID $SLURM_LOCALID $SLURM_NODEID $SLURMD_NODENAME $SLURM_STEP_NUM_TASKS "
           "$SLURM_STEP_NUM_NODES $SLURM_STEP_TASKS_PER_NODE $SLURM_TASKS_PER_NODE $SLURM_NTASKS $SLURM_NNODES "
           "$SLURM_STEP_NODELIST $SLURM_CPUS_ON_NODE $SLURM_STEP_ID $SLURM_GTIDS $SLURM_TASK_PID $$")
    out = alloc(cluster, work, "-l", "bash", "-c", f"echo {fmt}").stdout
    rows = labelled(out)
    assert sorted(rows) == [0, 1, 2, 3]
    for rank, line in rows.items():
        f = line.split()
        node = "node1" if rank < 2 else "node2"
        assert f[:12] == [str(rank), str(rank % 2), str(rank // 2), node, "4", "2", "2(x2)", "2(x2)", "4", "2",
                          "node[1-2]", "2"], line
        assert f[12] == "0" and f[13] == ("0,1" if rank < 2 else "2,3")
        assert f[14] == f[15]  # SLURM_TASK_PID is the task's own pid


def test_steps_get_the_jobs_identity_even_from_a_stripped_environment(cluster, work):
    """setup_env (src/common/env.c): srun sets SLURM_JOB_PARTITION, _ACCOUNT, _UID, _USER and
    _GID for every step from the job, over what it inherited; Snakemake's jobstep strips
    SLURM_* (all but the job id) before its srun."""
    script = ("#!/bin/bash\nenv -u SLURM_JOB_PARTITION -u SLURM_JOB_ACCOUNT -u SLURM_JOB_USER -u SLURM_JOB_UID "
              "-u SLURM_JOB_GID " + str(BIN / "srun") + " -n1 bash -c "
              "'echo $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT $SLURM_JOB_USER $SLURM_JOB_UID $SLURM_JOB_GID'\n")
    (work / "id.sh").write_text(script)
    out = work / "id.out"
    job_id = int(run(cluster, "sbatch", "--parsable", "-A", "stripped", "-o", str(out), str(work / "id.sh"),
                     cwd=work).stdout.split(";")[0])
    wait_for(lambda: run(cluster, "sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "State").stdout.strip()
             in FINISHED, 60, "the job to end")
    import pwd

    me = pwd.getpwuid(os.getuid())
    assert out.read_text().split() == ["debug", "stripped", me.pw_name, str(os.getuid()), str(os.getgid())]


@pytest.mark.parametrize(("dist", "placement"), [
    ("block", {0: "node1", 1: "node1", 2: "node2", 3: "node2"}),
    ("cyclic", {0: "node1", 1: "node2", 2: "node1", 3: "node2"}),
    ("plane=1", {0: "node1", 1: "node2", 2: "node1", 3: "node2"}),
])
def test_distributions_place_tasks_as_slurm(cluster, work, dist, placement):
    out = alloc(cluster, work, "-l", "-m", dist, "bash", "-c", "echo $SLURMD_NODENAME").stdout
    assert labelled(out) == placement


def test_plane_and_arbitrary(cluster, work):
    """plane=2 over 2 nodes of 3 CPUs with 6 tasks: planes of 2 while a node has room
    (0,1 | 2,3), then what fits (4 | 5); arbitrary: task i on the i-th -w host."""
    out = alloc(cluster, work, "-n6", "-N2", "-l", "-m", "plane=2", "bash", "-c", "echo $SLURMD_NODENAME",
                ntasks=6).stdout
    assert labelled(out) == {0: "node1", 1: "node1", 2: "node2", 3: "node2", 4: "node1", 5: "node2"}
    out = alloc(cluster, work, "-l", "-m", "arbitrary", "-w", "node2,node1,node2", "bash", "-c",
                "echo $SLURMD_NODENAME $SLURM_LOCALID").stdout
    assert labelled(out) == {0: "node2 0", 1: "node1 0", 2: "node2 1"}


def test_label_width_output_files_and_stdin(cluster, work):
    """-l pads to the widest task id; -o with %t writes one file per task on its node;
    stdin goes to every task by default and to one with --input=N."""
    out = alloc(cluster, work, "-n12", "-N2", "-l", "bash", "-c", "echo x", ntasks=12).stdout
    assert " 0: x" in out.splitlines() and "11: x" in out.splitlines()
    alloc(cluster, work, "-o", "out-%t-%N.txt", "bash", "-c", "echo task $SLURM_PROCID")
    for t in range(4):
        node = "node1" if t < 2 else "node2"
        assert (work / f"out-{t}-{node}.txt").read_text() == f"task {t}\n"
    got = alloc(cluster, work, "-l", "cat", input="hello\n").stdout
    assert labelled(got) == {0: "hello", 1: "hello", 2: "hello", 3: "hello"}
    got = alloc(cluster, work, "-l", "--input=2", "cat", input="only\n").stdout
    assert labelled(got) == {2: "only"}


def test_multi_prog_runs_a_program_per_task(cluster, work):
    """srun(1), MULTIPLE PROGRAM CONFIGURATION: each task runs its line's program, with %t
    (rank) and %o (offset in the line's ranks), and srun's words after the file appended;
    without -n the file's ranks make the step's tasks; a task without a line is refused
    before anything starts."""
    conf = work / "mpmd.conf"
    conf.write_text("# server and clients\n"
                    "0    bash -c 'echo server $SLURM_PROCID on $SLURMD_NODENAME: $0' extra\n"
                    "1-3  echo client %t offset %o\n")
    out = alloc(cluster, work, "-l", "--multi-prog", str(conf), "tail").stdout
    assert labelled(out) == {0: "server 0 on node1: extra", 1: "client 1 offset 0 tail", 2: "client 2 offset 1 tail",
                             3: "client 3 offset 2 tail"}
    out = run(cluster, "srun", "-l", "--multi-prog", "mpmd.conf", cwd=work).stdout  # -n from the file: 4 tasks
    assert sorted(labelled(out)) == [0, 1, 2, 3]
    conf.write_text("0-2 echo too few\n")
    proc = alloc(cluster, work, "--multi-prog", str(conf), check=False)
    assert proc.returncode == 1
    assert f"srun: error: Configuration file {conf} invalid, no record for task id 3" in proc.stderr
    assert "too few" not in proc.stdout


def test_preserve_env_and_whole(cluster, work):
    """srun -E: the tasks keep srun's SLURM_NTASKS/SLURM_NNODES, the job's (env.c setup_env
    with preserve_env), where they would get the step's; --whole: a step with -c (which
    implies --exact) still holds every CPU the job has on its node."""
    probe = "echo $SLURM_NTASKS $SLURM_NPROCS $SLURM_NNODES $SLURM_STEP_NUM_TASKS"
    assert alloc(cluster, work, "-n1", "-N1", "bash", "-c", probe).stdout.split() == ["1", "1", "1", "1"]
    assert alloc(cluster, work, "-E", "-n1", "-N1", "bash", "-c", probe).stdout.split() == ["4", "4", "2", "1"]
    cpus = "echo $SLURM_CPUS_ON_NODE ${SLURM_JOB_CPUS_PER_NODE%%[(,]*}"
    exact = alloc(cluster, work, "-n1", "-N1", "-c1", "bash", "-c", cpus).stdout.split()
    whole = alloc(cluster, work, "-n1", "-N1", "-c1", "--whole", "bash", "-c", cpus).stdout.split()
    assert exact[0] == "1" and int(exact[1]) > 1, exact
    assert whole[0] == whole[1], whole


def test_srun_prolog_epilog_and_task_prolog(cluster, work):
    """srun --prolog/--epilog (srun_job.c _run_srun_script): run by srun with the step's
    command as arguments and the step's environment plus SLURM_SCRIPT_CONTEXT; a failing
    prolog aborts the step ("srun prolog failed rc = N. Aborting step.", exit 1) before any
    task runs. --task-prolog (slurmstepd's _run_script_and_set_env): run in each task's
    environment before it starts; its export/unset/print lines act on the task."""
    log = work / "scripts.log"
    script = work / "script.sh"
    script.write_text(f"#!/bin/sh\necho \"$SLURM_SCRIPT_CONTEXT $SLURM_JOB_ID.$SLURM_STEP_ID $*\" >> {log}\n")
    script.chmod(0o755)
    task_prolog = work / "task-prolog.sh"
    task_prolog.write_text("#!/bin/sh\necho \"export FROM_PROLOG=rank$SLURM_PROCID\"\necho 'unset DROPPED'\n"
                           "echo \"print hello from the prolog of $SLURM_PROCID\"\n")
    task_prolog.chmod(0o755)
    out = alloc(cluster, work, "-l", f"--prolog={script}", f"--epilog={script}", f"--task-prolog={task_prolog}",
                "bash", "-c", 'echo "${FROM_PROLOG} ${DROPPED:-unset}"', nodes=1, ntasks=2,
                env={"DROPPED": "kept"}).stdout
    assert sorted(out.splitlines()) == sorted(["0: hello from the prolog of 0", "1: hello from the prolog of 1",
                                               "0: rank0 unset", "1: rank1 unset"]), out
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["prolog_srun", "epilog_srun"]
    assert lines[0].split()[1:] == lines[1].split()[1:] and lines[0].endswith(" bash -c echo \"${FROM_PROLOG} "
                                                                              "${DROPPED:-unset}\""), lines
    job_step = lines[0].split()[1]
    assert re.fullmatch(r"\d+\.0", job_step)

    failing = work / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    proc = alloc(cluster, work, "-n1", "-N1", f"--prolog={failing}", "bash", "-c", "echo must-not-run", check=False)
    assert proc.returncode == 1
    assert "srun: error: srun prolog failed rc = 3. Aborting step." in proc.stderr
    assert "must-not-run" not in proc.stdout
    proc = alloc(cluster, work, "-n1", "-N1", f"--task-prolog={failing}", "echo", "must-not-run", check=False)
    assert proc.returncode == 3  # the task ends with the task prolog's status
    assert "TaskProlog failed status=3" in proc.stderr and "must-not-run" not in proc.stdout


def test_immediate_gives_up_when_the_nodes_are_busy(cluster, work):
    """salloc/srun -I[N] (salloc.c, allocate.c): when the job does not start within N seconds
    (1 s for a bare -I), the request is revoked: "Unable to allocate resources: Requested
    nodes are busy", exit 1, the pending job cancelled; with free nodes -I changes nothing."""
    assert alloc(cluster, work, "-n1", "true", nodes=1, ntasks=1).returncode == 0
    assert run(cluster, "salloc", "-Q", "-I", "true", cwd=work).returncode == 0
    blocker = run(cluster, "sbatch", "--parsable", "-N2", "--exclusive", "--wrap", "sleep 120", cwd=work).stdout.strip()
    try:
        wait_for(lambda: run(cluster, "squeue", "-h", "-j", blocker, "-o", "%T").stdout.strip() == "RUNNING", 30,
                 "the blocking job running")
        for argv, prog in ((["salloc", "-I2", "-N1", "true"], "salloc"), (["srun", "-I", "-N1", "true"], "srun")):
            t0 = time.monotonic()
            proc = run(cluster, *argv, cwd=work, check=False)
            assert proc.returncode == 1, proc.stderr
            assert f"{prog}: error: Unable to allocate resources: Requested nodes are busy" in proc.stderr
            assert time.monotonic() - t0 < 15
        rows = run(cluster, "sacct", "-X", "-n", "-P", "-o", "JobID,State", "-S", "now-1hour").stdout.splitlines()
        revoked = [r for r in rows if int(r.split("|")[0]) > int(blocker)]
        assert len(revoked) == 2 and all(r.split("|")[1].startswith("CANCELLED") for r in revoked), rows
    finally:
        run(cluster, "scancel", blocker)


# --- exit statuses ----------------------------------------------------------------------


def test_one_failing_task_and_one_signalled(cluster, work):
    """launch.c: one error line per exit message; srun exits with the highest code, but a
    signal outranks codes (128+sig); the step's ExitCode is the highest raw status."""
    proc = alloc(cluster, work, "bash", "-c", "[ $SLURM_PROCID = 2 ] && exit 5; exit 0", check=False)
    assert proc.returncode == 5
    assert "srun: error: node2: task 2: Exited with exit code 5" in proc.stderr
    proc = alloc(cluster, work, "bash", "-c", "[ $SLURM_PROCID = 3 ] && kill -USR1 $$; exit 7", check=False)
    assert proc.returncode == 128 + signal.SIGUSR1
    assert "srun: error: node2: task 3: User defined signal 1" in proc.stderr
    assert re.search(r"srun: error: node1: tasks? 0(-1)?: Exited with exit code 7", proc.stderr)


def test_kill_on_bad_exit_ends_the_other_tasks(cluster, work):
    """-K: the first task that fails kills the step; the others do not run to their end."""
    t0 = time.monotonic()
    proc = alloc(cluster, work, "-K", "bash", "-c", "[ $SLURM_PROCID = 1 ] && exit 3; sleep 60", check=False)
    assert time.monotonic() - t0 < 30
    assert proc.returncode != 0
    assert "srun: error: node1: task 1: Exited with exit code 3" in proc.stderr
    assert "Job step aborted" in proc.stderr


def test_sbatch_step_sets_derived_exit_code_and_sacct_rows(cluster, work):
    script = work / "job.sh"
    script.write_text("#!/bin/bash\nsrun bash -c 'exit $SLURM_PROCID'\nexit 0\n")
    job_id = int(run(cluster, "sbatch", "--parsable", "-N2", "-n4", str(script), cwd=work).stdout.strip())
    wait_for(lambda: run(cluster, "sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State").stdout.strip()
             in FINISHED, 60, "the job")
    rows = run(cluster, "sacct", "-n", "-P", "-j", str(job_id), "-o", "JobID,State,ExitCode,DerivedExitCode,NodeList,NTasks"
               ).stdout.splitlines()
    assert rows[0] == f"{job_id}|COMPLETED|0:0|3:0|node[1-2]|"
    assert f"{job_id}.0|FAILED|3:0||node[1-2]|4" in rows


def test_overcommit_and_mincpus(cluster, work):
    """sbatch -O (sbatch(1) --overcommit): the job gets -c CPUs per node as if one task ran
    there, and srun in it (SLURM_OVERCOMMIT=1) runs all its tasks on them; --mincpus: at
    least that many CPUs per node."""
    script = work / "over.sh"
    script.write_text("#!/bin/bash\necho over=$SLURM_OVERCOMMIT cpus=$SLURM_CPUS_ON_NODE\n"
                      "srun bash -c 'echo task $SLURM_PROCID'\n")
    out = run(cluster, "sbatch", "--wait", "-N1", "-n12", "-O", "-o", "over.out", str(script), cwd=work)
    assert out.returncode == 0
    lines = (work / "over.out").read_text().splitlines()
    assert lines[0] == "over=1 cpus=1"
    assert sorted(lines[1:]) == sorted(f"task {i}" for i in range(12))
    job_id = run(cluster, "sbatch", "--parsable", "--mincpus=3", "-n1", "-H", "--wrap", "true", cwd=work).stdout.strip()
    assert "NumCPUs=3 " in run(cluster, "scontrol", "show", "job", job_id).stdout
    run(cluster, "scancel", job_id)


def test_cancel_of_a_multi_node_step(cluster, work):
    """scancel of the job while a 2-node step runs: every task on both nodes ends."""
    marker = work / "pids"
    script = work / "job.sh"
    script.write_text(f"#!/bin/bash\nsrun bash -c 'echo $$ >> {marker}; sleep 300'\n")
    job_id = int(run(cluster, "sbatch", "--parsable", "-N2", "-n4", str(script), cwd=work).stdout.strip())
    wait_for(lambda: marker.exists() and len(marker.read_text().split()) == 4, 60, "4 tasks")
    pids = [int(p) for p in marker.read_text().split()]
    run(cluster, "scancel", str(job_id))
    wait_for(lambda: not any(_alive(p) for p in pids), 30, "every task to end")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_agent_killed_while_it_hosts_part_of_a_step(cluster, work):
    """spurd SIGKILLed while node2 runs half a step: the step's supervisor holds srun's
    connection, so the step ends normally once the agent is back."""
    gate = work / "gate"
    started = work / "started"
    srun = subprocess.Popen(
        [str(BIN / "salloc"), "-Q", "-N2", "-n2", str(BIN / "srun"), "-l", "bash", "-c",
         f"touch {started}.$SLURM_PROCID; while [ ! -e {gate} ]; do sleep 0.05; done; echo end $SLURMD_NODENAME"],
        env=cluster.env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: Path(f"{started}.0").exists() and Path(f"{started}.1").exists(), 60, "both tasks")
    cluster.kill("node2", signal.SIGKILL)
    cluster.start_agent("node2")
    gate.touch()
    out, err = srun.communicate(timeout=60)
    assert srun.returncode == 0, err
    assert labelled(out) == {0: "end node1", 1: "end node2"}


def test_node_down_ends_the_step_and_leaves_no_task(cluster, work):
    """An agent that stays away past node_timeout: the node is DOWN, the job NODE_FAIL (not
    requeued: --no-requeue), the step on both nodes ends; when the agent returns its
    leftover tasks are killed."""
    marker = work / "pids"
    script = work / "job.sh"
    script.write_text(f"#!/bin/bash\nsrun bash -c 'echo $$ >> {marker}; sleep 300'\n")
    job_id = int(run(cluster, "sbatch", "--parsable", "--no-requeue", "-N2", "-n2", str(script),
                     cwd=work).stdout.strip())
    wait_for(lambda: marker.exists() and len(marker.read_text().split()) == 2, 60, "2 tasks")
    pids = [int(p) for p in marker.read_text().split()]
    cluster.kill("node2", signal.SIGKILL)
    try:
        wait_for(lambda: "NODE_FAIL" in run(cluster, "sacct", "-n", "-X", "-P", "-j", str(job_id), "-o",
                                            "State").stdout, 60, "NODE_FAIL")
    finally:
        cluster.start_agent("node2")
    wait_for(lambda: not any(_alive(p) for p in pids), 60, "no task left on any node")
    rows = run(cluster, "sacct", "-n", "-P", "-j", str(job_id), "-o", "JobID,State").stdout.splitlines()
    assert f"{job_id}.0|NODE_FAIL" in rows
    wait_for(lambda: "State=IDLE" in run(cluster, "scontrol", "show", "node", "node2").stdout, 60, "node2 back")


# --- salloc, sattach, sstat, usage --------------------------------------------------------


def test_salloc_messages_and_exit_status(cluster, work):
    """salloc(1): Granted, the command with the job's environment, Relinquishing; its
    exit status is the command's and the job ends with it."""
    proc = run(cluster, "salloc", "-N1", "bash", "-c", "echo job=$SLURM_JOB_ID nodes=$SLURM_JOB_NODELIST; exit 3",
               cwd=work, check=False)
    assert proc.returncode == 3
    m = re.search(r"salloc: Granted job allocation (\d+)", proc.stderr)
    assert m, proc.stderr
    job_id = m.group(1)
    assert f"salloc: Relinquishing job allocation {job_id}" in proc.stderr
    assert f"job={job_id} nodes=node" in proc.stdout
    state = run(cluster, "sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode").stdout.strip()
    assert state == "FAILED|3:0"


def test_salloc_no_shell_leaves_the_allocation_running(cluster, work):
    """salloc --no-shell: exit once granted, no command; the job keeps its allocation."""
    proc = run(cluster, "salloc", "--no-shell", "-N1", "-t", "5", cwd=work)
    job_id = re.search(r"salloc: Granted job allocation (\d+)", proc.stderr).group(1)
    assert "Relinquishing" not in proc.stderr
    assert run(cluster, "squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip() == "RUNNING"
    out = run(cluster, "srun", f"--jobid={job_id}", "bash", "-c", "echo in $SLURM_JOB_ID").stdout
    assert out.strip() == f"in {job_id}"  # a step in the allocation, from outside it
    run(cluster, "scancel", job_id)


def test_salloc_bell_rings_on_a_terminal(cluster, work):
    """salloc --bell writes BEL to stdout when it is a terminal (salloc.c _ring_terminal_bell);
    --no-bell and a quick grant write none."""
    import pty

    def stdout_of(*args: str) -> bytes:
        master, slave = pty.openpty()
        try:
            proc = subprocess.run([str(BIN / "salloc"), "-Q", *args, "-N1", "true"], stdout=slave,
                                  stderr=subprocess.PIPE, env=cluster.env, cwd=work, timeout=60)
            assert proc.returncode == 0, proc.stderr
            os.set_blocking(master, False)
            try:
                return os.read(master, 1024)
            except BlockingIOError:
                return b""
        finally:
            os.close(master)
            os.close(slave)

    assert b"\a" in stdout_of("--bell")
    assert b"\a" not in stdout_of("--no-bell")
    assert b"\a" not in stdout_of()


def test_salloc_kill_command_signals_the_command_when_revoked(cluster, work):
    """salloc --kill-command=SIG (salloc(1)): when the allocation is revoked (scancel
    here), the command gets SIG, here USR1, instead of the default SIGTERM."""
    ready = work / "ready"
    script = f'trap "echo got-usr1; exit 0" USR1; touch {ready}; while :; do sleep 0.1; done'
    proc = subprocess.Popen([str(BIN / "salloc"), "-N1", "--kill-command=USR1", "bash", "-c", script], cwd=work,
                            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(ready.exists, 30, "salloc's command running")
        job_id = run(cluster, "squeue", "-h", "-o", "%i", "-n", "bash", "-t", "R").stdout.split()[0]
        run(cluster, "scancel", job_id)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "got-usr1" in out, (out, err)
    assert f"salloc: Job allocation {job_id} has been revoked." in err


def test_sattach_sees_a_running_steps_output(cluster, work):
    gate = work / "gate"
    script = work / "job.sh"
    started = work / "started"
    script.write_text("#!/bin/bash\nsrun -l bash -c "
                      f"'touch {started}.$SLURM_PROCID; while [ ! -e {gate} ]; do sleep 0.1; done; "
                      "echo attached-$SLURM_PROCID'\n")
    job_id = int(run(cluster, "sbatch", "--parsable", "-N2", "-n2", str(script), cwd=work).stdout.strip())
    wait_for(lambda: Path(f"{started}.0").exists() and Path(f"{started}.1").exists(), 60, "the step's tasks")
    att = subprocess.Popen([str(BIN / "sattach"), "-l", f"{job_id}.0"], env=cluster.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    time.sleep(1.0)  # let sattach connect before the output is produced
    gate.touch()
    out, err = att.communicate(timeout=60)
    assert att.returncode == 0, err
    assert labelled(out) == {0: "attached-0", 1: "attached-1"}


def test_usage_of_a_200mb_task_in_sstat_and_sacct(cluster, work):
    """sstat while it runs, sacct afterwards: MaxRSS of a task holding 200 MB is >= 200M;
    the batch script's own 100 MB shows on its .batch row (wait4 of the script's tree);
    the job row sums its steps' CPU times (slurmdbd's job tot_cpu) and has no MaxRSS."""
    ready = work / "ready"
    script = work / "job.sh"
    script.write_text("#!/bin/bash\nsrun -n1 python3 -c \"import time, pathlib; b = bytearray(200 << 20); "
                      f"b[::4096] = b'x' * len(b[::4096]); pathlib.Path('{ready}').touch(); time.sleep(4)\"\n"
                      "python3 -c \"b = bytearray(100 << 20); b[::4096] = b'x' * len(b[::4096])\"\n")
    job_id = int(run(cluster, "sbatch", "--parsable", "-N1", "-n1", str(script), cwd=work).stdout.strip())
    wait_for(ready.exists, 60, "the allocation")
    out = run(cluster, "sstat", "-n", "-P", "-j", f"{job_id}.0", "--noconvert", "-o", "JobID,MaxRSS,NTasks").stdout
    jid, max_rss, ntasks = out.strip().split("|")
    assert (jid, ntasks) == (f"{job_id}.0", "1") and int(max_rss) >= 200 << 20
    wait_for(lambda: run(cluster, "sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State").stdout.strip()
             in FINISHED, 60, "the job")
    info = _job_record(cluster, job_id)
    usage = next(s for s in info["steps"] if s["step_id"] == 0)["usage"]
    assert usage["max_rss"] >= 200 << 20 and usage["ntasks"] == 1 and usage["total_cpu"] > 0
    out = run(cluster, "sacct", "-n", "-P", "-j", str(job_id), "--noconvert",
              "-o", "JobID,MaxRSS,MaxRSSNode,NTasks,TotalCPU,UserCPU").stdout
    rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}
    assert set(rows) == {str(job_id), f"{job_id}.batch", f"{job_id}.0"}, out
    assert rows[str(job_id)][:3] == ["", "", ""]
    assert int(rows[f"{job_id}.0"][0]) >= 200 << 20 and rows[f"{job_id}.0"][1:3] == ["node1", "1"]
    assert int(rows[f"{job_id}.batch"][0]) >= 100 << 20 and rows[f"{job_id}.batch"][1] == "node1"

    def seconds(text: str) -> float:  # [DD-][HH:]MM:SS[.mmm]
        parts = [float(p) for p in text.split(":")]
        return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))

    total = {key: seconds(cells[3]) for key, cells in rows.items()}
    assert total[f"{job_id}.0"] > 0 and total[f"{job_id}.batch"] > 0
    assert abs(total[str(job_id)] - total[f"{job_id}.0"] - total[f"{job_id}.batch"]) < 0.01
    out = run(cluster, "sacct", "-n", "-P", "-j", f"{job_id}.0", "--units=M", "-o", "JobID,MaxRSS").stdout
    assert any(line.startswith(f"{job_id}.0|") and line.endswith("M") and float(line.split("|")[1][:-1]) >= 200
               for line in out.splitlines()), out


def _job_record(cluster, job_id: int) -> dict:
    from spurio.client import Client

    client = Client(cluster.config)
    try:
        return client.call("jobs", {"job_ids": [job_id]})["jobs"][0]
    finally:
        client.close()


# --- MPI ----------------------------------------------------------------------------------


def _mpi4py_python(tmp_root: Path) -> str | None:
    """A venv with mpi4py built against MPICH (Debian's python3-mpi4py is Open MPI's):
    ``MPICC=mpicc.mpich pip install --no-binary mpi4py mpi4py``, cached across runs."""
    cached = os.environ.get("SPUR_MPI4PY_PYTHON")
    if cached:
        return cached
    here = [sys.executable, "-c", "from mpi4py import MPI; assert 'MPICH' in MPI.Get_library_version()"]
    if subprocess.run(here, capture_output=True).returncode == 0:
        return sys.executable  # make's install step built it into the venv
    if shutil.which("mpicc.mpich") is None:
        return None
    venv = Path(os.environ.get("SPUR_TEST_CACHE", "/tmp/spur-test-cache")) / "mpi4py-mpich"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "from mpi4py import MPI; assert 'MPICH' in MPI.Get_library_version()"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-binary", "mpi4py", "mpi4py"],
                          env={**os.environ, "MPICC": "mpicc.mpich"}, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        return None
    return str(python)


def test_mpi4py_over_mpich_across_two_agents(cluster, work, tmp_path_factory):
    """srun --mpi=pmi2 serves MPICH's PMI: ranks 0-3 of 4 and an allreduce, no mpiexec."""
    python = _mpi4py_python(tmp_path_factory.getbasetemp())
    if python is None:
        pytest.skip("MPICH (mpicc.mpich) or an mpi4py built against it is not available")
    code = "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.Get_rank(), c.Get_size(), c.allreduce(c.Get_rank() + 1))"
    out = alloc(cluster, work, "-l", "--mpi=pmi2", python, "-c", code).stdout
    assert labelled(out) == {r: f"{r} 4 10" for r in range(4)}


def test_mpich_c_program(cluster, work):
    if shutil.which("mpicc.mpich") is None:
        pytest.skip("MPICH (mpicc.mpich) is not installed")
    src = work / "hello.c"
    src.write_text('#include <mpi.h>\n#include <stdio.h>\nint main(int c, char **v) { int r, s, t;\n'
                   'MPI_Init(&c, &v); MPI_Comm_rank(MPI_COMM_WORLD, &r); MPI_Comm_size(MPI_COMM_WORLD, &s);\n'
                   'MPI_Allreduce(&r, &t, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n'
                   'printf("%d %d %d\\n", r, s, t); MPI_Finalize(); return 0; }\n')
    subprocess.run(["mpicc.mpich", "-o", str(work / "hello"), str(src)], check=True)
    out = alloc(cluster, work, "-l", str(work / "hello")).stdout
    assert labelled(out) == {r: f"{r} 4 6" for r in range(4)}
