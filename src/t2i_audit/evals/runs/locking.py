"""One writer per run directory: a ``.lock`` file holding the writer's pid, host and start time.

The lock is created atomically (a complete temp file ``.lock-tmp-*`` hard-linked to ``.lock``, which
fails if the lock exists), so it never holds partial content. A lock left by a process that no longer exists on
this host (or whose pid was reused by another process, told apart by the process start time) is
stale and is taken over; a lock held by a live process, or by another host, is refused with a
message naming the holder.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from t2i_audit.errors import InputError

LOCK_NAME = ".lock"


class RunLockedError(InputError):
    """Another writer holds the run directory."""


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux /proc), to detect pid reuse; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counts from the field after the ")" that closes the command name.
    rest = stat[stat.rfind(")") + 2:].split()
    return rest[19] if len(rest) > 19 else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_alive(info: dict) -> bool:
    pid = int(info.get("pid", -1))
    if not pid_alive(pid):
        return False
    recorded = info.get("start_time")
    current = _proc_start_time(pid)
    if recorded and current and recorded != current:
        return False  # the pid now belongs to another process
    return True


class RunLock:
    """Context manager: ``with RunLock(run_dir): ...`` holds ``run_dir/.lock``."""

    def __init__(self, directory: str | Path, *, purpose: str = "sample"):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.purpose = purpose
        self.recovered: dict | None = None  # the stale lock this writer took over, if any
        self._held = False

    def _info(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start_time": _proc_start_time(os.getpid()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "purpose": self.purpose,
            "argv": sys.argv[:8],
        }

    def read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}

    def acquire(self) -> RunLock:
        tmp = self.directory / f".lock-tmp-{uuid.uuid4().hex}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._info()))
        except OSError as e:
            raise InputError(f"{self.directory}: cannot create the run directory or its lock: "
                             f"{e.strerror or e}; choose a writable --out") from None
        try:
            for _ in range(5):
                try:
                    os.link(tmp, self.path)
                    self._held = True
                    return self
                except FileExistsError:
                    pass
                info = self.read()
                if info is None:
                    continue  # removed between our attempts: retry
                host = socket.gethostname()
                if info and info.get("host") != host:
                    raise RunLockedError(
                        f"{self.directory}: locked by pid {info.get('pid')} on host {info.get('host')} "
                        f"(since {info.get('created')}); if no process there is writing this run, "
                        f"delete {self.path} and retry")
                if info and _holder_alive(info):
                    raise RunLockedError(
                        f"{self.directory}: another writer is running (pid {info.get('pid')}, "
                        f"{info.get('purpose')}, since {info.get('created')}); wait for it to finish "
                        f"or stop it, or write to another directory")
                # Stale (dead pid, reused pid, or unreadable): move it aside atomically, so that of
                # several processes recovering at once only one removes it, then retry the link.
                aside = self.directory / f".lock-stale-{uuid.uuid4().hex}"
                try:
                    os.rename(self.path, aside)
                except FileNotFoundError:
                    continue
                try:
                    moved = json.loads(aside.read_text())
                except ValueError:
                    moved = {}
                if moved != (info or {}):
                    # Another process took the lock over between our read and our rename: put its
                    # lock back and refuse.
                    try:
                        os.link(aside, self.path)
                    except FileExistsError:
                        pass
                    aside.unlink(missing_ok=True)
                    raise RunLockedError(f"{self.directory}: another writer took the lock just now "
                                         f"(pid {moved.get('pid')}); write to another directory")
                self.recovered = info or {}
                aside.unlink(missing_ok=True)
            raise RunLockedError(f"{self.directory}: could not take {self.path} (contended); retry")
        finally:
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        if not self._held:
            return
        info = self.read()
        if info and info.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self._held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
