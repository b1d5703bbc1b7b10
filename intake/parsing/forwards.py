"""Inline and message/rfc822 forwards → original author and text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from intake.parsing.body import extract_body
from intake.parsing.headers import (
    address_header_map,
    addresses_from_values,
    decode_value,
    raw_header_items,
)
from intake.parsing.parsed import Address
from intake.parsing.quotes import is_outlook_block

# Markers that always introduce a forward, whatever the subject: Gmail ("---------- Forwarded
# message ---------"), Apple Mail ("Begin forwarded message:" / "Begin doorgestuurd bericht:"),
# Outlook nl/en ("-----Doorgestuurd bericht-----"), Lotus Notes ("----- Forwarded by … -----").
_MARKER = re.compile(
    r"^\s*(?:-{3,}\s*(?:forwarded message|doorgestuurd bericht|doorgestuurde e-?mail|"
    r"forwarded by\b[^\n]*|weitergeleitete nachricht|message transféré)\s*-{3,}"
    r"|(?:begin forwarded message|begin doorgestuurd bericht|doorgestuurd bericht|"
    r"forwarded message)\s*:)\s*$",
    re.IGNORECASE,
)
# After a forward subject, Outlook's reply separators introduce the forwarded mail too.
_FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:fw|fwd|doorst|wg|tr)\s*:\s*)+", re.IGNORECASE)
_OUTLOOK_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:oorspronkelijk bericht|origineel bericht|original message)\s*-{2,}"
    r"|_{8,})\s*$",
    re.IGNORECASE,
)
_HEADER_LINE = re.compile(
    r"^\s*\*?(van|from|datum|date|verzonden|sent|onderwerp|subject|aan|to|cc|bcc|"
    r"reply-to|antwoord aan)\s*:\*?\s*(.*)$",
    re.IGNORECASE,
)
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.IGNORECASE)
_BARE_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_HEADER_SCAN_LIMIT = 12  # lines of "Van:/Datum:/…" after a marker; more means it is prose


@dataclass(frozen=True, slots=True)
class Forward:
    note: str  # what the forwarder wrote above the forwarded message
    text: str  # the forwarded message's own body
    header: str  # the forwarded message's header lines as shown ("Van: …", "Onderwerp: …")
    author: Address | None


def is_forward_subject(subject: str) -> bool:
    """True for "Fw:", "Fwd:", "Doorst:" (Outlook nl) and "WG:" subjects."""
    return bool(_FORWARD_SUBJECT.match(subject))


def find_inline_forward(text: str, subject: str) -> Forward | None:
    """The forward written into the body text, if there is one."""
    lines = text.split("\n")
    forward_subject = is_forward_subject(subject)
    for index, line in enumerate(lines):
        if _MARKER.match(line):
            return _forward_at(lines, index, index + 1)
        if forward_subject and (_OUTLOOK_SEPARATOR.match(line)):
            start = _next_non_blank(lines, index + 1)
            if start is not None and _HEADER_LINE.match(lines[start]):
                return _forward_at(lines, index, start)
        if forward_subject and is_outlook_block(lines, index):
            return _forward_at(lines, index, index)
    return None


def forward_from_message(note: str, inner: Message) -> Forward:
    """The forward carried as an attached message/rfc822 part."""
    names = ("from", "date", "subject", "to")
    shown = [f"{n.title()}: {decode_value(str(inner.get(n, '')))}" for n in names if inner.get(n)]
    # Split before decoding, as for the mail's own From: an encoded word that hides "<a@b>"
    # is part of a display name, never the author's address.
    from_values = address_header_map(raw_header_items(inner)).get("from", ())
    authors = addresses_from_values(from_values)
    return Forward(
        note=note,
        text=extract_body(inner).text,
        header="\n".join(shown),
        author=authors[0] if authors else None,
    )


def _next_non_blank(lines: list[str], index: int) -> int | None:
    for position in range(index, min(len(lines), index + 3)):
        if lines[position].strip():
            return position
    return None


def _forward_at(lines: list[str], marker: int, first: int) -> Forward:
    start = _next_non_blank(lines, first)
    fields: dict[str, str] = {}
    position = first if start is None else start
    while position < len(lines) and position - first < _HEADER_SCAN_LIMIT:
        match = _HEADER_LINE.match(lines[position])
        if not match:
            break
        fields.setdefault(match.group(1).lower(), match.group(2).strip())
        position += 1
    return Forward(
        note="\n".join(lines[:marker]).strip(),
        text="\n".join(lines[position:]).strip(),
        header="\n".join(lines[marker:position]).strip(),
        author=_author(fields.get("van") or fields.get("from") or ""),
    )


def _author(value: str) -> Address | None:
    """The address in a shown "Van:" value (Outlook writes "Naam [mailto:adres]")."""
    value = _MAILTO.sub(r"<\1>", value)
    for address in addresses_from_values([value]):
        if "@" in address.addr:
            return address
    bare = _BARE_ADDRESS.search(value)
    if bare is None:
        return None
    name = value[: bare.start()].strip(" <>\"'")
    return Address(addr=bare.group(0), name=name)
