"""spurcore.hostlist: Slurm hostlist expansion and NodeList compression."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spurcore.hostlist import compress, expand, strnatcmp

# (hostlist, expanded hosts, what pins it)
EXPAND_CASES = [
    ("", [], "empty string -> no hosts"),
    ("node1", ["node1"], "plain host"),
    ("node[1-3,5]", ["node1", "node2", "node3", "node5"], "ranges and singles in a bracket"),
    ("node[1-3],other", ["node1", "node2", "node3", "other"], "brief: bracket token then a plain one"),
    ("n[01-03]", ["n01", "n02", "n03"], "zero padding kept (width of the low end)"),
    ("n[08-11]", ["n08", "n09", "n10", "n11"], "range printed with %0*lu of the low end's width"),
    ("n[098-100]", ["n098", "n099", "n100"], "width 3 range"),
    ("n[9-10]", ["n9", "n10"], "unpadded range crossing a digit boundary"),
    ("a1,b[1-2]", ["a1", "b1", "b2"], "several prefixes"),
    ("n[1,01]", ["n1", "n01"], "different widths in one bracket are different hosts"),
    ("n1 n2\tn3", ["n1", "n2", "n3"], "hostlist.c separators include blanks"),
    ("n1,,n2,", ["n1", "n2"], "empty tokens skipped (_next_tok)"),
    ("n3,n1,n3", ["n3", "n1", "n3"], "hostlist_create keeps order and duplicates"),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"], "several bracket groups in one name"),
    ("n[1-2]-ib", ["n1-ib", "n2-ib"], "text after the bracket"),
    ("login", ["login"], "name without a number"),
    ("[1-2]", ["1", "2"], "empty prefix"),
]


@pytest.mark.parametrize(("text", "hosts", "why"), EXPAND_CASES)
def test_expand(text: str, hosts: list[str], why: str) -> None:
    assert expand(text) == hosts, why


@pytest.mark.parametrize(
    "text",
    ["n[1-3", "n1-3]", "n[]", "n[a-b]", "n[3-1]", "n[1-]", "n[-1]", "n[1,,2]", "n[1-70000]"],
)
def test_expand_rejects(text: str) -> None:
    # Slurm: "Invalid hostlist", hi < lo, or larger than MAX_RANGE (64K)
    with pytest.raises(ValueError, match="Invalid hostlist"):
        expand(text)


# (hosts, NodeList string, what pins it)
COMPRESS_CASES = [
    ([], "", "no hosts -> empty"),
    (["node1"], "node1", "a single host is written without brackets"),
    (["node1", "node2", "node3", "node5"], "node[1-3,5]", "hostlist_ranged_string"),
    (["node5", "node3", "node1", "node2"], "node[1-3,5]", "hostlist_sort before printing"),
    (["node1", "node1", "node2"], "node[1-2]", "hostlist_uniq drops duplicates"),
    (["n01", "n02", "n03"], "n[01-03]", "zero padding preserved"),
    (["a1", "b1", "b2"], "a1,b[1-2]", "several prefixes, one bracket each"),
    (["b2", "a1", "b1"], "a1,b[1-2]", "prefixes sorted"),
    (["node1", "node3"], "node[1,3]", "one prefix with several ranges shares a bracket"),
    (["node9", "node10", "node11"], "node[9-11]", "_width_equiv: unpadded 9 and 10 combine"),
    (["n098", "n099", "n100", "n101"], "n[098-101]", "_width_equiv: 100 fits width 3"),
    (["n99", "n100"], "n[99-100]", "width 2 range printing 100"),
    (["n09", "n10"], "n[09-10]", "width 2: 10 needs no padding"),
    (["n1", "n01"], "n[1,01]", "hostrange_within_range ignores width: one bracket"),
    (["n9", "n010"], "n[9,010]", "_width_equiv fails: no join although 9+1 == 10"),
    (["n1", "n02", "n3"], "n[1,3,02]", "hostrange_cmp: incompatible widths sort by width"),
    (["n01", "n100"], "n[01,100]", "hostrange_cmp: compatible widths sort by value"),
    (["login", "node1"], "login,node1", "name without a number kept as is"),
    (["node", "node1", "node2"], "node,node[1-2]", "hostrange_prefix_cmp: singlet host first"),
    (["nodeA", "node1"], "node1,nodeA", "strnatcmp('node', 'nodeA') < 0"),
    (["r10n1", "r2n1", "r2n2"], "r2n[1-2],r10n1", "strnatcmp orders prefixes naturally"),
    (["rack1n07", "rack1n08"], "rack1n[07-08]", "only the trailing number is ranged"),
    (["n1", "", "n2"], "n[1-2]", "empty names ignored"),
]


@pytest.mark.parametrize(("hosts", "text", "why"), COMPRESS_CASES)
def test_compress(hosts: list[str], text: str, why: str) -> None:
    assert compress(hosts) == text, why


def test_compress_accepts_any_iterable() -> None:
    assert compress(h for h in ["n2", "n1"]) == "n[1-2]"
    assert compress({"n2", "n1"}) == "n[1-2]"


@pytest.mark.parametrize(
    ("a", "b", "sign", "why"),
    [
        ("node", "node", 0, "equal"),
        ("r2n", "r10n", -1, "digit runs compare by value"),
        ("r10n", "r2n", 1, "digit runs compare by value"),
        ("a", "b", -1, "plain characters"),
        ("node", "nodeA", -1, "shorter string first"),
        ("r01n", "r1n", -1, "leading zero: compare_left"),
    ],
)
def test_strnatcmp(a: str, b: str, sign: int, why: str) -> None:
    assert strnatcmp(a, b) == sign, why


# ---------------------------------------------------------------------------------------------
# properties

_PREFIXES = ["n", "node", "a", "rack1n", "gpu-", "x"]
_BARE = ["login", "head", "node", "gpu-a"]


@st.composite
def _host(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(_BARE))
    prefix = draw(st.sampled_from(_PREFIXES))
    num = draw(st.integers(0, 200))
    width = draw(st.integers(0, 4))
    return f"{prefix}{num:0{width}d}"


_HOSTS = st.lists(_host(), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_HOSTS)
def test_compress_expand_round_trip(hosts: list[str]) -> None:
    text = compress(hosts)
    expanded = expand(text)
    assert sorted(expanded) == sorted(set(hosts))
    assert len(expanded) == len(set(expanded))  # no duplicates after compress


@settings(max_examples=200, deadline=None)
@given(_HOSTS, st.randoms(use_true_random=False))
def test_compress_is_order_independent_and_idempotent(hosts: list[str], rnd: random.Random) -> None:
    text = compress(hosts)
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    assert compress(shuffled) == text
    assert compress(expand(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 200), min_size=1))
def test_compress_single_prefix_is_minimal(nums: set[int]) -> None:
    # unpadded numbers of one prefix: one bracket, one range per run of consecutive numbers
    text = compress(f"n{n}" for n in nums)
    runs = sum(1 for n in nums if n - 1 not in nums)
    if len(nums) == 1:
        assert text == f"n{next(iter(nums))}"
    else:
        assert text.startswith("n[") and text.endswith("]")
        assert len(text[2:-1].split(",")) == runs
