"""The PMI wire protocol as MPICH's built-in client speaks it (spurcore.pmi, sans I/O).

The PMI-1 exchange below is what MPICH 4.0's ``MPI_Init`` sends (recorded from Debian's
mpich against a toy server); the fence across nodes is Slurm's mpi/pmi2 kvs_fence.
"""

from __future__ import annotations

from spurcore.pmi import PmiNode, fmt_pmi2, parse_pmi1, parse_pmi2, process_mapping


def test_process_mapping_as_slurm_writes_it():
    assert process_mapping([0, 0, 1, 1]) == "(vector,(0,2,2))"
    assert process_mapping([0, 1, 0, 1]) == "(vector,(0,2,1),(0,2,1))"
    assert process_mapping([0, 0, 0, 1]) == "(vector,(0,1,3),(1,1,1))"


def test_parsers():
    assert parse_pmi1(b"cmd=put kvsname=k key=a value=b=c\n") == {"cmd": "put", "kvsname": "k", "key": "a",
                                                                   "value": "b=c"}
    assert parse_pmi2(b"cmd=kvs-put;key=a;value=x;;y;") == {"cmd": "kvs-put", "key": "a", "value": "x;y"}
    assert fmt_pmi2("kvs-put-response", rc=0) == b"26    cmd=kvs-put-response;rc=0;"


def _node(ranks, size=4):
    return PmiNode("7.0", size, tuple(ranks), process_mapping([0, 0, 1, 1]))


def test_mpich_init_sequence():
    node = _node([0, 1])
    for msg, expected in [
        (b"cmd=init pmi_version=1 pmi_subversion=1\n", b"cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"),
        (b"cmd=get_maxes\n", b"cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=1024 rc=0\n"),
        (b"cmd=get_appnum\n", b"cmd=appnum appnum=0 rc=0\n"),
        (b"cmd=get_my_kvsname\n", b"cmd=my_kvsname kvsname=7.0 rc=0\n"),
        (b"cmd=get kvsname=7.0 key=PMI_process_mapping\n", b"cmd=get_result rc=0 value=(vector,(0,2,2))\n"),
        (b"cmd=put kvsname=7.0 key=hostname[0] value=vm\n", b"cmd=put_result rc=0\n"),
    ]:
        assert node.feed(0, msg) == ([(0, expected)], None)


def test_fence_waits_for_every_local_rank_then_for_srun():
    a, b = _node([0, 1]), _node([2, 3])
    a.feed(0, b"cmd=put kvsname=7.0 key=k0 value=v0\n")
    assert a.feed(0, b"cmd=barrier_in\n") == ([], None)
    # a partial line is kept until its newline arrives
    assert a.feed(1, b"cmd=barrier") == ([], None)
    replies, fence_a = a.feed(1, b"_in\n")
    assert replies == [] and fence_a == {"k0": "v0"}
    b.feed(3, b"cmd=put kvsname=7.0 key=k3 value=v3\n")
    b.feed(2, b"cmd=barrier_in\n")
    _, fence_b = b.feed(3, b"cmd=barrier_in\n")
    merged = {**fence_a, **fence_b}
    assert a.fence_done(merged) == [(0, b"cmd=barrier_out rc=0\n"), (1, b"cmd=barrier_out rc=0\n")]
    assert a.feed(1, b"cmd=get kvsname=7.0 key=k3\n") == ([(1, b"cmd=get_result rc=0 value=v3\n")], None)
    assert a.feed(1, b"cmd=get kvsname=7.0 key=nope\n") == ([(1, b"cmd=get_result rc=-1 msg=key_not_found\n")],
                                                            None)


def test_pmi2_wire_after_a_version_2_init():
    node = _node([0])
    node.size = 1
    replies, _ = node.feed(0, b"cmd=init pmi_version=2 pmi_subversion=0\n")
    assert replies == [(0, b"cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n")]
    body = b"cmd=kvs-put;key=a;value=1;"
    replies, _ = node.feed(0, f"{len(body):<6d}".encode() + body)
    assert replies == [(0, fmt_pmi2("kvs-put-response", rc=0))]
    body = b"cmd=kvs-fence;"
    replies, fence = node.feed(0, f"{len(body):<6d}".encode() + body)
    assert replies == [] and fence == {"a": "1"}
    assert node.fence_done(fence) == [(0, fmt_pmi2("kvs-fence-response", rc=0))]
    body = b"cmd=info-getjobattr;key=PMI_process_mapping;"
    replies, _ = node.feed(0, f"{len(body):<6d}".encode() + body)
    assert parse_pmi2(replies[0][1][6:])["value"] == "(vector,(0,2,2))"


def test_abort_and_unknown_commands():
    node = _node([0])
    assert node.feed(0, b"cmd=frobnicate\n") == ([(0, b"cmd=frobnicate rc=-1 msg=unsupported_command\n")], None)
    node.feed(0, b"cmd=abort exitcode=3\n")
    assert node.aborted == (0, 3, "")
