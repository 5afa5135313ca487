"""An online copy of the SQLite database (`python -m bot backup <file>`), safe while the bot
runs: SQLite's backup API reads one consistent snapshot and takes no write lock."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bot.store.database import StoreError


class BackupError(StoreError):
    """One line for the operator; `code` is the exit code (2: nothing was tried, 1: failed)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def copy_database(source: Path, target: Path) -> str:
    """Copy `source` into a new file `target` with SQLite's online backup API, check the
    copy, and say what it holds.

    Safe while the bot runs: the copy is one read transaction, a consistent snapshot of the
    last commit (WAL lets the bot go on writing meanwhile), and it takes neither the bot's
    lock file (lock.py) nor SQLite's write lock. The copy is written beside `target` under a
    temporary name and only linked into place once checked, so `target` is never a partial
    file and an existing one is never overwritten.
    """
    started = time.monotonic()
    if str(source) == ":memory:":
        raise BackupError("DATABASE_PATH is :memory:; there is no file to back up")
    if not source.is_file():
        what = "is not a file" if source.exists() else "does not exist"
        raise BackupError(f"DATABASE_PATH {source} {what}; nothing to back up")
    if target.exists() or target.is_symlink():
        raise BackupError(f"{target} already exists; give a new file name (nothing is overwritten)")
    try:
        # mode=rw: a file gone since the check above is an error, never a new empty database.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        src.execute("PRAGMA schema_version").fetchone()  # reads the header: is it SQLite?
    except sqlite3.Error as error:
        raise BackupError(f"DATABASE_PATH {source} cannot be read as a database: {error}") from None
    try:
        partial = _new_partial(target, mode=source.stat().st_mode & 0o777)
        try:
            _online_copy(src, partial)
            summary = _verify(partial)
            _link_into_place(partial, target)
        finally:
            for leftover in (partial, Path(f"{partial}-journal")):
                leftover.unlink(missing_ok=True)
    finally:
        src.close()
    size = target.stat().st_size
    return (f"Backed up {source} to {target} ({size / 1e6:.1f} MB in "
            f"{time.monotonic() - started:.1f} s): {summary}")


def _new_partial(target: Path, mode: int) -> Path:
    """An empty file beside `target` (its folders created) to copy into, readable by whom
    the database is readable (`mode`), so the bot's user can restore from it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as error:
        raise BackupError(f"{target} cannot be created: {error.strerror or error}") from None
    with contextlib.suppress(OSError):  # a file system without modes: its default
        os.fchmod(fd, mode)
    os.close(fd)
    return Path(name)


def _online_copy(src: sqlite3.Connection, partial: Path) -> None:
    try:
        dst = sqlite3.connect(partial)
        try:
            # All pages in one step: one read transaction, so one snapshot. In steps, every
            # commit of the running bot would restart the copy.
            src.backup(dst)
            # The copy is one self-contained file (the bot turns WAL back on when it opens it).
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as error:  # the database busy for 30 s, the target's disk full...
        raise BackupError(f"the copy failed: {error}", code=1) from None


def _verify(partial: Path) -> str:
    """The copy opened afresh: SQLite's integrity check, then what it holds."""
    try:
        db = sqlite3.connect(f"{partial.resolve().as_uri()}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(f"the copy failed SQLite's integrity check: {problems[0]}", code=1)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            counts = [f"{db.execute(f'SELECT count(*) FROM {table}').fetchone()[0]} {what}"
                      for table, what in (("users", "users"), ("ledger", "ledger rows"),
                                          ("generations", "generations")) if table in tables]
        finally:
            db.close()
    except sqlite3.Error as error:
        raise BackupError(f"the copy cannot be read back: {error}", code=1) from None
    return ", ".join([f"schema version {version}", *counts, "integrity ok"])


def _link_into_place(partial: Path, target: Path) -> None:
    """`target` appears complete or not at all, and an existing file is never replaced (one
    created since the check above included): a hard link fails if the name is taken. Where
    hard links are not supported, a rename after one more check."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise BackupError(f"{target} already exists; give a new file name "
                          "(nothing is overwritten)") from None
    except OSError:  # a file system without hard links (FAT, some network mounts)
        pass
    else:
        return
    try:
        if target.exists():
            raise FileExistsError
        os.rename(partial, target)
    except FileExistsError:
        raise BackupError(f"{target} already exists; give a new file name "
                          "(nothing is overwritten)") from None
    except OSError as error:
        raise BackupError(f"{target} cannot be created: {error.strerror or error}", code=1) from None
