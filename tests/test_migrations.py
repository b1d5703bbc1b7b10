"""Alembic walks base → head → base → head, and the migrated schema is the models' schema,
on SQLite and (when installed) on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from intake.store.db import alembic_config, current_revision, open_database
from intake.store.models import Base
from tests.servers.postgres import postgres, postgres_database

__all__ = ["postgres", "postgres_database"]  # fixtures used by the tests below

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
def postgres_engine(postgres_database: str) -> Iterator[Engine]:
    """A fresh database on the session's PostgreSQL."""
    engine = open_database(postgres_database, migrate=False)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_migrations_walk_up_down_up_and_match_the_models(
    postgres_engine: Engine,
) -> None:
    walk_and_compare(postgres_engine)


def carry_raw_bytes_across_0005(engine: Engine) -> None:
    """Messages stored before 0005 keep their bytes in `raw_messages`, and get them back down."""
    config = alembic_config(engine)
    command.upgrade(config, "0004")
    data = b"Subject: oud\r\n\r\n" + bytes(range(256)) * 64  # binary, and past one page
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO messages (id, message_id, message_id_derived, sha256, body_sha256,"
                " raw, size, truncated, source, source_key, received_at, stored_at, from_addr,"
                ' from_name, to_addrs, cc_addrs, subject, "references", headers, language,'
                " text, quoted, signature, disclaimer, html_only, defects, kind, kind_reasons,"
                " late, sender_role, role_reason, ack_reason, link_reason) VALUES (7, 'm@x',"
                " false, :sha, :sha, :raw, 1, false, 'test', '1', :at, :at, '', '', '[]', '[]',"
                " '', '[]', '{}', '', '', '', '', '', false, '[]', 'suggestion', '[]', false,"
                " 'public', '', '', '')"
            ),
            {"sha": "0" * 64, "raw": data, "at": "2019-01-20 10:00:00+00:00"},
        )
    command.upgrade(config, "0005")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT message_pk, data FROM raw_messages")).all()
        assert [(pk, bytes(raw)) for pk, raw in rows] == [(7, data)]
        assert "raw" not in {c["name"] for c in inspect(connection).get_columns("messages")}
    command.downgrade(config, "0004")
    with engine.connect() as connection:
        assert bytes(connection.execute(text("SELECT raw FROM messages")).scalar_one()) == data


def test_sqlite_migration_0005_moves_raw_bytes_to_their_own_table(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'carry.db'}", migrate=False)
    carry_raw_bytes_across_0005(engine)
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_migration_0005_moves_raw_bytes_to_their_own_table(
    postgres_engine: Engine,
) -> None:
    carry_raw_bytes_across_0005(postgres_engine)
