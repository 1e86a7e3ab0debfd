"""One run per workdir: an exclusive lock on ``<workdir>/.kmri-train.lock``.

Two runs in one workdir would race on the slice store and on checkpoints (one deleting the
other's) and both exit 0. The lock is an OS lock (``fcntl.flock``) on an open file, so it dies
with its process: a run killed by SLURM's time limit or ``kill -9`` never blocks the next start.
The file also records who holds it (pid, host, start time) for the refusal message.

Filesystems without ``flock`` (some Lustre/NFS mounts) fall back to the recorded pid: a lock
held by a live process on this host, or by any process on another host, refuses; one whose
process is gone on this host is taken over.

Multi-host runs take the lock once, on process 0.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path

__all__ = ["LOCK_FILE", "WorkdirBusyError", "WorkdirLock"]

log = logging.getLogger(__name__)

LOCK_FILE = ".kmri-train.lock"


class WorkdirBusyError(RuntimeError):
    """Another run holds the workdir; the message names it and what to do."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _busy(workdir: Path, holder: dict) -> WorkdirBusyError:
    who = (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} (started "
           f"{holder.get('started', '?')})") if holder else "another process"
    return WorkdirBusyError(
        f"the workdir {workdir} is in use by {who}: two runs in one workdir would overwrite "
        "each other's checkpoints. Wait for that run to finish or stop it, or pass another "
        "--workdir.")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    """Context manager holding the workdir lock; ``enabled=False`` (other hosts) does nothing.

    Raises:
      WorkdirBusyError: on entry, when another live run holds the lock.
    """

    def __init__(self, workdir: str | os.PathLike[str], *, enabled: bool = True) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_FILE
        self.enabled = enabled
        self._file = None

    def __enter__(self) -> WorkdirLock:
        if not self.enabled:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                f.close()
                raise _busy(self.workdir, _holder(self.path)) from None
            self._check_recorded_holder()  # no flock on this filesystem
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(me) + "\n")
        f.flush()
        self._file = f
        return self

    def _check_recorded_holder(self) -> None:
        holder = _holder(self.path)
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid == os.getpid():
            return
        if holder.get("host") != socket.gethostname() or _pid_alive(pid):
            raise _busy(self.workdir, holder)
        log.info("taking over the lock of %s left by process %d, which is gone", self.workdir,
                 pid)

    def __exit__(self, *exc: object) -> None:
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
        finally:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
