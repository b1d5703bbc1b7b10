"""Outbox rows: queue a rendered mail, count acknowledgements for the limits, find our own mail."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.store.models import Message, OutboxMail

QUEUED, SENDING, SENT, FAILED, BOUNCED = "queued", "sending", "sent", "failed", "bounced"
ACK, DIGEST = "ack", "digest"


def queue_mail(
    session: Session,
    *,
    purpose: str,
    message_id: str,
    envelope_from: str,
    recipients: Iterable[str],
    subject: str,
    data: bytes,
    now: datetime,
    message_pk: int | None = None,
    thread_root_pk: int | None = None,
) -> OutboxMail:
    """Add a mail to the outbox in the caller's transaction; delivery is a separate step."""
    recipients = list(recipients)
    row = OutboxMail(
        purpose=purpose,
        message_id=message_id,
        envelope_from=envelope_from,
        recipients=recipients,
        subject=subject,
        data=data,
        message_pk=message_pk,
        recipient_key=recipients[0].lower() if recipients else "",
        thread_root_pk=thread_root_pk,
        status=QUEUED,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    return row


def acks_to_recipient_since(session: Session, recipient: str, since: datetime) -> int:
    """Acknowledgements queued for this address since `since` (failed ones count too: they
    were attempts at the same person)."""
    return int(
        session.scalar(
            select(func.count()).where(
                # coalesce() keeps SQLite (no statistics) off the purpose index, which matches
                # every acknowledgement: the recipient's index finds a handful (issue 6).
                func.coalesce(OutboxMail.purpose, "") == ACK,
                OutboxMail.recipient_key == recipient.lower(),
                OutboxMail.created_at >= since,
            )
        )
        or 0
    )


def acks_in_thread(session: Session, root_pk: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                OutboxMail.purpose == ACK, OutboxMail.thread_root_pk == root_pk
            )
        )
        or 0
    )


def acks_by_message_id(session: Session, message_ids: Iterable[str]) -> dict[str, OutboxMail]:
    """Our own acknowledgements among these Message-IDs (replies and bounces refer to them)."""
    ids = [mid for mid in message_ids if mid]
    if not ids:
        return {}
    rows = session.scalars(
        select(OutboxMail).where(OutboxMail.message_id.in_(ids), OutboxMail.purpose == ACK)
    )
    return {row.message_id: row for row in rows}


def our_message_ids_in(data: bytes, domain: str, limit: int = 262_144) -> list[str]:
    """Message-IDs on our domain anywhere in a message: a bounce quotes the acknowledgement
    it returns as message/rfc822 or text/rfc822-headers (DET-6), not always in its headers."""
    if not domain:
        return []
    pattern = re.compile(
        rb"<([^<>\s@]{1,200}@" + re.escape(domain.encode()) + rb")>", re.IGNORECASE
    )
    return sorted({m.decode("ascii", "replace") for m in pattern.findall(data[:limit])})


def thread_root(session: Session, message: Message) -> int:
    """The first message of the thread `message` belongs to (itself when it starts one)."""
    seen = {message.id}
    current = message
    while current.thread_of_id is not None and current.thread_of_id not in seen:
        parent = session.get(Message, current.thread_of_id)
        if parent is None:
            break
        seen.add(parent.id)
        current = parent
    return current.id


def since(now: datetime, hours: int) -> datetime:
    return now - timedelta(hours=hours)
