"""Human-readable accounts of a message and of the decisions about it, for `show` and `explain`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from intake.store.models import Message
from intake.triage.verdict import Verdict


def explain_verdict(verdict: Verdict) -> list[str]:
    """Lines naming the kind and every theme with its rules, matched words and fields."""
    lines = [f"kind: {verdict.kind}"]
    for n, reason in enumerate(verdict.kind_reasons):
        lines.append(f"  {'because' if n == 0 else 'also'}: {reason}")
    if not verdict.kind_reasons:
        lines.append("  because: no automatic-mail signal in headers or subject")
    lines.append(
        f"role: {verdict.role}" + (f" ({verdict.role_reason})" if verdict.role_reason else "")
    )
    lines.append(f"late: {'yes' if verdict.late else 'no'}")
    if not verdict.themes:
        lines.append("themes: none (only suggestions get themes)")
    for rank, theme in enumerate(verdict.themes):
        label = "primary" if rank == 0 else "also"
        lines.append(f"theme {theme.theme} ({label}, score {theme.score:g})")
        if not theme.matches:
            lines.append("  no rule matched")
        for match in theme.matches:
            lines.append(
                f"  rule {match.rule} (weight {match.weight:g}) matched "
                f"{match.matched!r} in {match.field}"
            )
    return lines


def describe_message(message: Message, tz: ZoneInfo, link_ids: dict[int, str]) -> list[str]:
    """Every stored field of one message, headers first, then decisions, then the texts."""
    lines = [
        f"id:           {message.id}",
        f"Message-ID:   <{message.message_id}>"
        + (" (derived: the message had none)" if message.message_id_derived else ""),
        f"From:         {_addr(message.from_name, message.from_addr)}",
        f"Return-Path:  {_return_path(message.return_path)}",
        f"To:           {', '.join(message.to_addrs)}",
    ]
    if message.cc_addrs:
        lines.append(f"Cc:           {', '.join(message.cc_addrs)}")
    lines += [
        f"Subject:      {message.subject}",
        f"Date:         {_when(message.date_header, tz)} (the sender's claim)",
        f"Received:     {message.received_at.astimezone(tz).isoformat()} ({message.source})",
        f"Size:         {message.size} bytes"
        + (" (over the limit: headers only)" if message.truncated else ""),
        f"Language:     {message.language or '-'}",
        "",
        f"kind:         {message.kind}",
    ]
    for n, reason in enumerate(message.kind_reasons):
        label = "because" if n == 0 else "also"
        lines.append(f"  {label}: {_reason(reason)}")
    lines.append(f"role:         {message.sender_role} {message.role_reason}".rstrip())
    lines.append(f"late:         {'yes' if message.late else 'no'}")
    lines.append(f"ack:          {_ack(message)}")
    if message.duplicate_of_id:
        lines.append(f"resend of:    <{link_ids.get(message.duplicate_of_id, '?')}>")
    if message.thread_of_id:
        lines.append(f"reply to:     <{link_ids.get(message.thread_of_id, '?')}>")
    if message.link_reason:
        lines.append(f"  links:      {message.link_reason}")
    for theme in message.themes:
        label = "primary" if theme.rank == 0 else "also"
        lines.append(f"theme:        {theme.theme} ({label}, score {theme.score:g})")
        for match in theme.matches:
            lines.append(f"  rule {match['rule']} matched {match['matched']!r} in {match['field']}")
    if message.parse_error:
        lines.append(f"error:        {message.parse_error}")
    if message.defects:
        lines.append(f"defects:      {', '.join(message.defects)}")
    for attachment in message.attachments:
        lines.append(
            f"attachment:   {attachment.filename} "
            f"({attachment.content_type}, {attachment.size} bytes)"
        )
    if message.forwarded_from:
        lines.append(
            f"forwarded from: {_addr(message.forwarded_from_name or '', message.forwarded_from)}"
        )
    lines += ["", "--- text ---", message.text or "(empty)"]
    for title, body in (
        ("quoted", message.quoted),
        ("signature", message.signature),
        ("disclaimer", message.disclaimer),
    ):
        if body:
            lines += ["", f"--- {title} ---", body]
    return lines


def _ack(message: Message) -> str:
    if message.ack_status is None:
        return "-"
    row = message.ack
    if row is None:
        return f"{message.ack_status} ({message.ack_reason})"
    sent = f" at {row.sent_at.isoformat()}" if row.sent_at else ""
    error = f"; {row.last_error}" if row.last_error else ""
    return f"{row.status}{sent} <{row.message_id}> to {', '.join(row.recipients)}{error}"


def _when(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).isoformat() if value else "-"


def _addr(name: str, addr: str) -> str:
    return f"{name} <{addr}>" if name else addr or "-"


def _return_path(value: str | None) -> str:
    if value is None:
        return "(none stamped on delivery)"
    return f"<{value}>"


def _reason(reason: dict[str, str]) -> str:
    text = reason.get("code", "")
    if reason.get("field"):
        text += f" in {reason['field']}"
    if reason.get("matched"):
        text += f": {reason['matched']}"
    return text


def table(rows: Iterable[tuple[str, object]]) -> list[str]:
    rows = list(rows)
    width = max((len(label) for label, _ in rows), default=0)
    return [f"  {label.ljust(width)}  {value}" for label, value in rows]
