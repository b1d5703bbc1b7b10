"""Engine and session factory; the schema is migrated to the newest version on first use."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import StoreError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE_OPTION = "intake_writes"


def open_database(url: str, *, migrate: bool = True) -> Engine:
    """An engine for `url`, with the schema at head (a fresh database is created and migrated)."""
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise StoreError(f"database.url is not a database URL: {exc}") from exc
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Another process (a CLI command beside the worker) may hold the write lock briefly.
        kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    if migrate:
        upgrade_to_head(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (status, export) run while the worker writes; foreign keys are off
    # by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLAlchemy emits BEGIN itself (see _sqlite_begin); the driver's own implicit
    # transactions would begin too late to choose the lock mode.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads and then writes cannot wait for the lock: SQLite
    # answers "database is locked" at once when another process wrote in between. Write
    # transactions therefore take the write lock up front and wait (busy_timeout) for it.
    writes = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Apply every migration not yet applied; a no-op on an up-to-date database."""
    config = alembic_config(engine)
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        log.info("migrating database from %s to %s", current or "empty", head)
        command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open or migrate the database: {exc}") from exc


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A write session: committed on success, rolled back on any exception.

    On SQLite it holds the write lock from its first statement, so that concurrent writers
    (the worker, a CLI command) queue for it instead of failing.
    """
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with session_factory(writer)() as session, session.begin():
        yield session


def describe_error(exc: BaseException) -> str:
    """One line for an error; a database error without its statement and parameters.

    str() of a SQLAlchemy error carries the SQL and its parameters: mail text (which never goes
    into the log), long and different every time, so the same busy database would never count
    as the same failure either.
    """
    if isinstance(exc, DBAPIError):
        return f"database: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"
