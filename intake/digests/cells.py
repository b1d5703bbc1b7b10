"""Export rows and formula-safe cells for the final digest's CSV and XLSX.

The same columns, rows and cell rule as `intake.export`: the layers contract keeps digests and
export independent siblings, so this module mirrors `export.COLUMNS`, `export.row_for` and
`export.safe_cell` (reading plain columns instead of ORM objects, which is several times faster
for a final digest), and tests/test_digest_export.py fails the moment the two disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from intake.store.models import AttachmentRecord, Message, OutboxMail, ThemeMatch

COLUMNS = (
    "id",
    "message_id",
    "received_at",
    "from",
    "from_name",
    "sender_role",
    "subject",
    "kind",
    "kind_reason",
    "themes",
    "language",
    "late",
    "duplicate_of",
    "thread_of",
    "text",
    "attachments",
    "ack",
)
# Cells a spreadsheet would run as a formula (OWASP "CSV injection"; PRIV-5).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_COLUMNS = (
    Message.id,
    Message.message_id,
    Message.received_at,
    Message.from_addr,
    Message.from_name,
    Message.sender_role,
    Message.subject,
    Message.kind,
    Message.kind_reasons,
    Message.language,
    Message.late,
    Message.duplicate_of_id,
    Message.thread_of_id,
    Message.text,
    Message.ack_status,
    Message.ack_reason,
)


def export_rows(
    session: Session, where: ColumnElement[bool], tz: ZoneInfo, batch: int = 500
) -> Iterator[dict[str, Any]]:
    """The export row of every message matching `where`, in id order, read as plain columns a
    batch at a time (no ORM objects: a final digest may hold tens of thousands)."""
    last = 0
    while True:
        rows = session.execute(
            select(*_COLUMNS).where(where, Message.id > last).order_by(Message.id).limit(batch)
        ).all()
        if not rows:
            return
        ids = [row.id for row in rows]
        themes = _grouped(
            session.execute(
                select(ThemeMatch.message_pk, ThemeMatch.theme)
                .where(ThemeMatch.message_pk.in_(ids))
                .order_by(ThemeMatch.message_pk, ThemeMatch.rank)
            )
        )
        files = _grouped(
            session.execute(
                select(AttachmentRecord.message_pk, AttachmentRecord.filename)
                .where(AttachmentRecord.message_pk.in_(ids))
                .order_by(AttachmentRecord.message_pk, AttachmentRecord.position)
            )
        )
        # Like Message.ack: the acknowledgement outbox mail of the message (the first one).
        acks = {
            ack.message_pk: ack
            for ack in session.execute(
                select(OutboxMail.message_pk, OutboxMail.status, OutboxMail.message_id)
                .add_columns(OutboxMail.sent_at)
                .where(OutboxMail.message_pk.in_(ids), OutboxMail.purpose == "ack")
                .order_by(OutboxMail.id.desc())
            )
        }
        linked = [pk for row in rows for pk in (row.duplicate_of_id, row.thread_of_id) if pk]
        links: dict[int, str] = {}
        if linked:
            for pk, message_id in session.execute(
                select(Message.id, Message.message_id).where(Message.id.in_(linked))
            ):
                links[pk] = message_id
        for row in rows:
            context = _Related(
                themes.get(row.id, []), files.get(row.id, []), acks.get(row.id), links
            )
            yield _row(row, tz, context)
        last = ids[-1]


def _grouped(rows: Iterable[Any]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for pk, value in rows:
        found.setdefault(pk, []).append(value)
    return found


@dataclass(frozen=True, slots=True)
class _Related:
    themes: list[str]
    files: list[str]
    ack: Any  # the acknowledgement's outbox columns, or None
    links: dict[int, str]  # stored id → Message-ID of linked messages


def _row(row: Any, tz: ZoneInfo, related: _Related) -> dict[str, Any]:
    """The same dict as `intake.export.row_for` gives for the message."""
    reason = row.kind_reasons[0] if row.kind_reasons else {}
    return {
        "id": row.id,
        "message_id": row.message_id,
        "received_at": row.received_at.astimezone(tz).isoformat(),
        "from": row.from_addr,
        "from_name": row.from_name,
        "sender_role": row.sender_role,
        "subject": row.subject,
        "kind": row.kind,
        "kind_reason": _reason_text(reason),
        "themes": related.themes,
        "language": row.language,
        "late": row.late,
        "duplicate_of": related.links.get(row.duplicate_of_id or 0),
        "thread_of": related.links.get(row.thread_of_id or 0),
        "text": row.text,
        "attachments": related.files,
        "ack": _ack_field(row, related.ack),
    }


def _ack_field(row: Any, ack: Any) -> dict[str, Any] | None:
    if row.ack_status is None:
        return None
    if row.ack_status == "suppressed" or ack is None:
        return {
            "status": row.ack_status,
            "reason": row.ack_reason,
            "message_id": None,
            "sent_at": None,
        }
    return {
        "status": "queued" if ack.status == "sending" else ack.status,
        "reason": row.ack_reason,
        "message_id": ack.message_id,
        "sent_at": ack.sent_at.isoformat() if ack.sent_at else None,
    }


def _reason_text(reason: dict[str, str]) -> str:
    if not reason:
        return ""
    text = reason.get("code", "")
    if reason.get("field"):
        text += f" in {reason['field']}"
    if reason.get("matched"):
        text += f": {reason['matched']}"
    return text


def safe_cell(value: Any) -> str:
    """A cell value as text that no spreadsheet runs as a formula."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "; ".join(str(item) for item in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text
