"""squeue's default and -l layouts ask the controller for some fields of the job records
only (``Query.fields``): with any filters, sort and options, the table printed from records
that have only those fields is the table printed from whole records."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spurcli import common
from spurcli import squeue as cli
from spurcore.render import squeue as render
from tests.property.records import T0, job_record_lists, plain_record
from tests.property.test_render_equivalence import outcome

SORT_LETTERS = sorted(render._SORT_FIELDS) + ["z", "n"]
options = st.lists(st.sampled_from([
    ["-l"], ["-r"], ["-P"], ["-t", "all"], ["-t", "PD,CG"], ["-A", "alice"], ["-q", "high"], ["-u", "alice,0"],
    ["-n", "job.sh"], ["-p", "debug,gpu"], ["-w", "node01"], ["--running-over", "1"], ["--notme"],
    ["--only-job-state"], ["-j", "7,100_3"]]), max_size=3).map(lambda opts: [a for o in opts for a in o])
sorts = st.none() | st.lists(st.tuples(st.sampled_from(["", "-"]), st.sampled_from(SORT_LETTERS)), min_size=1,
                             max_size=4).map(lambda terms: ",".join(sign + letter for sign, letter in terms))


def table(q: cli.Query, jobs: list[dict[str, Any]], now: float) -> str:
    """What squeue's _once prints for the records of a ``jobs`` answer."""
    for job in jobs:  # as _load does
        if "gid" in job and "group" not in job:
            job["group"] = common.group_name(int(job["gid"]))
    view = render.View(now, array=q.array)
    shown = cli.filter_jobs(q, jobs, now)
    if q.priority:
        shown = render.by_partition(shown, q.partitions)
    shown = render.sort_jobs(shown, q.sort, now)
    fmt = render.ONLY_STATE_FORMAT if q.only_state else None
    return render.render_jobs(shown, fmt=fmt, long=q.long, view=view, date_line=False)


@settings(max_examples=200, deadline=None)
@given(records=job_record_lists(), args=options, sort=sorts)
def test_the_fields_asked_for_print_the_table_whole_records_print(records: list[dict[str, Any]], args: list[str],
                                                                   sort: str | None) -> None:
    try:
        q = cli.parse_args([*args, *(["-S", sort] if sort else [])], environ={})
    except common.CliError:  # options squeue refuses together
        assume(False)
    fields = q.params()["fields"]
    projected = [{f: r[f] for f in fields if f in r} for r in records]
    whole = [dict(r) for r in records]
    assert outcome(lambda: table(q, projected, T0)) == outcome(lambda: table(q, whole, T0))


def test_options_that_read_more_ask_for_more() -> None:
    default = cli.parse_args([], environ={}).params()["fields"]
    assert default == list(cli.DEFAULT_LAYOUT_FIELDS)
    for args, field in ((["-l"], "time_limit"), (["-A", "x"], "account"), (["-q", "x"], "qos"),
                        (["-P"], "priority_by_partition"), (["-S", "e"], "end_time"), (["-S", "-V,g"], "gid")):
        fields = cli.parse_args(args, environ={}).params()["fields"]
        assert field not in default and field in fields and len(set(fields)) == len(fields), args


def test_priority_option_sorts_by_each_partitions_priority() -> None:
    """-P lists a multi-partition job once per partition, sorted there by its priority in that
    partition (print.c _create_priority_list): the fields asked for carry those priorities."""
    jobs = [plain_record(job_id=job_id, partition="gpu,debug", priority=50, priority_by_partition=prios)
            for job_id, prios in ((1, {"gpu": 10, "debug": 90}), (2, {"gpu": 90, "debug": 10}))]
    fields = cli.parse_args(["-P"], environ={}).params()["fields"]
    shown = render.sort_jobs(render.by_partition([{f: j[f] for f in fields if f in j} for j in jobs]), None, T0)
    assert [(j["partition"], j["job_id"]) for j in shown] == [("debug", 1), ("debug", 2), ("gpu", 2), ("gpu", 1)]
