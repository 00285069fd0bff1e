"""Reading the cluster configuration (slurm.conf syntax and spur.toml tables), sacctmgr's
words, and the rendering of sacctmgr, sprio and sshare."""

from __future__ import annotations

from pathlib import Path

import pytest

from spurcli import sacctmgr, sprio, sshare
from spurcli.common import CliError
from spurcore import acctmgr
from spurcore.slurmconf import ConfError, parse, partition_changes
from spurio.config import ConfigError, load, load_cluster_conf

SLURM_CONF = """\
ClusterName=old
SlurmctldHost=ctl1
NodeName=DEFAULT CPUs=4 RealMemory=8000
NodeName=c[01-03] Features=ib Weight=5
NodeName=g1 Sockets=2 CoresPerSocket=4 ThreadsPerCore=2 Gres=gpu:a100:2,gpu:v100:1 NodeAddr=10.0.0.9
PartitionName=DEFAULT MaxTime=60
PartitionName=batch Nodes=c[01-03] Default=YES DefaultTime=10 State=UP
PartitionName=gpu Nodes=g1 MaxTime=INFINITE Priority=5 Shared=EXCLUSIVE Hidden=YES
SchedulerType=sched/backfill
SchedulerParameters=bf_window=120,bf_resolution=30,bf_continue,max_rpc_cnt=10
PriorityWeightAge=100
PriorityMaxAge=1-0
AccountingStorageEnforce=limits
Include site.conf
"""


def test_slurm_conf_is_read_with_defaults_hostlists_and_includes():
    def read(including: str, pattern: str) -> list[tuple[str, str]]:
        assert (including, pattern) == ("slurm.conf", "site.conf")
        return [("site.conf", "PartitionName=debug Nodes=ALL MaxNodes=1 AllowAccounts=a,b\nNodeName=c04\n")]

    gres = "NodeName=g1 Name=gpu Type=a100 File=/dev/nvidia[0-1]\nName=gpu Type=v100 File=/dev/nvidia2\n"
    conf = parse([("slurm.conf", SLURM_CONF), ("gres.conf", gres)], read)
    nodes = {n["name"]: n for n in conf.nodes}
    assert list(nodes) == ["c01", "c02", "c03", "g1", "c04"]  # the Include, last, is read in place
    assert (nodes["c02"]["cpus"], nodes["c02"]["real_memory"], nodes["c02"]["features"]) == (4, 8000, ["ib"])
    assert nodes["c04"]["weight"] == 1 and nodes["c04"]["cpus"] == 4  # DEFAULT holds for later lines
    assert nodes["g1"]["cpus"] == 16  # sockets * cores * threads
    assert nodes["g1"]["gres"] == [["gpu", "a100", 2, ["/dev/nvidia0", "/dev/nvidia1"]],
                                   ["gpu", "v100", 1, ["/dev/nvidia2"]]]
    parts = {p["name"]: p for p in conf.partitions}
    assert (parts["batch"]["max_time"], parts["batch"]["default_time"], parts["batch"]["default"]) == (3600, 600, True)
    assert parts["gpu"]["max_time"] is None and parts["gpu"]["oversubscribe"] == "EXCLUSIVE"
    assert (parts["gpu"]["priority_tier"], parts["gpu"]["priority_job_factor"], parts["gpu"]["hidden"]) == (5, 5, True)
    assert parts["debug"]["nodes"] == ["ALL"] and parts["debug"]["allow_accounts"] == ["a", "b"]
    s = conf.settings
    assert (s["bf_window"], s["bf_resolution"], s["bf_continue"], s["priority_weight_age"]) == (7200, 30, True, 100)
    assert s["priority_max_age"] == 86400 and s["enforce"] == ["associations", "limits"]
    assert conf.unused == [
        "slurm.conf:1: ClusterName=old (Spur: spur.toml [cluster] name)",
        "slurm.conf:2: SlurmctldHost=ctl1 (Spur: spur.toml [[replica]])",
        "slurm.conf:5: NodeName NodeAddr=10.0.0.9",
        "slurm.conf:10: SchedulerParameters max_rpc_cnt=10",
    ]
    assert conf.digest == parse([("slurm.conf", SLURM_CONF), ("gres.conf", gres)], read).digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NodeName=n1 CPUs=x", "slurm.conf:1: NodeName CPUs=x"),
        ("NodeName=n1\nNodeName=n1", "duplicated NodeName n1"),
        ("PartitionName=p Nodes=zz", "unknown nodes: zz"),
        ("NodeName=n1\nPartitionName=p Nodes=n1 State=SLEEPY", "partition State must be one of"),
        ("NodeName=n1\nPartitionName=a Nodes=n1 Default=YES\nPartitionName=b Nodes=n1 Default=YES",
         "more than one Default=YES"),
        ("SchedulerType=sched/gang", "only sched/backfill and sched/builtin"),
        ("Include x.conf", "Include is not allowed here"),
    ],
)
def test_what_spur_cannot_read_is_an_error_naming_the_line(text, message):
    with pytest.raises(ConfError, match=message.replace("[", r"\[")):
        parse([("slurm.conf", text)])


