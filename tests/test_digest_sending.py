"""Recording and sending digests: each period once, even with two workers; a crash repeats
the identical mail only; empty periods; the outbox and a real SMTP server."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import undefer

from intake import outbox
from intake.cli import cli
from intake.config import Settings
from intake.digests import mark_sent_digests, preview_digest, send_due_digests
from intake.errors import ConfigError
from intake.store.db import open_database, session_factory
from intake.store.models import DigestRun, OutboxMail
from intake.store.outbox_rows import DIGEST
from intake.transports import OutgoingMail, open_transport
from tests.servers.smtp import RecordingSMTP
from tests.test_digest_fixtures import STAFF, engine, local, make_settings, parse, settings, store

__all__ = ["engine", "settings"]  # fixtures

DEADLINE = local(2019, 2, 6, 0, 0)


def runs(engine: Engine) -> list[DigestRun]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(DigestRun).order_by(DigestRun.id)))


def digest_mail(engine: Engine) -> list[OutboxMail]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(
                select(OutboxMail)
                .where(OutboxMail.purpose == DIGEST)
                .order_by(OutboxMail.id)
                .options(undefer(OutboxMail.data))
            )
        )


def test_a_due_daily_digest_is_recorded_and_queued_with_its_message_id(
    settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    assert send_due_digests(settings, engine, local(2019, 2, 5, 8, 1)) == ["daily 2019-02-05"]
    (run,) = runs(engine)
    (mail,) = digest_mail(engine)
    assert (run.kind, run.period_key, run.status) == ("daily", "2019-02-05", "queued")
    assert run.period_start is None
    assert run.period_end == local(2019, 2, 5, 8, 0)
    assert run.outbox_message_id == mail.message_id
    assert mail.recipients == list(STAFF)
    assert send_due_digests(settings, engine, local(2019, 2, 5, 9, 0)) == []


def test_the_final_digest_is_recorded_once_however_often_it_is_asked_for(
    settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 5, 10, 0))
    after = DEADLINE + timedelta(hours=30)  # the worker was down over the deadline
    assert send_due_digests(settings, engine, after) == ["final"]
    assert send_due_digests(settings, engine, after) == []
    assert send_due_digests(settings, engine, after + timedelta(minutes=5)) == []
    assert [run.kind for run in runs(engine)] == ["final"]
    assert len(digest_mail(engine)) == 1


def test_two_workers_racing_for_the_final_digest_record_it_once(
    settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 5, 10, 0))
    other = open_database(settings.database.url)
    start = threading.Barrier(2)
    results: list[list[str]] = []

    def worker(db: Engine) -> None:
        start.wait()
        results.append(send_due_digests(settings, db, DEADLINE + timedelta(minutes=1)))

    threads = [threading.Thread(target=worker, args=(db,)) for db in (engine, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    other.dispose()
    assert sorted(results) == [[], ["final"]]
    assert [run.kind for run in runs(engine)] == ["final"]
    assert len(digest_mail(engine)) == 1


def test_a_period_recorded_by_another_worker_is_skipped_without_building(
    settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    now = local(2019, 2, 5, 8, 0)
    # A second engine on the same database stands for a second process.
    other = open_database(settings.database.url)
    assert send_due_digests(settings, other, now) == ["daily 2019-02-05"]
    other.dispose()
    assert send_due_digests(settings, engine, now) == []
    assert len(runs(engine)) == 1


def test_a_crash_while_sending_repeats_the_identical_digest_only(
    tmp_path: Path, smtp: RecordingSMTP
) -> None:
    settings = make_settings(tmp_path)
    settings = settings.model_copy(
        update={"outgoing": smtp.outgoing(from_address="smartcity@maastricht.nl")}
    )
    engine = open_database(settings.database.url)
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    now = local(2019, 2, 5, 8, 0)
    assert send_due_digests(settings, engine, now) == ["daily 2019-02-05"]
    # The worker claims the mail and hands it to the server, then dies before recording it.
    row = outbox.claim_next(engine, now)
    assert row is not None
    transport = open_transport(settings.outgoing, "")
    transport.send(OutgoingMail(row.envelope_from, tuple(row.recipients), row.data, row.message_id))
    transport.close()
    # After the restart: nothing new is queued, and the outbox repeats the same bytes.
    later = now + outbox.LEASE + timedelta(minutes=1)
    assert send_due_digests(settings, engine, later) == []
    summary = outbox.deliver_due(settings, engine, clock=lambda: later)
    assert summary.sent == 1
    assert mark_sent_digests(engine) == 1
    first, second = smtp.messages
    assert first.data == second.data
    assert first["Message-ID"] == f"<{row.message_id}>"
    assert set(first.recipients) == set(STAFF)
    assert first["Auto-Submitted"] == "auto-generated"
    (run,) = runs(engine)
    assert run.status == "sent"
    assert run.sent_at is not None
    engine.dispose()


def test_mark_sent_follows_the_outbox_and_is_idempotent(settings: Settings, engine: Engine) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    now = local(2019, 2, 5, 8, 0)
    send_due_digests(settings, engine, now)
    assert mark_sent_digests(engine) == 0  # queued, not sent yet
    outbox.deliver_due(settings, engine, clock=lambda: now)
    assert mark_sent_digests(engine) == 1
    assert mark_sent_digests(engine) == 0
    (eml,) = Path(settings.outgoing.url.removeprefix("file:")).glob("*.eml")
    assert parse(eml.read_bytes())["Message-ID"] == f"<{runs(engine)[0].outbox_message_id}>"


def test_an_empty_day_sends_a_short_nothing_new_digest_when_asked(
    settings: Settings, engine: Engine
) -> None:
    assert send_due_digests(settings, engine, local(2019, 2, 5, 8, 0)) == ["daily 2019-02-05"]
    (mail,) = digest_mail(engine)
    assert "niets nieuws" in mail.subject


def test_an_empty_day_is_recorded_without_mail_otherwise(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, send_empty=False)
    engine = open_database(settings.database.url)
    assert send_due_digests(settings, engine, local(2019, 2, 4, 8, 0)) == []
    (run,) = runs(engine)
    assert (run.status, run.outbox_message_id) == ("recorded", None)
    assert digest_mail(engine) == []
    # The next digest starts where the empty one ended.
    store(engine, stored_at=local(2019, 2, 4, 9, 0))
    assert send_due_digests(settings, engine, local(2019, 2, 5, 8, 0)) == ["daily 2019-02-05"]
    assert runs(engine)[1].period_start == local(2019, 2, 4, 8, 0)
    engine.dispose()


def test_after_the_final_only_late_suggestions_make_a_daily_digest(
    settings: Settings, engine: Engine
) -> None:
    final_at = DEADLINE + timedelta(minutes=1)
    assert send_due_digests(settings, engine, final_at) == ["final"]
    store(engine, stored_at=local(2019, 2, 6, 9, 0), kind="auto_reply")
    assert send_due_digests(settings, engine, local(2019, 2, 7, 8, 0)) == []  # recorded, no mail
    store(engine, stored_at=local(2019, 2, 7, 9, 0), late=True)
    assert send_due_digests(settings, engine, local(2019, 2, 8, 8, 0)) == ["daily 2019-02-08"]
    spans = [(r.kind, r.period_start, r.period_end, r.status) for r in runs(engine)]
    assert spans == [
        ("final", None, final_at, "queued"),
        ("daily", final_at, local(2019, 2, 7, 8, 0), "recorded"),
        ("daily", local(2019, 2, 7, 8, 0), local(2019, 2, 8, 8, 0), "queued"),
    ]


def test_every_suggestion_is_in_exactly_one_daily_digest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, send_empty=False)
    engine = open_database(settings.database.url)
    stored = [local(2019, 1, 28, 7, 59), local(2019, 1, 28, 8, 0), local(2019, 1, 29, 23, 0)]
    stored += [local(2019, 1, 31, 8, 0) - timedelta(seconds=1), local(2019, 2, 1, 12, 0)]
    ids = [
        store(engine, stored_at=moment, subject=f"nummer {n}") for n, moment in enumerate(stored)
    ]
    for now in (local(2019, 1, 28, 8, 0), local(2019, 1, 30, 8, 5), local(2019, 2, 2, 8, 0)):
        send_due_digests(settings, engine, now)
    listed: list[int] = []
    for mail in digest_mail(engine):
        text = parse(mail.data).get_body(("plain",))
        assert text is not None
        listed += [i for i in ids if f"#{i}  nummer" in text.get_content()]
    assert sorted(listed) == ids
    engine.dispose()


def test_without_recipients_sending_is_a_config_error_but_preview_works(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, recipients=[])
    engine = open_database(settings.database.url)
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    with pytest.raises(ConfigError, match=r"digest\.recipients"):
        send_due_digests(settings, engine, local(2019, 2, 5, 8, 0))
    assert runs(engine) == []
    rendered = preview_digest(
        settings, engine, final=False, since=None, now=datetime.now().astimezone()
    )
    assert rendered.figures.listed == 1
    engine.dispose()


def test_preview_records_and_sends_nothing(settings: Settings, engine: Engine) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    since = local(2019, 2, 4, 0, 0)
    daily = preview_digest(settings, engine, final=False, since=since, now=local(2019, 2, 5, 8, 0))
    final = preview_digest(settings, engine, final=True, since=None, now=local(2019, 2, 9, 8, 0))
    assert (daily.final, final.final) == (False, True)
    assert runs(engine) == []
    assert digest_mail(engine) == []


def test_the_digest_command_previews_to_a_file_and_refuses_unclear_options(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    config = tmp_path / "intake.toml"
    config.write_text(
        f'[consultation]\nrules = "{settings.consultation.rules}"\n'
        f'templates = "{settings.consultation.templates}"\n'
        f'[database]\nurl = "{settings.database.url}"\n',
        encoding="utf-8",
    )
    target = tmp_path / "digest.html"
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "digest", "--preview", str(target)])
    assert result.exit_code == 0, result.output
    assert target.exists()
    assert (tmp_path / "digest.chart.png").exists()
    assert 'src="digest.chart.png"' in target.read_text(encoding="utf-8")
    assert runner.invoke(cli, ["--config", str(config), "digest"]).exit_code == 2
    sent = runner.invoke(cli, ["--config", str(config), "digest", "--send"])
    assert sent.exit_code == 2
    assert "digest.recipients" in sent.output


def test_intake_send_delivers_a_queued_digest_and_records_it_sent(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0))
    assert send_due_digests(settings, engine, local(2019, 2, 5, 8, 1)) == ["daily 2019-02-05"]
    env = {
        "INTAKE_DATABASE_URL": settings.database.url,
        "INTAKE_OUTGOING_URL": settings.outgoing.url,
        "INTAKE_OUTGOING_MAX_PER_MINUTE": "0",
    }
    result = CliRunner().invoke(cli, ["send"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = runs(engine)
    assert run.status == "sent"
    assert run.sent_at is not None
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
