"""Who holds a workdir's lock: the record a lock file or object carries (host, pid, start time,
this boot of the host, the process's own start) and whether that process still runs, as far as
this host can tell. Shared by the local lock (``workdir_lock.py``) and the bucket lock
(``bucket_lock.py``)."""

import datetime
import json
import os
import socket
from typing import Optional


class WorkdirLocked(RuntimeError):
    """Another run trains in this workdir; the message names it and what to do."""


def _boot_id() -> Optional[str]:
    """This boot of this host (Linux), so that a pid from before a reboot is not trusted."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> Optional[str]:
    """When ``pid`` started, in clock ticks since boot (Linux), to tell a reused pid; None
    when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> dict:
    """The record naming this process as a lock's holder."""
    pid = os.getpid()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"host": socket.gethostname(), "pid": pid, "started": started,
            "boot_id": _boot_id(), "process_start": _process_start(pid)}


def is_this_process(holder: dict) -> bool:
    return holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()


def is_alive(holder: dict) -> Optional[bool]:
    """Whether the process a lock names still runs: True / False where this host can tell
    (the same host), None for another host's."""
    if holder.get("host") != socket.gethostname():
        return None
    boot = _boot_id()
    if holder.get("boot_id") and boot and holder["boot_id"] != boot:
        return False
    pid = int(holder.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    start = _process_start(pid)
    return not (holder.get("process_start") and start and holder["process_start"] != start)


def describe(holder: dict) -> str:
    """``pid 123 on host h (started ...)``."""
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (started "
            f"{holder.get('started', '?')})")


def parse(text: str) -> dict:
    """The holder a lock names; ``{}`` for an empty or unreadable record."""
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
