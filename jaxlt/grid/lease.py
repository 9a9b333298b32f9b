"""Leases: an exclusive-create lock file per unit of grid work (a source run, a cell).

A lease file is created with O_CREAT | O_EXCL, so of two processes that try at once
exactly one gets it. It holds JSON (host, PID, the PID's start time, when the lease
was taken, a random token); its modification time is the heartbeat, touched by a
background thread every `heartbeat_s` while the work runs. Another process skips work
whose lease is live. A lease is stale, and is taken over (the takeover is logged),
when its heartbeat is older than `stale_after_s`, or at once when it names a process
on this host that no longer exists (a killed worker restarted on the same machine).

Takeover renames the stale file to a name of our own and checks that it moved the
file it judged stale (same token); if another process re-took the lease in between,
the file is put back with link(), which never overwrites. A holder checks its token at
every heartbeat, so in the unlikely case that its lease was taken anyway it learns so
(`Lease.lost`) and stops before writing.

Used by the grid runner: duplicate workers (a resubmitted array task, a restarted job
whose predecessor still runs) never compute the same cell twice, and `--schedule
dynamic` workers take the next unleased work from a shared results directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid

from jaxlt import atomic

log = logging.getLogger(__name__)
DEFAULT_STALE_AFTER_S = 600.0
SUFFIX = ".lease"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    now = _process_start(pid)
    return start is None or now is None or now == start


def read(path: str) -> dict | None:
    """The lease's holder and heartbeat age, or None if there is no lease file."""
    try:
        st = os.stat(path)
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:  # created but not yet written (or its writer was killed then)
        info = {}
    info["age_s"] = time.time() - st.st_mtime
    return info


class Lease:
    """A held lease; `release()` (or the context manager) deletes it."""

    def __init__(self, path: str, info: dict, heartbeat_s: float):
        self.path, self.info, self.token = path, info, info["token"]
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                        name=f"lease-heartbeat:{os.path.basename(path)}")
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            if not self.still_held():
                self.lost = True
                log.error("lease %s was taken over by another process; this process stops that work", self.path)
                return
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def still_held(self) -> bool:
        info = read(self.path)
        return info is not None and info.get("token") == self.token

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.still_held():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def is_stale(info: dict, stale_after_s: float) -> bool:
    if info.get("host") == socket.gethostname() and "pid" in info:
        if info["pid"] == os.getpid() and info.get("pid_start") == _process_start(os.getpid()):
            return False  # ours (another thread of this process)
        if not _pid_alive(int(info["pid"]), info.get("pid_start")):
            return True
    return info["age_s"] > stale_after_s


def is_live(path: str, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> bool:
    """Whether a live lease is held on `path` (by another process, or by this one)."""
    info = read(path)
    return info is not None and not is_stale(info, stale_after_s)


def _create(path: str, what: str) -> dict | None:
    info = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "work": what,
            "token": uuid.uuid4().hex}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, atomic.file_mode())
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
        f.flush()
        os.fsync(f.fileno())
    return info


def try_acquire(path: str, what: str = "", *, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                heartbeat_s: float | None = None) -> Lease | None:
    """The lease on `path`, or None if another process holds a live one (a stale one is taken over)."""
    heartbeat_s = heartbeat_s if heartbeat_s is not None else max(0.05, min(30.0, stale_after_s / 4))
    info = _create(path, what)
    if info is None:
        old = read(path)
        if old is None:  # released meanwhile
            info = _create(path, what)
        elif is_stale(old, stale_after_s):
            if _take_over(path, old):
                info = _create(path, what)
                if info is not None:
                    log.warning("took over the stale lease %s of %s pid %s (work %s, heartbeat %.0f s ago)", path,
                                old.get("host", "?"), old.get("pid", "?"), old.get("work", what), old["age_s"])
    return Lease(path, info, heartbeat_s) if info is not None else None


def _take_over(path: str, old: dict) -> bool:
    """Moves the stale lease file out of the way, if it is still the one judged stale."""
    tomb = f"{path}.stale-{uuid.uuid4().hex}"
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return True  # gone meanwhile: free to create
    moved = read(tomb) or {}
    if moved.get("token") != old.get("token"):  # a fresh lease replaced the stale one: put it back
        try:
            os.link(tomb, path)  # never overwrites
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: rename back unless re-taken meanwhile
            if not os.path.exists(path):
                os.rename(tomb, path)
                return False
        os.unlink(tomb)
        return False
    os.unlink(tomb)
    return True
