"""sinfo's command line (src/sinfo/opts.c), environment, errors and layouts against the fake
controller of query_fake.py."""

from __future__ import annotations

import json

import pytest
import query_fake

from spurcli import sinfo
from spurcli.common import CliError

ctld = query_fake.ctld  # the fake controller fixture (tests/unit/query_fake.py)


def run(capsys, *args):
    rc = sinfo.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_default_and_node_layouts(ctld, capsys):
    assert run(capsys) == (0, (
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "debug*       up   infinite      1    mix n1\n"
        "debug*       up   infinite      1   idle n2\n"), "")
    assert run(capsys, "-N", "-h") == (0, (
        "n1             1    debug* mix   \n"
        "n2             1    debug* idle  \n"), "")


def test_summarize_and_long(ctld, capsys):
    rc, out, _ = run(capsys, "-s")
    assert out == ("PARTITION AVAIL  TIMELIMIT   NODES(A/I/O/T) NODELIST\n"
                   "debug*       up   infinite          1/1/0/2 n[1-2]\n")
    rc, out, _ = run(capsys, "-l")
    first, header, *rows = out.splitlines()
    assert header.startswith("PARTITION AVAIL  TIMELIMIT   JOB_SIZE ROOT OVERSUBS     GROUPS  NODES       STATE")
    assert first.count(":") == 2  # the date line of -l
    assert [row.split()[-2:] for row in rows] == [["mixed", "n1"], ["idle", "n2"]]


def test_formats_filters_and_sort(ctld, capsys):
    assert run(capsys, "-h", "-o", "%N %c %t", "-t", "idle") == (0, "n2 4 idle\n", "")
    assert run(capsys, "-h", "-O", "nodelist:6,cpusstate", "-n", "n1") == (0, "n1    1/3/0/4             \n", "")
    assert run(capsys, "-h", "-o", "%N", "-p", "nope") == (0, "", "")
    assert run(capsys, "-h", "-o", "%t", "-S", "t") == (0, "idle\nmix\n", "")
    assert run(capsys, "-h", "-o", "%N", "-d") == (0, "", "")
    ctld.nodes[1].update(state="DOWN", reason="Not responding", down_at=1746100000.0)
    assert run(capsys, "-R", "-h") == (0, "Not responding       slurm     2025-05-01T11:46:40 n2\n", "")
    assert run(capsys, "-h", "-o", "%N", "-d") == (0, "n2\n", "")


def test_environment(ctld, capsys, monkeypatch):
    """SINFO_FORMAT (default layout only), SINFO_PARTITION, SINFO_SORT, SINFO_ALL."""
    monkeypatch.setenv("SINFO_FORMAT", "%N|%t")
    monkeypatch.setenv("SINFO_SORT", "-t")
    assert run(capsys, "-h") == (0, "n1|mix\nn2|idle\n", "")
    monkeypatch.setenv("SINFO_PARTITION", "nope")
    assert run(capsys, "-h") == (0, "", "")
    monkeypatch.setenv("SINFO_ALL", "1")
    assert run(capsys, "-h") == (1, "", "sinfo: error: Conflicting options, SINFO_ALL and SINFO_PARTITION, "
                                         "specified. Please choose one or the other.\n")


@pytest.mark.parametrize(("args", "err"), [
    (["-t", "bogus"], 'sinfo: error: Bad state string: "bogus"\nsinfo: error: valid states: unknown,down,'),
    (["-i", "0"], "sinfo: error: Error: invalid entry for --iterate=0\n"),
    (["-n", "n[1-"], "sinfo: error: 'n[1-' invalid entry for --nodes\n"),
    (["-a", "-p", "debug"], "sinfo: error: Conflicting options, -a and -p, specified. Please choose one or "
                            "the other.\n"),
    (["-l", "-o", "%N"], "sinfo: fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
                         "Please remove one and retry.\n"),
])
def test_bad_values(ctld, capsys, args, err):
    rc, _out, got = run(capsys, *args)
    assert rc == 1 and got.startswith(err)
    assert not ctld.calls


def test_invalid_format_letters(ctld, capsys):
    """opts.c: ``Invalid node format specification: @`` (fprintf) for -o, error() for -O."""
    # no state field: both nodes form one group
    assert run(capsys, "-h", "-o", "%N %@") == (0, "n[1-2] %@\n", "Invalid node format specification: @\n")
    rc, out, err = run(capsys, "-h", "-O", "nodelist:3,bogus:2")
    assert err == "sinfo: error: Invalid job format specification: bogus\n"


def test_reservations_json_yaml(ctld, capsys):
    assert run(capsys, "-T") == (0, "No reservations in the system\n", "")
    rc, out, _ = run(capsys, "--json")
    data = json.loads(out)
    assert rc == 0 and set(data) == {"sinfo", "meta", "errors", "warnings"}
    assert [e["nodes"]["nodes"] for e in data["sinfo"]] == [["n1"], ["n2"]]
    rc, out, _ = run(capsys, "--yaml")
    assert out.startswith("---\nsinfo:\n- port: 6818\n")


def test_help_outputs(ctld, capsys):
    rc, out, _ = run(capsys, "--helpformat")
    assert out.splitlines()[0].startswith("%S    %a    %V    %Y    %c    %O    %C    %L    ")
    rc, out, _ = run(capsys, "--helpstate")
    assert out.splitlines()[:4] == ["unknown", "down", "idle", "allocated"]
    with pytest.raises(CliError):
        sinfo.parse_args(["extra"], environ={})
