"""`spur health` on a TLS-only multi-host cluster, run from the login host."""

from __future__ import annotations

import json
import time

from tests.hosts.cluster import wait_for


def _health(cluster, *args):
    r = cluster.tool("login", ["spur", "health", *args], timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_spur_health_reports_roles_digests_and_agents(hosts, scenario):
    cluster = hosts()
    s = scenario(cluster)
    for i in range(3):
        r = cluster.tool("login", ["sbatch", "-J", f"h{i}", "-o", "/dev/null", "--wrap", "true"])
        assert r.returncode == 0, r.stderr
    code, out, err = _health(cluster, "--json")
    assert code == 0, (out, err)
    report = json.loads(out)
    rows = report["replicas"]
    assert sorted(r["id"] for r in rows) == [1, 2, 3]
    assert [r["role"] for r in rows].count("leader") == 1
    assert all(r["lag"] >= 0 and r["digest"] for r in rows)
    assert sorted(report["agents"]) == ["node1", "node2"]
    assert all(a["connected"] and a["last_contact"] < 5 for a in report["agents"].values())
    assert report["problems"] == []

    # A replica cut off: reported down, exit status 1, and it costs one timeout, not more.
    follower = next(r["id"] for r in rows if r["role"] == "follower")
    s.isolate(f"ctl{follower}")
    t = time.monotonic()
    code, out, err = _health(cluster, "--timeout", "1")
    took = time.monotonic() - t
    s.note(f"spur health with ctl{follower} cut off: exit {code} in {took:.2f} s")
    assert code == 1
    assert f"replica {follower} unreachable" in err
    assert took < 4.0
    line = next(x for x in out.splitlines() if x.startswith(str(follower)))
    assert "down" in line

    # An agent cut off: its last contact grows and it is no longer connected.
    s.heal()
    s.isolate("node2")
    wait_for(lambda: (json.loads(_health(cluster, "--json")[1])["agents"]["node2"]["last_contact"] or 0) > 3,
             20, "node2's last contact to age")
    violations, _ = s.verify()
    assert violations == []
