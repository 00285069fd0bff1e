"""srun --multi-prog's configuration file (spurcore.multiprog): which line each task takes and
its argv, as slurmstepd's multi_prog_get_argv builds it, and srun's verify_multi_name."""

from __future__ import annotations

import pytest

from spurcore.multiprog import MAX_ARGS, MultiProgError, task_argv, verify

CONF = """\
# rank   program and arguments
0        ./server --rank=%t
1-2,5    ./worker %o of 'the workers' a\\ b
  # indented comment

3-4      echo x%tx%oy%%q
*        hostname
"""


@pytest.mark.parametrize(
    ("rank", "argv"),
    [(0, ["./server", "--rank=0"]),
     (1, ["./worker", "0", "of", "the workers", "a b"]),
     (2, ["./worker", "1", "of", "the workers", "a b"]),
     (5, ["./worker", "2", "of", "the workers", "a b"]),  # the offset counts the line's ranks in order
     (3, ["echo", "x3x0yq"]),  # %t, %o; any other %x ("%%" here) is dropped with its letter
     (4, ["echo", "x4x1yq"]),
     (6, ["hostname"]),
     (9, ["hostname"])],
)
def test_each_task_takes_its_line(rank, argv):
    assert task_argv(CONF, rank) == argv


def test_arguments_after_the_file_name_are_appended():
    assert task_argv("0-1 echo %t\n", 1, ["--x", "y z"]) == ["echo", "1", "--x", "y z"]


def test_star_offset_is_the_rank():
    assert task_argv("0 a\n* b %o\n", 7) == ["b", "7"]


def test_continued_lines():
    text = "0 printf '%s\\n' one \\\ntwo\n1 echo 'split \\\nquote' end\n2 echo next\n"
    assert task_argv(text, 0) == ["printf", "%s\\n", "one", "two"]  # "\\\n": the word goes on
    assert task_argv(text, 1) == ["echo", "split quote", "end"]
    assert task_argv(text, 2) == ["echo", "next"]  # a continuation line is not a line of its own


def test_errors_at_launch():
    with pytest.raises(MultiProgError, match=r"^Program for task rank 3 not specified\.$"):
        task_argv("0-2 true\n", 3)
    with pytest.raises(MultiProgError, match="Invalid MPMD configuration line 1"):
        task_argv("0-2\n", 0)
    with pytest.raises(MultiProgError, match="Program arguments specification format invalid"):
        task_argv("0 echo 'open\n", 0)
    assert len(task_argv("0 " + " ".join(["w"] * 200) + "\n", 0, ["x"])) == MAX_ARGS


def test_verify_counts_and_fixes_tasks():
    assert verify(CONF, "c", 1, False) == (6, True)  # 0-5 named, then '*' covers what is left
    assert verify(CONF, "c", 8, True) == (8, True)
    assert verify("0 a\n1-3 b\n", "c", 1, False) == (4, True)
    assert verify("* a\n", "c", 1, False) == (1, True)
    assert verify("0 a \\\n5 continuation, not a line\n1 b\n", "c", 1, False) == (2, True)


@pytest.mark.parametrize(
    ("text", "ntasks", "ntasks_set", "messages"),
    [("0 a\n2 b\n", 3, True, ("Configuration file f invalid, no record for task id 1",)),
     ("0 a\n1 a\n1 b\n", 1, False, ("Duplicate record for task 1", "Line 3 of configuration file f invalid")),
     ("0-3 a\n", 2, True, ("Invalid task id, 3 >= ntasks", "Line 1 of configuration file f invalid")),
     ("3-1 a\n", 4, True, ("Invalid task range, 3-1", "Line 1 of configuration file f invalid")),
     ("-3 a\n", 1, False, ("Invalid task id, -3 < 0", "Line 1 of configuration file f invalid")),
     ("0-x a\n", 1, False, ("Invalid task range specification", "Line 1 of configuration file f invalid")),
     ("a a\n", 1, False, ("Invalid task range specification (a)", "Line 1 of configuration file f invalid")),
     ("* a\n0 b\n", 1, False, ("Task range specification with asterisk must be last",
                               "Line 2 of configuration file f invalid")),
     ("0\n", 1, False, ("Line 1 of configuration file f invalid",)),
     ("0 " + "x" * 5000 + "\n", 1, False, ("Line 1 of configuration file f too long",)),
     ("0 a\n", 0, True, ("Invalid task count 0",))],
)
def test_verify_errors(text, ntasks, ntasks_set, messages):
    with pytest.raises(MultiProgError) as info:
        verify(text, "f", ntasks, ntasks_set)
    assert info.value.messages == messages
