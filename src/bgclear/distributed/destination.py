"""The destination folder: one job at a time, no partial files left behind."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from .common import LOCK_NAME, BatchError, timestamp

log = logging.getLogger("bgclear")



_PART = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part$")  # what files.write_atomic names its temporary files


class DestinationBusy(BatchError):
    """Another batch is writing into the same destination."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    # A recycled pid that is not a bgclear process does not hold the lock.
    return not cmdline.exists() or b"bgclear" in cmdline.read_bytes()


@contextlib.contextmanager
def destination_lock(dst: Path) -> Iterator[None]:
    """Hold ``DST/.bgclear-batch.lock`` for the job; a lock left by a dead process on this host is taken over."""
    dst.mkdir(parents=True, exist_ok=True)
    lock = dst / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": timestamp()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", 0))):
                lock.unlink(missing_ok=True)
                continue
            raise DestinationBusy(
                f"another bgclear batch (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                f"{holder.get('started', '?')}) is writing into {dst}; if it is no longer running, delete {lock}")
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def remove_stale_parts(dst: Path) -> int:
    """Delete temporary files that a killed job left in ``dst`` (only while holding its lock)."""
    removed = 0
    for folder, _dirs, names in os.walk(dst):
        for name in names:
            if _PART.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


