"""Who is asking: a request's identity from its connection, and the errors about it.

A Unix-socket peer is its uid (SO_PEERCRED): root and the controller's own user are
``admin``, ``config.operators`` are ``operator``, everyone else ``user``. A TLS peer is its
certificate: CN the user name, OU the role (``admin``, ``operator``, ``user``, ``viewer``,
``node``; anything else is ``viewer``). A user name the host cannot resolve has uid -1 and
may not write (Slurm's "Invalid user id").
"""

from __future__ import annotations

import functools
import pwd
from typing import Any

import attrs

from spurio.rpc import RpcError

ACCESS_DENIED = RpcError("access_denied", "Access/permission denied")
INVALID_JOB = RpcError("invalid_job_id", "Invalid job id specified")
INVALID_USER = RpcError("invalid_user", "Invalid user id")  # Slurm's ESLURM_USER_ID_MISSING
INVALID_ARRAY = RpcError("invalid_array", "Invalid job array specification")
ROLES = ("admin", "operator", "user", "viewer", "node")


@attrs.frozen
class Identity:
    user: str
    uid: int
    role: str  # one of ROLES

    @property
    def privileged(self) -> bool:
        return self.role in ("admin", "operator")


@functools.lru_cache(maxsize=4096)
def passwd(uid: int) -> tuple[str, int]:
    """(name, primary gid) of ``uid``; cached: reading /etc/passwd per request is slow."""
    try:
        pw = pwd.getpwuid(uid)
        return pw.pw_name, pw.pw_gid
    except KeyError:
        return str(uid), uid


def identify(peer: dict[str, Any], admin_uids: set[int], operators: Any) -> Identity:
    """The identity of a connection's ``peer`` (``spurio.rpc``'s peer map)."""
    if peer.get("transport") == "unix":
        uid = int(peer.get("uid", -1))
        if uid in admin_uids:
            role = "admin"
        elif uid in operators:
            role = "operator"
        else:
            role = "user"
        return Identity(passwd(uid)[0], uid, role)
    cn, ou = peer.get("cn"), peer.get("ou")
    if not cn:
        raise ACCESS_DENIED
    try:
        uid = pwd.getpwnam(cn).pw_uid
    except KeyError:
        uid = -1
    return Identity(cn, uid, ou if ou in ROLES else "viewer")


def may_write(ident: Identity) -> Identity:
    """``ident`` if it may change state, else the error Slurm gives."""
    if ident.role == "viewer":
        raise ACCESS_DENIED
    if ident.uid < 0 and ident.role in ("user", "operator"):
        raise INVALID_USER  # a certificate whose CN this cluster cannot resolve to a uid
    return ident
