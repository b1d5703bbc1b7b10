"""Storing a batch at once gives what storing message by message gives, on SQLite and on a real
PostgreSQL; a message the database rejects is stored quarantined with its bytes, the rest as
usual; a failing database is raised, with nothing quarantined for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import OperationalError

from intake import ingest
from intake.config import Settings
from intake.store.db import open_database, session_factory
from intake.store.models import Message, OutboxMail, SourceItem
from tests.pipeline_fixtures import (
    SettingsFactory,
    deliver,
    deliver_corpus,
    mail,
    make_settings,
    poll,
)
from tests.servers.postgres import postgres, postgres_database

__all__ = ["make_settings", "postgres", "postgres_database"]  # fixtures used below

JANUARY = datetime(2019, 1, 28, 10, 0, tzinfo=UTC)


def outcome(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """What was stored and decided, by raw digest; links as the digests they point at."""
    with session_factory(engine)() as session:
        rows = list(session.scalars(select(Message).order_by(Message.id)))
        sha_of = {m.id: m.sha256 for m in rows}
        acks = {
            a.message_pk: (a.recipients, a.subject)
            for a in session.scalars(select(OutboxMail).where(OutboxMail.purpose == "ack"))
        }
        keys = {s.message_pk: s.key for s in session.scalars(select(SourceItem))}
        return {
            m.sha256: (
                m.kind,
                m.primary_theme,
                [t.theme for t in m.themes],
                [a.filename for a in m.attachments],
                sha_of.get(m.thread_of_id or 0),
                sha_of.get(m.duplicate_of_id or 0),
                m.link_reason,
                m.ack_status,
                m.ack_reason,
                acks.get(m.id),
                keys.get(m.id) is not None,
                len(m.raw),
            )
            for m in rows
        }


def poll_corpus(settings: Settings, batch: int, monkeypatch: pytest.MonkeyPatch) -> Engine:
    deliver_corpus(settings)
    monkeypatch.setattr(ingest, "STORE_BATCH", batch)
    engine = open_database(settings.database.url)
    summary = poll(settings, engine, clock=lambda: JANUARY)
    assert summary.fetched == summary.stored + summary.known
    return engine


def test_a_batch_of_fifty_stores_what_one_at_a_time_stores(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The corpus has replies, resends and duplicates of messages in the same batch.
    one = poll_corpus(make_settings("one"), 1, monkeypatch)
    fifty = poll_corpus(make_settings("fifty"), 50, monkeypatch)
    expected = outcome(one)
    assert len(expected) > 100
    assert any(row[4] for row in expected.values()), "no reply was linked"
    assert any(row[5] for row in expected.values()), "no resend was linked"
    assert outcome(fifty) == expected
    one.dispose()
    fifty.dispose()


@pytest.mark.postgres
def test_postgresql_stores_the_corpus_as_sqlite_does(
    make_settings: SettingsFactory, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite = poll_corpus(make_settings("sqlite"), 50, monkeypatch)
    postgresql = poll_corpus(
        make_settings("pg", database={"url": postgres_database}), 50, monkeypatch
    )
    assert outcome(postgresql) == outcome(sqlite)
    sqlite.dispose()
    postgresql.dispose()


def refuse_subjects_with(engine: Engine, word: str) -> None:
    """A database that refuses some rows, as PostgreSQL refuses a NUL in text."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages "
                f"WHEN NEW.subject LIKE '%{word}%' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )


def test_a_message_the_database_refuses_is_quarantined_with_its_bytes_and_the_batch_stored(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    engine = open_database(settings.database.url)
    refuse_subjects_with(engine, "weiger")
    subjects = ["Parkeren", "Bomen", "Weigeren graag", "Fietsen", "Licht"]
    for n, subject in enumerate(subjects):
        deliver(settings, mail(subject=subject, sender=f"p{n}@example.nl"), JANUARY)
    summary = poll(settings, engine, clock=lambda: JANUARY)
    assert (summary.stored, summary.quarantined) == (5, 1)
    with session_factory(engine)() as session:
        stored = {m.subject: m for m in session.scalars(select(Message))}
        # What the parser read is what the database refused: only the bytes and why are kept.
        refused = stored.pop("")
        assert (refused.kind, refused.parse_error) == (
            "unparseable",
            "store failed: database: refused",
        )
        assert b"Subject: Weigeren graag" in refused.raw
        assert refused.ack_status == "suppressed"
        assert set(stored) == set(subjects) - {"Weigeren graag"}
        assert [m.ack_status for m in stored.values()] == ["queued"] * 4
    assert "storing a batch of 5 failed" in caplog.text
    assert "Weigeren" not in caplog.text  # the log names the message by its Message-ID only
    engine.dispose()


def test_a_failing_database_is_raised_and_quarantines_nothing(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    engine = open_database(settings.database.url)
    deliver(settings, mail(), JANUARY)

    @event.listens_for(engine, "before_cursor_execute")
    def disk_full(*args: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    with pytest.raises(OperationalError):
        poll(settings, engine, clock=lambda: JANUARY)
    event.remove(engine, "before_cursor_execute", disk_full)
    with session_factory(engine)() as session:
        assert list(session.scalars(select(Message))) == []
    assert poll(settings, engine, clock=lambda: JANUARY).stored == 1  # nothing was lost
    engine.dispose()


@pytest.mark.postgres
def test_a_nul_in_the_text_postgresql_cannot_hold_is_quarantined_with_its_bytes(
    make_settings: SettingsFactory, postgres_database: str, tmp_path: Path
) -> None:
    settings = make_settings(database={"url": postgres_database})
    engine = open_database(settings.database.url)
    body = "Beste gemeente,\n\nMeer bankjes in het park\x00 graag.\n\nGroet, Piet\n"
    deliver(settings, mail(subject="Bankjes", body=body, sender="piet@example.nl"), JANUARY)
    deliver(settings, mail(subject="Bomen", sender="anna@example.nl"), JANUARY)
    summary = poll(settings, engine, clock=lambda: JANUARY)
    assert summary.stored == 2
    with session_factory(engine)() as session:
        stored = {m.subject: m for m in session.scalars(select(Message))}
        assert stored["Bomen"].kind == "suggestion"
        assert b"park\x00 graag" in stored["Bankjes"].raw
    engine.dispose()
