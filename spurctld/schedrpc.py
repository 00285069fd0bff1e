"""The controller's RPC methods for the cluster configuration, nodes, partitions, accounting
and priorities (a mixin of ``spurctld.service.Controller``).

Order of work, as for every write: read and check (identity, the request), build the op,
commit it through the log, answer. Reads answer from the leader's state (a follower forwards
them, ``_read_local``/``_forward_read``).

The configuration is the file's: ``ensure_configured`` reads spur.toml (and the slurm.conf it
names) and proposes a ``ClusterConfigured`` when the state did not take this content yet (a
new leader at start-up) or when asked (``scontrol reconfigure``). Group names in AllowGroups
are resolved here, at the edge, into the uids and gids the reducer compares.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import pwd
import time
from typing import Any

from spurcore import acctmgr, slurmconf
from spurcore.hostlist import expand
from spurcore.model import assoc_key, default_partition, partitions_of
from spurcore.ops import AccountingUpdated, ClusterConfigured, NodeStateUpdated, PartitionUpdated
from spurctld.identity import ACCESS_DENIED
from spurio import rpc
from spurio.config import ConfigError, load, load_cluster_conf
from spurio.rpc import RpcError

log = logging.getLogger("spurctld")


def resolve_groups(groups: list[str]) -> tuple[list[int], list[int]]:
    """(uids, gids) of the named groups: their members and the users whose primary group
    they are (what Slurm reads for AllowGroups)."""
    uids: set[int] = set()
    gids: set[int] = set()
    for name in groups:
        try:
            g = grp.getgrnam(name)
        except KeyError:
            log.warning("AllowGroups: no group named %s", name)
            continue
        gids.add(g.gr_gid)
        for member in g.gr_mem:
            try:
                uids.add(pwd.getpwnam(member).pw_uid)
            except KeyError:
                pass
    if gids:
        for pw in pwd.getpwall():
            if pw.pw_gid in gids:
                uids.add(pw.pw_uid)
    return sorted(uids), sorted(gids)


class SchedulingMethods:
    """Mixed into Controller: uses its replica, config, commit and identity helpers."""

    config: Any
    replica: Any
    _config_lock: asyncio.Lock | None = None
    _config_term = -1
    _cluster_conf: Any = None
    _reported_unused: set[str]

    def _sched_methods(self) -> dict[str, Any]:
        return {
            "update_node": self.m_update_node,
            "update_partition": self.m_update_partition,
            "reconfigure": self.m_reconfigure,
            "partitions": self.m_partitions,
            "accounting_update": self.m_accounting_update,
            "accounting_show": self.m_accounting_show,
            "sprio": self.m_sprio,
            "sshare": self.m_sshare,
            "sched_config": self.m_sched_config,
        }

    # --- the configuration -----------------------------------------------------------------

    def load_cluster(self, reload: bool = False) -> Any:
        """The ClusterConf of the configuration file (re-read when ``reload``)."""
        if self._cluster_conf is None or reload:
            config = load(self.config.path) if reload else self.config
            conf = load_cluster_conf(config)
            if not hasattr(self, "_reported_unused"):
                self._reported_unused = set()
            for line in conf.unused:
                if line not in self._reported_unused:
                    self._reported_unused.add(line)
                    log.warning("configuration: not used by Spur: %s", line)
            if not conf.nodes:
                log.warning("configuration: no node is named (NodeName lines or [[node]] tables): agents "
                            "register under any valid name with the resources they report")
            self._cluster_conf = conf
        return self._cluster_conf

    def _configured_op(self, conf: Any) -> ClusterConfigured:
        partitions = []
        for part in conf.partitions:
            part = dict(part)
            if part["allow_groups"]:
                part["allow_uids"], part["allow_gids"] = resolve_groups(part["allow_groups"])
            partitions.append(part)
        return ClusterConfigured(conf.digest, tuple(conf.nodes), tuple(partitions), dict(conf.settings), time.time())

    async def ensure_configured(self, *, reload: bool = False, force: bool = False) -> str:
        """Propose the file's configuration unless the state already holds it. -> its digest."""
        if self._config_lock is None:
            self._config_lock = asyncio.Lock()
        async with self._config_lock:
            conf = self.load_cluster(reload)
            with self.replica.state_lock:
                current = self.replica.state.config_digest
            if current != conf.digest or force:
                await self.commit(self._configured_op(conf))  # type: ignore[attr-defined]
                log.info("configuration %s applied: %d nodes, %d partitions", conf.digest, len(conf.nodes),
                         len(conf.partitions))
            return conf.digest

    def _maybe_configure(self, term: int) -> None:
        """Called by the leader loop: once per term, make sure the state has the file's
        configuration (a failure is logged and retried next term)."""
        if self._config_term == term:
            return
        self._config_term = term

        async def run() -> None:
            try:
                await self.ensure_configured()
            except (RpcError, ConfigError) as exc:
                log.error("cannot apply the configuration: %s", exc)
                self._config_term = -1

        task = asyncio.ensure_future(run())
        tasks = getattr(self, "_tasks", None)
        if isinstance(tasks, list):  # Controller.stop cancels these
            tasks[:] = [t for t in tasks if not t.done()] + [task]

    def configured_node(self, name: str) -> dict[str, Any] | None:
        try:
            conf = self.load_cluster()
        except ConfigError as exc:
            raise RpcError("bad_config", str(exc)) from None
        return conf.node(name)

    # --- writes ----------------------------------------------------------------------------

    def _admin(self, conn: rpc.RpcConnection, *, operator: bool = False) -> Any:
        ident = self.identity(conn)  # type: ignore[attr-defined]
        if ident.role == "admin" or (operator and ident.role == "operator"):
            return ident
        raise ACCESS_DENIED

    async def m_update_node(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """scontrol update nodename=LIST state=DOWN|DRAIN|FAIL|RESUME|UNDRAIN reason=TEXT."""
        ident = self._admin(conn, operator=True)
        names_text, state = params.get("names"), params.get("state")
        reason = params.get("reason", "")
        if not isinstance(names_text, str) or not isinstance(state, str) or not isinstance(reason, str):
            raise RpcError("bad_request", "names, state and reason must be strings")
        try:
            names = tuple(expand(names_text))
        except ValueError:
            raise RpcError("invalid_node", f"Invalid node name specified: {names_text}") from None
        await self.commit(NodeStateUpdated(names, state.upper(), reason, ident.uid, time.time()))  # type: ignore[attr-defined]
        return {}

    async def m_update_partition(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """scontrol update partitionname=NAME Key=Value ...: ``changes`` in Slurm's keys, as text."""
        ident = self._admin(conn, operator=True)
        name, changes = params.get("name"), params.get("changes")
        if not isinstance(name, str) or not isinstance(changes, dict) or not changes:
            raise RpcError("bad_request", "name and a non-empty map of changes are required")
        try:
            parsed = slurmconf.partition_changes([(str(k), str(v)) for k, v in changes.items()])
        except slurmconf.ConfError as exc:
            raise RpcError("bad_request", str(exc)) from None
        if parsed.get("allow_groups"):
            parsed["allow_uids"], parsed["allow_gids"] = resolve_groups(parsed["allow_groups"])
        elif "allow_groups" in parsed:
            parsed["allow_uids"], parsed["allow_gids"] = [], []
        await self.commit(PartitionUpdated(name, parsed, ident.uid, time.time()))  # type: ignore[attr-defined]
        return {}

    async def m_reconfigure(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """scontrol reconfigure: re-read the configuration and apply it (partition and node
        settings made by scontrol update since are reset to the file's, as in Slurm)."""
        self._admin(conn)
        try:
            digest = await self.ensure_configured(reload=True, force=True)
        except ConfigError as exc:
            raise RpcError("bad_config", str(exc)) from None
        return {"digest": digest, "unused": list(self.load_cluster().unused)}

    async def m_accounting_update(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """sacctmgr add|modify|delete account|user|qos: ``fields`` and ``where`` as text
        (sacctmgr's words), parsed here; admins only."""
        ident = self._admin(conn)
        action = params.get("action")
        if action not in ("add", "modify", "delete"):
            raise RpcError("bad_request", "action must be add, modify or delete")
        try:
            req = acctmgr.request(
                action, str(params.get("entity", "")), [str(n) for n in params.get("names") or []],
                [(str(k), str(v)) for k, v in (params.get("where") or {}).items()],
                [(str(k), str(v)) for k, v in (params.get("fields") or {}).items()],
            )
        except acctmgr.AcctError as exc:
            raise RpcError("bad_request", str(exc).strip()) from None
        op = AccountingUpdated(req["action"], req["entity"], tuple(req["names"]), req["where"], req["fields"],
                               ident.uid, time.time())
        count = await self.commit(op)  # type: ignore[attr-defined]
        return {"count": count}

    # --- reads -----------------------------------------------------------------------------

    async def _read(self, conn: rpc.RpcConnection, method: str, params: dict[str, Any]) -> Any:
        self.identity(conn)  # type: ignore[attr-defined]
        if not self._read_local(params):  # type: ignore[attr-defined]
            return await self._forward_read(method, params)  # type: ignore[attr-defined]
        return None

    async def m_partitions(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        forwarded = await self._read(conn, "partitions", params)
        if forwarded is not None:
            return forwarded
        from spurcore.views import partition_info

        with self.replica.state_lock:
            state = self.replica.state
            return {"partitions": partition_info(state), "default": default_partition(state)}

    async def m_accounting_show(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """sacctmgr show: every account, user, QOS and association record."""
        forwarded = await self._read(conn, "accounting_show", params)
        if forwarded is not None:
            return forwarded
        with self.replica.state_lock:
            s = self.replica.state
            qos = dict(s.qos)
            if "normal" not in qos:
                from spurcore.model import Qos

                qos = {"normal": Qos("normal", "Normal QOS default"), **qos}
            return {
                "cluster": self.config.name,
                "accounts": [{"name": a.name, "description": a.description, "organization": a.organization}
                             for a in s.accounts.values()],
                "users": [{"name": u.name, "default_account": u.default_account, "admin_level": u.admin_level,
                           "default_qos": u.default_qos} for u in s.users.values()],
                "qos": [{"name": q.name, "description": q.description, "priority": q.priority,
                         "limits": dict(q.limits)} for q in qos.values()],
                "associations": [{"account": a.account, "user": a.user, "partition": a.partition,
                                  "parent": a.parent, "shares": a.shares, "priority": a.priority,
                                  "qos": list(a.qos), "default_qos": a.default_qos, "limits": dict(a.limits)}
                                 for a in s.assocs.values()],
                "enforce": list(s.settings.get("enforce") or []),
            }

    async def m_sprio(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """sprio: each pending job's priority and its weighted factors, per partition, and
        the weights (sprio -w)."""
        forwarded = await self._read(conn, "sprio", params)
        if forwarded is not None:
            return forwarded
        from spurcore import priority

        wanted = {int(j) for j in params.get("job_ids") or ()}
        users = {str(u) for u in params.get("users") or ()}
        now = time.time()
        rows = []
        with self.replica.state_lock:
            state = self.replica.state
            ctx = priority.context(state, now)
            parts = partitions_of(state)
            for job_id in state.pending:
                job = state.jobs[job_id]
                if (wanted and job_id not in wanted) or (users and job.spec.user not in users):
                    continue
                for name in priority.partition_names(job.partition_list):
                    part = parts.get(name)
                    if part is None:
                        continue
                    weighted = priority.weighted(ctx, priority.factors(ctx, job, part))
                    weighted["partition_weighted"] = weighted.pop("partition")
                    rows.append({"job_id": job_id, "partition": name, "user": job.spec.user,
                                 "qos_name": job.spec.qos or "normal", "account": job.spec.account, "priority": 0 if job.hold else
                                 priority.compute(ctx, job, part), "site": 0, **weighted, "tres": ""})
            s = state.settings
            weights = {"age": s.get("priority_weight_age", 0), "fairshare": s.get("priority_weight_fairshare", 0),
                       "job_size": s.get("priority_weight_job_size", 0),
                       "partition": s.get("priority_weight_partition", 0), "qos": s.get("priority_weight_qos", 0),
                       "assoc": s.get("priority_weight_assoc", 0), "site": 0, "nice": 0}
        return {"jobs": rows, "weights": weights, "priority_type": s.get("priority_type", "priority/multifactor")}

    async def m_sshare(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        forwarded = await self._read(conn, "sshare", params)
        if forwarded is not None:
            return forwarded
        from spurcore.priority import share_rows

        with self.replica.state_lock:
            rows = share_rows(self.replica.state, time.time())
        return {"rows": rows, "cluster": self.config.name}

    async def m_sched_config(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """The scheduling settings in effect (scontrol show config's scheduling lines)."""
        forwarded = await self._read(conn, "sched_config", params)
        if forwarded is not None:
            return forwarded
        from spurcore.slurmconf import SETTINGS

        with self.replica.state_lock:
            s = dict(SETTINGS, **self.replica.state.settings)
            digest = self.replica.state.config_digest
        params_text = ",".join(
            [f"bf_window={s['bf_window'] // 60}", f"bf_resolution={s['bf_resolution']}",
             f"bf_max_job_test={s['bf_max_job_test']}", f"bf_interval={s['bf_interval']}"]
            + (["bf_continue"] if s["bf_continue"] else []))
        return {"config": {
            "SchedulerType": s["scheduler_type"],
            "SchedulerParameters": params_text,
            "PriorityType": s["priority_type"],
            "PriorityWeightAge": s["priority_weight_age"],
            "PriorityWeightAssoc": s["priority_weight_assoc"],
            "PriorityWeightFairshare": s["priority_weight_fairshare"],
            "PriorityWeightJobSize": s["priority_weight_job_size"],
            "PriorityWeightPartition": s["priority_weight_partition"],
            "PriorityWeightQOS": s["priority_weight_qos"],
            "PriorityMaxAge": s["priority_max_age"],
            "PriorityDecayHalfLife": s["priority_decay_half_life"],
            "PriorityCalcPeriod": s["priority_calc_period"],
            "PriorityFavorSmall": "Yes" if s["priority_favor_small"] else "No",
            "AccountingStorageEnforce": ",".join(s["enforce"]) or "none",
            "ConfigDigest": digest,
        }}


__all__ = ["SchedulingMethods", "resolve_groups", "assoc_key"]
