"""Deliver the outbox: claim a queued mail, hand it to the transport, record the answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import undefer

from intake.config import Settings
from intake.errors import TransportError
from intake.store.db import session_factory, transaction
from intake.store.models import OutboxMail
from intake.store.outbox_rows import FAILED, QUEUED, SENDING, SENT
from intake.transports import OutgoingMail, Transport, open_transport

log = logging.getLogger(__name__)

# SMTP-5: 4xx is transient; retry after 1 min, 5 min, 30 min, then every 2 h, and give up
# a day after queueing (the sender has long since wondered).
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
GIVE_UP_AFTER = timedelta(hours=24)
# A row left `sending` by a crashed worker goes back to the queue after this lease. Sending it
# again repeats the identical message (same bytes, same Message-ID), never a different one.
LEASE = timedelta(minutes=10)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class DeliverySummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    # Why the round stopped early: the relay could not be reached (the rest waits for the next).
    unreachable: str = ""

    def __str__(self) -> str:
        text = f"sent {self.sent}, retrying {self.retrying}, failed {self.failed}"
        return f"{text}; stopped: {self.unreachable}" if self.unreachable else text


def release_stale(engine: Engine, now: datetime) -> int:
    """Return rows stuck in `sending` (a crash between send and record) to the queue."""
    with transaction(engine) as session:
        result = session.execute(
            update(OutboxMail)
            .where(OutboxMail.status == SENDING, OutboxMail.last_attempt_at < now - LEASE)
            .values(status=QUEUED, next_attempt_at=now)
        )
        count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("released %d outbox mail(s) left sending by an interrupted run", count)
    return count


def claim_next(engine: Engine, now: datetime) -> OutboxMail | None:
    """The next due mail, marked `sending` by a conditional UPDATE so no one else takes it."""
    while True:
        with transaction(engine) as session:
            row = session.scalars(
                select(OutboxMail)
                .where(OutboxMail.status == QUEUED, OutboxMail.next_attempt_at <= now)
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .options(undefer(OutboxMail.data))
                .limit(1)
            ).first()
            if row is None:
                return None
            claimed = session.execute(
                update(OutboxMail)
                .where(OutboxMail.id == row.id, OutboxMail.status == QUEUED)
                .values(status=SENDING, last_attempt_at=now, attempts=OutboxMail.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) == 1:
                session.expunge(row)
                row.attempts += 1
                return row
        # Another worker took it between the SELECT and the UPDATE: look for more work.


def deliver_one(engine: Engine, transport: Transport, clock: Clock = _utcnow) -> str | None:
    """Send one due mail and record the outcome (`sent`, `queued` again or `failed`); None when
    nothing was due. Raises TransportError, the mail queued again, when the connection failed."""
    now = clock()
    row = claim_next(engine, now)
    if row is None:
        return None
    mail = OutgoingMail(
        envelope_from=row.envelope_from,
        recipients=tuple(row.recipients),
        data=row.data,
        message_id=row.message_id,
    )
    try:
        answer = transport.send(mail)
    except TransportError as exc:
        status = _record_failure(engine, row, exc, clock())
        if exc.connection:
            raise  # the caller stops the round: the next mail would fail alike
        return status
    with transaction(engine) as session:
        session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == row.id)
            .values(status=SENT, sent_at=clock(), server_answer=answer[:2000], last_error=None)
        )
    log.info("sent <%s> purpose=%s attempt=%d", row.message_id, row.purpose, row.attempts)
    return SENT


def _record_failure(engine: Engine, row: OutboxMail, exc: TransportError, now: datetime) -> str:
    gave_up = now - row.created_at >= GIVE_UP_AFTER
    if exc.permanent or gave_up:
        values: dict[str, object] = {"status": FAILED, "last_error": str(exc)[:2000]}
        why = "permanent" if exc.permanent else f"gave up after {GIVE_UP_AFTER}"
        log.warning("outbox <%s> failed (%s): %s", row.message_id, why, exc)
    else:
        delay = BACKOFF[min(row.attempts, len(BACKOFF)) - 1]
        values = {"status": QUEUED, "next_attempt_at": now + delay, "last_error": str(exc)[:2000]}
        # A connection failure is reported once for the round (DeliverySummary.unreachable).
        level = logging.INFO if exc.connection else logging.WARNING
        log.log(level, "outbox <%s> will retry in %s: %s", row.message_id, delay, exc)
    with transaction(engine) as session:
        session.execute(update(OutboxMail).where(OutboxMail.id == row.id).values(**values))
    return str(values["status"])


def deliver_due(
    settings: Settings,
    engine: Engine,
    *,
    transport: Transport | None = None,
    clock: Clock = _utcnow,
    should_stop: Callable[[], bool] = lambda: False,
) -> DeliverySummary:
    """Send every mail that is due now; stops early when `should_stop()` turns true, or when the
    relay cannot be reached (`unreachable` says why; the rest stays queued, untried)."""
    summary = DeliverySummary()
    release_stale(engine, clock())
    if not _anything_due(engine, clock()):
        return summary
    own = transport is None
    transport = transport or open_transport(settings.outgoing, settings.outgoing_password)
    try:
        while not should_stop():
            try:
                outcome = deliver_one(engine, transport, clock)
            except TransportError as exc:
                summary.retrying += 1
                summary.unreachable = str(exc)
                break
            if outcome is None:
                break
            if outcome == SENT:
                summary.sent += 1
            elif outcome == FAILED:
                summary.failed += 1
            else:
                summary.retrying += 1
    finally:
        if own:
            transport.close()
    return summary


def _anything_due(engine: Engine, now: datetime) -> bool:
    with session_factory(engine)() as session:
        return (
            session.scalar(
                select(OutboxMail.id)
                .where(OutboxMail.status == QUEUED, OutboxMail.next_attempt_at <= now)
                .limit(1)
            )
            is not None
        )


def retry(engine: Engine, ids: list[int] | None, now: datetime) -> int:
    """Queue failed mail again: the given ids, or every failed one when `ids` is None."""
    with transaction(engine) as session:
        query = update(OutboxMail).where(OutboxMail.status == FAILED)
        if ids is not None:
            query = query.where(OutboxMail.id.in_(ids))
        result = session.execute(query.values(status=QUEUED, next_attempt_at=now, last_error=None))
        return int(getattr(result, "rowcount", 0) or 0)


def listing(engine: Engine, recent: int = 20) -> list[OutboxMail]:
    """Queued, sending and failed mail, then the most recent sent ones."""
    with session_factory(engine)() as session:
        pending = list(
            session.scalars(
                select(OutboxMail)
                .where(OutboxMail.status.in_([QUEUED, SENDING, FAILED]))
                .order_by(OutboxMail.id)
            )
        )
        done = list(
            session.scalars(
                select(OutboxMail)
                .where(OutboxMail.status.not_in([QUEUED, SENDING, FAILED]))
                .order_by(OutboxMail.id.desc())
                .limit(recent)
            )
        )
    return pending + done
