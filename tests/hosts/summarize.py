"""Print a Markdown table of the scenarios' figures: ``python -m tests.hosts.summarize DIR``
(DIR is SPUR_HOSTS_OUT, e.g. build/chaos after `make chaos`)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def row(report: dict) -> list[str]:
    f = report["figures"]
    outcomes: Counter[str] = Counter()
    for key, n in f.get("ops", {}).items():
        outcomes[key.split(":")[1]] += n
    events = dict((e, t) for t, e in report.get("events", []))
    fault = next((t for t, e in report.get("events", []) if not e.startswith("workload")), None)
    changes = [x for x in f.get("leaders", []) if fault is not None and x[0] >= fault]
    lat = f.get("write_latency_s", {})
    notes = [e for e in events if "leads" in e or "stepped down" in e or "latencies" in e or "health" in e]
    return [
        report["scenario"],
        str(f.get("violations", "?")),
        f"{outcomes['ok']}/{outcomes['unknown']}/{outcomes['fail']}",
        "-" if f.get("first_write_after_fault_s") is None else f"{f['first_write_after_fault_s']:.2f}",
        "-" if "longest_write_gap_during_fault_s" not in f else f"{f['longest_write_gap_during_fault_s']:.2f}",
        str(len(changes)),
        "{}→{}".format(*f.get("terms", ["?", "?"])),
        f"{lat.get('p50', 0):.3f}/{lat.get('max', 0):.2f}",
        "; ".join(n.split("] ")[-1] for n in notes),
    ]


def main(argv: list[str]) -> int:
    base = Path(argv[0] if argv else "build/chaos")
    reports = [json.loads(p.read_text()) for p in sorted(base.glob("*/report.json"))]
    head = ["scenario", "violations", "ops ok/unknown/fail", "first write after fault (s)",
            "longest write gap (s)", "leader changes after fault", "terms", "write p50/max (s)", "notes"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in reports:
        print("| " + " | ".join(row(r)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
