"""One bot process per SQLite file: an exclusive lock on `<database>.lock`, held for life.

Two processes on one file would both poll Telegram and Kie.ai (every result delivered twice),
and the second one's start-up would refund the first one's in-flight creates. The lock is an
flock(2) on a separate file, so it never interferes with SQLite's own locks on the database
(or with a test's second connection to it), and the OS drops it when the process dies, even
on SIGKILL: there is never a stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from bot.store.database import StoreError


class DatabaseInUse(StoreError):
    """Another process holds the lock on this database (a file's flock here, or PostgreSQL's
    advisory lock: store.database)."""

    def __init__(self, where: str, holder: str) -> None:
        super().__init__(f"{where} is in use by process {holder or '?'}")
        self.where = where
        self.holder = holder  # the pid the holder named ("" if unknown)


def lock_path(database: Path) -> Path:
    # Resolved, so two spellings of one file (relative, through a symlink) share one lock.
    resolved = database.resolve()
    return resolved.with_name(resolved.name + ".lock")


class DatabaseLock:
    """`with DatabaseLock(path):` holds the lock until the block ends (or the process dies).

    Raises DatabaseInUse at once if another process holds it (never waits), and OSError if
    the lock file cannot be created (the folder is missing and cannot be made, unwritable...).
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = None

    def acquire(self) -> None:
        # A second flock from this process, on a new descriptor, would conflict with its own.
        if self._fd is not None or str(self.database) == ":memory:":  # :memory: is private
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)  # as Store.open does for the db
        # os.open's descriptor is not inherited by child processes (PEP 446).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise DatabaseInUse(str(self.database), holder) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder's pid, only for the message the next process prints.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        # The file stays: unlinking it would let a waiting process lock an orphaned inode
        # while a third creates and locks a new file at the same path.
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()
