"""`python -m bot`: read the settings, run until SIGINT/SIGTERM.
`python -m bot backup <file>`: copy the database, safely while the bot runs.
`python -m bot migrate-to <url>`: copy the SQLite database into an empty PostgreSQL one."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from pathlib import Path

from pydantic import ValidationError

from bot.config import Settings, StoreSettings, describe_error, postgres_url_problem
from bot.errors import CatalogError, SettingRefused
from bot.logs import setup_logging
from bot.store.backup import BackupError, copy_database
from bot.store.lock import DatabaseInUse, DatabaseLock

USAGE = ("usage: python -m bot (runs the bot) | python -m bot backup FILE "
         "(copies the database at DATABASE_PATH into FILE) | python -m bot migrate-to URL "
         "(copies the database at DATABASE_PATH into the empty PostgreSQL database at URL)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return run()
    if args[0] in {"-h", "--help", "help"} and len(args) == 1:
        print(USAGE)
        return 0
    if args[0] == "backup" and len(args) == 2:
        return backup(Path(args[1]))
    if args[0] == "migrate-to" and len(args) == 2:
        return migrate(args[1])
    print(USAGE, file=sys.stderr)
    return 2


def run() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        return 2
    if settings.store.url is not None:
        return _run_on_postgres(settings)
    path = settings.store.path
    # First, before the slow imports and before anything touches the database or Telegram:
    # a second process on the same file would deliver every result twice and refund the
    # first one's in-flight creates, so it stops at once.
    lock = DatabaseLock(path)
    try:
        lock.acquire()
    except DatabaseInUse as error:
        print(f"Configuration error: DATABASE_PATH {path} is in use by another running bot "
              f"(pid {error.holder or '?'}); stop it first or give this one its own "
              "DATABASE_PATH", file=sys.stderr)
        return 2
    except OSError as error:  # what the validator could not foresee (a race, a full disk...)
        print(f"Configuration error: DATABASE_PATH {path} cannot be used: "
              f"{error.strerror or error}", file=sys.stderr)
        return 2
    try:  # held until the bot has stopped; the OS drops it if the process dies
        try:
            _check_database(path)
        except (OSError, sqlite3.Error) as error:
            print(f"Configuration error: DATABASE_PATH {path} cannot be used: {error}",
                  file=sys.stderr)
            return 2
        return _start(settings)
    finally:
        lock.release()


def _run_on_postgres(settings: Settings) -> int:
    """PostgreSQL: the database must answer before anything starts. Several processes may
    share it (README, "Several instances")."""
    import asyncpg  # noqa: PLC0415 -- only with DATABASE_URL

    from bot.store.postgres import check_postgres  # noqa: PLC0415

    assert settings.store.url is not None
    try:
        asyncio.run(check_postgres(settings.store.url.get_secret_value()))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        print(f"Configuration error: DATABASE_URL cannot be used: {error}", file=sys.stderr)
        return 2
    return _start(settings)


def _start(settings: Settings) -> int:
    try:
        _load_catalog(settings.catalog.path)
    except CatalogError as error:
        print(f"Catalog error: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.secrets(), logging.getLevelNamesMapping()[settings.bot.log_level])
    from bot.app import Application  # noqa: PLC0415 -- the slow imports, only after the checks

    try:
        app = Application(settings)
    except ValueError as error:  # a setting the app itself checks (DEFAULT_LANGUAGE)
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(app.run())
    except SettingRefused as error:  # Telegram or Kie.ai refused BOT_TOKEN or KIE_API_KEY
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    return 0


def _load_catalog(path: Path | None) -> None:
    """The catalog, checked before anything offers it: importing it reads the shipped file;
    CATALOG_PATH's takes its place."""
    from bot.catalog import load_catalog  # noqa: PLC0415 -- a slow import (aiogram's i18n)

    if path is not None:
        load_catalog(path)


def _check_database(path: Path) -> None:
    """An existing file must open as SQLite and take SQLite's write lock: otherwise (not a
    database, read-only...) one line here rather than a traceback from Store.open later.
    A missing file is left alone (the validator checked its folder): nothing is created."""
    if str(path) == ":memory:" or not path.exists():
        return
    db = sqlite3.connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("PRAGMA user_version").fetchone()
        db.rollback()
    finally:
        db.close()


# -- backup --------------------------------------------------------------------------------


def backup(target: Path) -> int:
    try:
        # Only the store's settings, read as Settings reads them: a backup needs no token or key.
        store = StoreSettings()
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        return 2
    if store.url is not None:
        print("Backup error: DATABASE_URL is set: back up PostgreSQL with its own tools "
              "(pg_dump); this command copies the SQLite file at DATABASE_PATH", file=sys.stderr)
        return 2
    source = store.path
    try:
        print(copy_database(source, target))
    except BackupError as error:
        print(f"Backup error: {error}", file=sys.stderr)
        return error.code
    return 0



# -- migrate-to ----------------------------------------------------------------------------


def migrate(url: str) -> int:
    import asyncpg  # noqa: PLC0415 -- only for this command

    from bot.store.transfer import TransferError, migrate_to  # noqa: PLC0415

    try:
        source = StoreSettings().path
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        return 2
    lock = DatabaseLock(source)
    try:
        if not source.is_file():
            raise TransferError(f"DATABASE_PATH {source} does not exist; nothing to copy")
        problem = postgres_url_problem(url)
        if problem:
            raise TransferError(f"the target URL (migrate-to's argument) {problem}")
        try:
            lock.acquire()  # the bot must not write to the file while it is copied
        except DatabaseInUse as error:
            raise TransferError(f"DATABASE_PATH {source} is in use by a running bot "
                                f"(pid {error.holder or '?'}); stop it first") from None
        print(asyncio.run(migrate_to(source, url)))
    except TransferError as error:
        print(f"Migration error: {error}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        print(f"Migration error: {error}; nothing was kept", file=sys.stderr)
        return 1
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
