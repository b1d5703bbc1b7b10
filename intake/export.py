"""Rows for JSON Lines and CSV exports of every stored message; spreadsheet-safe cells."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from intake.store import queries
from intake.store.db import session_factory
from intake.store.models import Message

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


def export_rows(engine: Engine, tz: ZoneInfo) -> Iterator[dict[str, Any]]:
    """One dict per stored message, in arrival order of storage; memory stays bounded."""
    with session_factory(engine)() as session:
        for message in queries.iter_messages(session):
            links = queries.message_ids_for(
                session, [message.duplicate_of_id or 0, message.thread_of_id or 0]
            )
            yield row_for(message, tz, links)


def row_for(message: Message, tz: ZoneInfo, link_ids: dict[int, str]) -> dict[str, Any]:
    reason = message.kind_reasons[0] if message.kind_reasons else {}
    return {
        "id": message.id,
        "message_id": message.message_id,
        "received_at": message.received_at.astimezone(tz).isoformat(),
        "from": message.from_addr,
        "from_name": message.from_name,
        "sender_role": message.sender_role,
        "subject": message.subject,
        "kind": message.kind,
        "kind_reason": _reason_text(reason),
        "themes": [t.theme for t in message.themes],
        "language": message.language,
        "late": message.late,
        "duplicate_of": link_ids.get(message.duplicate_of_id or 0),
        "thread_of": link_ids.get(message.thread_of_id or 0),
        "text": message.text,
        "attachments": [a.filename for a in message.attachments],
        "ack": ack_field(message),
    }


def ack_field(message: Message) -> dict[str, Any] | None:
    """The acknowledgement decision: `{status, reason, message_id, sent_at}`, or None before one."""
    if message.ack_status is None:
        return None
    row = message.ack
    if message.ack_status == "suppressed" or row is None:
        return {
            "status": message.ack_status,
            "reason": message.ack_reason,
            "message_id": None,
            "sent_at": None,
        }
    status = "queued" if row.status == "sending" else row.status
    return {
        "status": status,
        "reason": message.ack_reason,
        "message_id": row.message_id,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
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


def write_jsonl(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({key: safe_cell(value) for key, value in row.items()})
        count += 1
    return count


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
