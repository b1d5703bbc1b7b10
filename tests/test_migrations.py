"""Alembic walks base → head → base → head, and the migrated schema is the models' schema,
on SQLite and (when installed) on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from intake.store.db import alembic_config, current_revision, open_database
from intake.store.models import Base
from tests.servers.postgres import Postgres, postgres

__all__ = ["postgres"]  # the session's PostgreSQL, for the tests below

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def walk_and_compare(engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "head")
    assert current_revision(engine) == HEAD
    command.downgrade(config, "base")
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert current_revision(engine) == HEAD
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_sqlite_migrations_walk_up_down_up_and_match_the_models(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'walk.db'}", migrate=False)
    walk_and_compare(engine)
    engine.dispose()


def test_opening_a_fresh_database_migrates_it_to_head(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(engine) == HEAD
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres: Postgres) -> Iterator[Engine]:
    """A fresh database on the session's PostgreSQL."""
    name = f"walk_{uuid4().hex[:12]}"
    admin = create_engine(
        postgres.url.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = open_database(postgres.url.rsplit("/", 1)[0] + f"/{name}", migrate=False)
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}"'))
    admin.dispose()


@pytest.mark.postgres
def test_postgresql_migrations_walk_up_down_up_and_match_the_models(
    postgres_engine: Engine,
) -> None:
    walk_and_compare(postgres_engine)
