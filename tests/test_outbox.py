"""The outbox delivers each queued mail once, retries temporary failures and records the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from intake import outbox
from intake.config import Settings
from intake.store.db import open_database, session_factory, transaction
from intake.store.models import OutboxMail
from intake.store.outbox_rows import ACK, queue_mail
from intake.transports import OutgoingMail, open_transport
from tests.servers.smtp import RecordingSMTP

T0 = datetime(2019, 1, 28, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_database(f"sqlite:///{tmp_path / 'intake.db'}")


def queue_one(engine: Engine, to: str = "jan@example.nl", now: datetime = T0) -> str:
    mid = make_msgid(domain="example.org")[1:-1]
    message = EmailMessage()
    message["From"] = "inspraak@example.org"
    message["To"] = to
    message["Subject"] = "Ontvangstbevestiging"
    message["Message-ID"] = f"<{mid}>"
    message.set_content("Dank u wel.")
    with transaction(engine) as session:
        queue_mail(
            session,
            purpose=ACK,
            message_id=mid,
            envelope_from="inspraak@example.org",
            recipients=[to],
            subject="Ontvangstbevestiging",
            data=message.as_bytes(),
            now=now,
        )
    return mid


def row(engine: Engine, mid: str) -> OutboxMail:
    with session_factory(engine)() as session:
        found = session.scalars(select(OutboxMail).where(OutboxMail.message_id == mid)).one()
        session.expunge(found)
        return found


def settings_for(smtp: RecordingSMTP) -> Settings:
    return Settings(outgoing=smtp.outgoing())


def test_queued_mail_is_sent_once_with_its_fixed_message_id(
    engine: Engine, smtp: RecordingSMTP
) -> None:
    mid = queue_one(engine)
    clock = Clock(T0)
    summary = outbox.deliver_due(settings_for(smtp), engine, clock=clock)
    assert summary.sent == 1
    assert [m["Message-ID"] for m in smtp.messages] == [f"<{mid}>"]
    assert smtp.messages[0].recipients == ("jan@example.nl",)
    sent = row(engine, mid)
    assert sent.status == "sent"
    assert sent.sent_at == T0
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).sent == 0
    assert len(smtp.messages) == 1


def test_temporary_failure_is_retried_with_growing_back_off(
    engine: Engine, smtp: RecordingSMTP
) -> None:
    mid = queue_one(engine)
    clock = Clock(T0)
    smtp.fail_next("RCPT", 451, times=2)
    settings = settings_for(smtp)
    assert outbox.deliver_due(settings, engine, clock=clock).retrying == 1
    first = row(engine, mid)
    assert first.status == "queued"
    assert first.next_attempt_at == T0 + timedelta(minutes=1)
    assert "451" in (first.last_error or "")
    # Not due yet: nothing is sent.
    assert outbox.deliver_due(settings, engine, clock=clock).retrying == 0
    clock.now = T0 + timedelta(minutes=1)
    outbox.deliver_due(settings, engine, clock=clock)
    assert row(engine, mid).next_attempt_at == clock.now + timedelta(minutes=5)
    clock.now += timedelta(minutes=5)
    assert outbox.deliver_due(settings, engine, clock=clock).sent == 1
    assert row(engine, mid).attempts == 3
    assert len(smtp.messages) == 1


def test_permanent_failure_is_recorded_with_the_answer_and_not_retried(
    engine: Engine, smtp: RecordingSMTP
) -> None:
    mid = queue_one(engine)
    smtp.fail_next("RCPT", 550)
    clock = Clock(T0)
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).failed == 1
    failed = row(engine, mid)
    assert failed.status == "failed"
    assert "550" in (failed.last_error or "")
    clock.now = T0 + timedelta(days=1)
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).sent == 0
    assert smtp.messages == []


def test_server_down_then_up_delivers_after_the_back_off(
    engine: Engine, smtp: RecordingSMTP
) -> None:
    mid = queue_one(engine)
    clock = Clock(T0)
    smtp.refuse_connections()
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).retrying == 1
    smtp.accept_connections()
    clock.now = T0 + timedelta(minutes=2)
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).sent == 1
    assert row(engine, mid).status == "sent"


def test_temporary_failures_give_up_after_a_day(engine: Engine, smtp: RecordingSMTP) -> None:
    mid = queue_one(engine)
    smtp.fail_next("MAIL", 451, times=1)
    clock = Clock(T0 + timedelta(hours=25))
    outbox.deliver_due(settings_for(smtp), engine, clock=clock)
    gave_up = row(engine, mid)
    assert gave_up.status == "failed"


def test_crash_between_send_and_record_repeats_the_identical_message(
    engine: Engine, smtp: RecordingSMTP
) -> None:
    mid = queue_one(engine)
    clock = Clock(T0)
    claimed = outbox.claim_next(engine, clock.now)
    assert claimed is not None
    with open_transport(smtp.outgoing()) as transport:
        transport.send(
            OutgoingMail(claimed.envelope_from, tuple(claimed.recipients), claimed.data, mid)
        )
    # The worker died here: the row is still `sending`. After the lease it is sent again.
    clock.now = T0 + outbox.LEASE + timedelta(seconds=1)
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).sent == 1
    assert smtp.messages[0].data == smtp.messages[1].data
    assert {m["Message-ID"] for m in smtp.messages} == {f"<{mid}>"}


def test_retry_requeues_failed_mail(engine: Engine, smtp: RecordingSMTP) -> None:
    mid = queue_one(engine)
    smtp.fail_next("RCPT", 550)
    clock = Clock(T0)
    outbox.deliver_due(settings_for(smtp), engine, clock=clock)
    assert outbox.retry(engine, None, clock.now) == 1
    assert outbox.deliver_due(settings_for(smtp), engine, clock=clock).sent == 1
    assert row(engine, mid).status == "sent"
