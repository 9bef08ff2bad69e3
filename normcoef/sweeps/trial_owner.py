"""The process that asked a trial, recorded with it, and whether that process is gone.

A RUNNING trial may belong to a process on another host, so a search started again after a
``kill -9`` took the killed trial for a running one until its heartbeat was ``grace_period``
old (10 minutes by default). On one host the owner can be asked directly: its process id and
the time the process started (``/proc/<pid>/stat``, field 22) name it, and a pid that is free
again, or taken by a later process, says that it is gone. Across hosts the heartbeat stays the
rule. Linux only (``/proc``); elsewhere no owner is recorded and the heartbeat decides.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

OWNER_ATTR = "normcoef:owner"
"""The trial's system attribute: ``{"host": host_id(), "pid": ..., "started": ...}``."""


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot; None when no live process has
    that pid (a zombie, killed and not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields 3 onwards follow the command name, in parentheses and free to hold spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def host_id() -> str | None:
    """This host as its process ids mean it: host name, boot and PID namespace (containers
    sharing a host name may not share process ids). None without ``/proc``."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{namespace}"


def this_process() -> dict[str, str | int] | None:
    """This process, as recorded with the trials it asks; None without ``/proc``."""
    host, started = host_id(), process_start(os.getpid())
    if host is None or started is None:
        return None
    return {"host": host, "pid": os.getpid(), "started": started}


def is_gone(owner: dict, here: str | None) -> bool:
    """Whether ``owner`` (a record of ``this_process``) ran on this host (``here``, its
    ``host_id``) and has ended: its pid is free, or another process took it."""
    return (
        here is not None
        and owner.get("host") == here
        and process_start(int(owner["pid"])) != owner.get("started")
    )
