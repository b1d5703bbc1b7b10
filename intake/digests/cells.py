"""Export rows and formula-safe cells for the final digest's CSV and XLSX.

The same columns and the same cell rule as `intake.export`: the layers contract keeps digests
and export independent siblings, so this module mirrors `export.COLUMNS`, `export.row_for` and
`export.safe_cell`, and tests/test_digest_export.py fails the moment the two disagree.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

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


def row_for(message: Message, tz: ZoneInfo, link_ids: dict[int, str]) -> dict[str, Any]:
    """The export row of a stored message (themes, attachments and ack loaded)."""
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
        "ack": _ack_field(message),
    }


def _ack_field(message: Message) -> dict[str, Any] | None:
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