def test_spur_toml_tables_and_the_local_fallback(tmp_path: Path):
    (tmp_path / "spur.toml").write_text(
        '[cluster]\nname = "t"\n\n[[replica]]\nid = 1\nraft = "127.0.0.1:1"\n\n'
        '[[node]]\nNodeName = "n[1-2]"\nCPUs = 8\nRealMemory = 1000\nGres = "gpu:2"\n\n'
        '[[partition]]\nPartitionName = "p"\nNodes = "ALL"\nDefault = "YES"\n\n'
        '[scheduling]\nSchedulerType = "sched/builtin"\nPriorityWeightAge = 5\n'
    )
    conf = load_cluster_conf(load(tmp_path / "spur.toml"))
    assert [n["name"] for n in conf.nodes] == ["n1", "n2"] and conf.nodes[0]["gres"][0][3] == ["/dev/nvidia0",
                                                                                              "/dev/nvidia1"]
    assert conf.settings["scheduler_type"] == "sched/builtin" and conf.settings["priority_weight_age"] == 5
    # an older local cluster's spur.toml: [local] names the nodes
    (tmp_path / "spur.toml").write_text('[cluster]\nname = "t"\n\n[local]\nnodes = 2\ncpus = 3\n\n'
                                        '[[replica]]\nid = 1\nraft = "127.0.0.1:1"\n')
    conf = load_cluster_conf(load(tmp_path / "spur.toml"))
    assert [(n["name"], n["cpus"]) for n in conf.nodes] == [("node1", 3), ("node2", 3)]
    assert [(p["name"], p["nodes"], p["default"]) for p in conf.partitions] == [("debug", ["node1", "node2"], True)]
    (tmp_path / "spur.toml").write_text('[cluster]\nname = "t"\nslurm_conf = "missing.conf"\n\n'
                                        '[[replica]]\nid = 1\nraft = "127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_cluster_conf(load(tmp_path / "spur.toml"))


def test_scontrol_update_partition_words():
    assert partition_changes([("State", "down"), ("MaxTime", "2:00:00"), ("Nodes", "n[1-2]")]) == {
        "state": "DOWN", "max_time": 7200, "nodes": ["n1", "n2"]}
    with pytest.raises(ConfError, match="Update of Bogus is not supported"):
        partition_changes([("Bogus", "1")])


def test_sacctmgr_words_are_parsed_as_slurm_spells_them():
    req = acctmgr.request("add", "user", ["bob"], [], [("account", "ml,phys"), ("maxjobs", "4"),
                                                       ("GrpTRES", "cpu=8,mem=2G,gpu=2"), ("MaxWall", "1-0"),
                                                       ("adminlevel", "admin")])
    assert req == {"action": "add", "entity": "user", "names": ["bob"], "where": {}, "fields": {
        "Account": ["ml", "phys"], "MaxJobs": 4, "GrpTRES": {"cpu": 8, "mem": 2048, "gres/gpu": 2},
        "MaxWall": 86400, "AdminLevel": "Administrator"}}
    req = acctmgr.request("modify", "users", [], [("name", "bob"), ("account", "ml")], [("MaxJobs", "-1")])
    assert (req["names"], req["where"], req["fields"]) == (["bob"], {"account": "ml"}, {"MaxJobs": None})
    with pytest.raises(acctmgr.AcctError, match="Unknown option: Colour"):
        acctmgr.request("add", "account", ["a"], [], [("Colour", "red")])
    with pytest.raises(acctmgr.AcctError, match="Bad value for MaxJobs"):
        acctmgr.request("add", "account", ["a"], [], [("MaxJobs", "many")])


ACCT = {
    "cluster": "c",
    "accounts": [{"name": "root", "description": "default root account", "organization": "root"},
                 {"name": "phys", "description": "physics", "organization": "uni"}],
    "users": [{"name": "bob", "default_account": "phys", "admin_level": "None", "default_qos": ""}],
    "qos": [{"name": "normal", "description": "Normal QOS default", "priority": 0, "limits": {}}],
    "associations": [
        {"account": "root", "user": "", "partition": "", "parent": "", "shares": 1, "priority": 0, "qos": [],
         "default_qos": "", "limits": {}},
        {"account": "phys", "user": "", "partition": "", "parent": "root", "shares": 10, "priority": 0, "qos": [],
         "default_qos": "", "limits": {"GrpTRES": {"cpu": 64}}},
        {"account": "phys", "user": "bob", "partition": "", "parent": "phys", "shares": 1, "priority": 0,
         "qos": ["normal"], "default_qos": "", "limits": {"MaxJobs": 4, "MaxWall": 3600}},
    ],
}


def test_sacctmgr_show_tables():
    records, fmt = sacctmgr.show_records(ACCT, "account", [], {}, False)
    text = sacctmgr.render_table(records, sacctmgr.parse_format(",".join(sacctmgr.DEFAULT_FORMATS[fmt])), "c")
    assert text == (
        "   Account                Descr                  Org \n"
        "---------- -------------------- -------------------- \n"
        "      root default root account                 root \n"
        "      phys              physics                  uni \n"
    )
    records, _ = sacctmgr.show_records(ACCT, "association", [], {}, False)
    cols = sacctmgr.parse_format("Account,User,Share,GrpTRES,MaxJobs,MaxWall,QOS")
    assert sacctmgr.render_table(records, cols, "c", noheader=True, parsable="P") == (
        "root||1||||\nphys||10|cpu=64|||\nphys|bob|1||4|01:00:00|normal\n")


def test_sprio_hides_factors_whose_weight_is_zero():
    """sprio.c: ``%.15i %9r %.10Y %.10S`` then the factors with a weight; -w the weights
    (SITE's is 1); -n the normalized factors; -l every column."""
    data = {"weights": {"age": 1000, "fairshare": 0, "job_size": 100, "partition": 0, "qos": 0, "assoc": 0,
                        "site": 0, "nice": 0},
            "jobs": [{"job_id": 7, "partition": "batch", "user": "bob", "account": "phys", "priority": 612,
                      "site": 0, "age": 600.0, "assoc": 0.0, "fairshare": 0.0, "job_size": 12.5,
                      "partition_weighted": 0.0, "qos": 0.0, "nice": 0.0, "tres": ""}]}
    assert sprio.render(data) == (
        "          JOBID PARTITION   PRIORITY       SITE        AGE    JOBSIZE\n"
        "              7 batch            612          0        600         12\n"
    )
    assert sprio.render(data, weights=True) == (
        "          JOBID PARTITION   PRIORITY       SITE        AGE    JOBSIZE\n"
        "        Weights                               1       1000        100\n"
    )
    assert sprio.render(data, norm=True) == (
        "          JOBID PARTITION PRIORITY   AGE        JOBSIZE   \n"
        "              7 batch     0.00000014 0.6000000  0.1250000 \n"
    )
    assert sprio.render(data, long=True).splitlines()[0] == (
        "          JOBID PARTITION     USER  ACCOUNT   PRIORITY       SITE        AGE      ASSOC  FAIRSHARE "
        "   JOBSIZE  PARTITION    QOSNAME        QOS        NICE                 TRES")
    assert sprio.render(data, long=True).splitlines()[1] == (
        "              7 batch          bob     phys        612          0        600          0          0 "
        "        12          0     normal          0           0                     ")


def test_sshare_rows():
    rows = [
        {"account": "root", "user": "", "depth": 0, "raw_shares": 1, "norm_shares": 1.0, "raw_usage": 100.0,
         "effective_usage": 1.0, "fairshare": 1.0},
        {"account": "phys", "user": "", "depth": 1, "raw_shares": 10, "norm_shares": 1.0, "raw_usage": 100.0,
         "effective_usage": 1.0, "fairshare": 0.5},
        {"account": "phys", "user": "bob", "depth": 2, "raw_shares": 1, "norm_shares": 1.0, "raw_usage": 100.0,
         "effective_usage": 1.0, "fairshare": 0.5},
    ]
    # process.c: the Account column is the tree (slurmdb_tree_name_get) in every layout,
    # parsable too; a user's row is indented one level below its account's
    assert sshare.render(rows, parsable="P") == (
        "Account|User|RawShares|NormShares|RawUsage|EffectvUsage|FairShare\n"
        "root|||1.000000|100|1.000000|\n"
        " phys||10|1.000000|100|1.000000|\n"
        "  phys|bob|1|1.000000|100|1.000000|0.500000\n"
    )
    assert sshare.render(rows[:2]) == (
        "Account                    User  RawShares  NormShares    RawUsage  EffectvUsage  FairShare \n"
        "-------------------- ---------- ---------- ----------- ----------- ------------- ---------- \n"
        "root                                          1.000000         100      1.000000            \n"
        " phys                                   10    1.000000         100      1.000000            \n"
    )
    assert sshare.render(rows, parsable="p", noheader=True, fields="A,User,NormU%5,LevelFS").splitlines() == [
        "root||||", " phys||||", "  phys|bob|||"]
    # depth first, as share_rows gives them: each account followed by its subtree
    ordered = sshare.tree_order([rows[0], rows[1], rows[2], {**rows[2], "user": "amy"},
                                 {**rows[1], "account": "chem", "raw_shares": 1},
                                 {**rows[2], "account": "chem", "user": "zed"}])
    # slurmdb _sort_children_list: users before sub-accounts, each alphabetically
    assert [(r["account"], r["user"]) for r in ordered] == [
        ("root", ""), ("chem", ""), ("chem", "zed"), ("phys", ""), ("phys", "amy"), ("phys", "bob")]
    mine = sshare.select(rows, all_users=False, users=[], accounts=[], me="alice")
    assert [r["user"] for r in mine] == ["", ""]


def test_sacctmgr_fields_are_slurms():
    """common.c _get_print_field: Slurm's spellings (prefixes no shorter than the minimum,
    first match in its order), headers and widths; TRES in the TRES table's order with
    memory in units; fields Spur keeps no value for print blank; an unknown one is
    ``Unknown field 'x'``."""
    cols = sacctmgr.parse_format("Acc,ParentN,Share,GrpTRES,MaxTRESPerJob%20,MaxWall,Lineage,Flags")
    assert [(h, w) for _k, h, w in cols] == [("Account", 10), ("ParentName", 10), ("Share", 9), ("GrpTRES", 13),
                                            ("MaxTRES", 20), ("MaxWall", 11), ("Lineage", -20), ("Flags", 20)]
    with pytest.raises(CliError, match="Unknown field 'Colour'"):
        sacctmgr.parse_format("Colour")
    with pytest.raises(CliError):
        sacctmgr.parse_format("Ac")  # shorter than Account's 3
    tres = {"gres/gpu": 2, "node": 1, "mem": 2048, "cpu": 8}
    assert sacctmgr._tres_text(tres) == "cpu=8,mem=2G,node=1,gres/gpu=2"
    records, _ = sacctmgr.show_records(ACCT, "association", [], {}, False)
    text = sacctmgr.render_table(records, sacctmgr.parse_format("Account,User,Lineage%8,GrpTRES,Flags%5"), "c")
    assert text.splitlines() == [
        "   Account       User  Lineage       GrpTRES Flags ",  # %8: a width of 8, right-justified
        "---------- ---------- -------- ------------- ----- ",
        "      root                                         ",
        "      phys                            cpu=64       ",
        "      phys        bob                              ",
    ]
    qos, fmt = sacctmgr.show_records(ACCT, "qos", [], {}, False)
    header = sacctmgr.render_table(qos, sacctmgr.parse_format(",".join(sacctmgr.DEFAULT_FORMATS[fmt])), "c")
    assert header.splitlines()[0].split()[:9] == ["Name", "Priority", "GraceTime", "Preempt", "PreemptExemptTime",
                                                  "PreemptMode", "Flags", "UsageThres", "UsageFactor"]
    assert header.splitlines()[2].split()[:4] == ["normal", "0", "00:00:00", "cluster"]
