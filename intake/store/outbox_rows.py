"""Outbox rows: queue a rendered mail, count acknowledgements for the limits, find our own mail."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from intake.store.models import OutboxMail

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


def our_message_ids_in(data: bytes, domain: str, limit: int = 262_144) -> list[str]:
    """Message-IDs on our domain anywhere in a message: a bounce quotes the acknowledgement
    it returns as message/rfc822 or text/rfc822-headers (DET-6), not always in its headers."""
    if not domain:
        return []
    pattern = re.compile(
        rb"<([^<>\s@]{1,200}@" + re.escape(domain.encode()) + rb")>", re.IGNORECASE
    )
    return sorted({m.decode("ascii", "replace") for m in pattern.findall(data[:limit])})


def since(now: datetime, hours: int) -> datetime:
    return now - timedelta(hours=hours)
