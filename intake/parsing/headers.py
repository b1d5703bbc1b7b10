"""Addresses, Message-ID (derived if missing), dates, RFC 2047 — read from a compat32 message."""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from intake.parsing.charsets import decode_text, unsurrogate
from intake.parsing.parsed import Address

_FOLD = re.compile(r"\r?\n(?=[ \t])|\r(?=[ \t])")
# RFC 2047 forbids blanks inside an encoded word; real mail has them (and "?" inside Q text is
# always the end), so the text part here is anything up to the first "?=".
_LENIENT_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?((?:(?!=\?[^?\s]+\?[bBqQ]\?).){0,2000}?)\?=")
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
# The domain of derived ids: RFC 6761 reserves .invalid, so a derived id never collides with a
# real one and is recognisable in exports.
DERIVED_DOMAIN = "intake.invalid"
# Headers whose values identify a message for deriving a Message-ID. Received and other
# delivery headers are left out so that the same mail delivered twice gets the same id.
_IDENTITY_HEADERS = ("from", "to", "cc", "date", "subject")


def raw_header_items(msg: Message) -> list[tuple[str, str]]:
    """Every header as (name, raw value) in order, 8-bit bytes kept as surrogates."""
    items: list[tuple[str, str]] = []
    # compat32 stores raw values; raw_items() avoids the Header objects get() builds for 8-bit.
    for name, value in msg.raw_items():
        items.append((str(name), value if isinstance(value, str) else str(value)))
    return items


def decode_value(raw: str, hint: str | None = None) -> str:
    """A header value unfolded, with RFC 2047 encoded words and raw 8-bit bytes decoded.

    `hint` is the message's charset, the best guess for raw 8-bit bytes that are not UTF-8.
    """
    value = unsurrogate(_FOLD.sub("", raw), hint)
    return decode_words(value).strip()


def decode_words(value: str) -> str:
    """`value` with RFC 2047 encoded words decoded; undecodable words are left as written.

    Lenient where senders are: encoded words with spaces inside (zammad mail050, mail077),
    charset names with an RFC 2231 language (`utf-8*nl`), missing base64 padding. The blanks
    between two adjacent encoded words are dropped (RFC 2047 §6.2).
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    position = 0
    last_word_end = -1
    for match in _LENIENT_WORD.finditer(value):
        decoded = _decode_word(match.group(1), match.group(2), match.group(3))
        if decoded is None:
            continue
        gap = value[position : match.start()]
        if gap.strip() or last_word_end != position:
            out.append(gap)
        out.append(decoded)
        position = last_word_end = match.end()
    out.append(value[position:])
    return "".join(out)


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    charset = charset.partition("*")[0]
    try:
        if encoding.lower() == "q":
            data = quopri.decodestring(
                text.replace("_", " ").encode("ascii", "replace"), header=True
            )
        else:
            compact = "".join(text.split())
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None
    return decode_text(data, charset)[0]


def header_map(
    items: Iterable[tuple[str, str]], hint: str | None = None
) -> dict[str, tuple[str, ...]]:
    """Lower-cased header name → every decoded value, in message order."""
    collected: dict[str, list[str]] = {}
    for name, raw in items:
        collected.setdefault(name.strip().lower(), []).append(decode_value(raw, hint))
    return {name: tuple(values) for name, values in collected.items()}


# Headers that hold addresses: read from their raw values, see `address_header_map`.
ADDRESS_HEADERS = ("from", "sender", "to", "cc", "reply-to")


def address_header_map(
    items: Iterable[tuple[str, str]], hint: str | None = None
) -> dict[str, tuple[str, ...]]:
    """Lower-cased address header name → every value unfolded, encoded words still encoded.

    RFC 2047 §5: an encoded word is never address syntax, so the addresses are split before
    display names are decoded; decoded first, "=?utf-8?q?Anna=0D=0ABcc:_x@evil.example?="
    in front of Anna's address would make x@evil.example the sender.
    """
    collected: dict[str, list[str]] = {}
    for name, raw in items:
        key = name.strip().lower()
        if key in ADDRESS_HEADERS:
            collected.setdefault(key, []).append(unsurrogate(_FOLD.sub("", raw), hint).strip())
    return {name: tuple(values) for name, values in collected.items()}


def to_addresses(pairs: Iterable[tuple[str, str]]) -> tuple[Address, ...]:
    """Address values from (name, addr) pairs; names decoded, empty addresses dropped."""
    out: list[Address] = []
    for name, addr in pairs:
        clean = unsurrogate(addr).strip().strip("<>").strip()
        if not clean:
            continue
        # Some clients put encoded words inside quotes, which RFC 2047 §5 forbids and mail-parser
        # leaves as written; decode them anyway.
        display = decode_words(unsurrogate(name)).strip().strip('"').strip()
        out.append(Address(addr=clean, name="" if display == clean else display))
    return tuple(out)


def addresses_from_values(values: Iterable[str]) -> tuple[Address, ...]:
    """Addresses from header values (from `address_header_map`, when mail-parser found none).

    Encoded words are quoted before the split: one that hides ":" or "@" (which RFC 2047 §5
    forbids there) is still one display name, not a group or another address.
    """
    try:
        return to_addresses(getaddresses([_LENIENT_WORD.sub(_quoted, v) for v in values]))
    except (ValueError, IndexError, TypeError):
        return ()


def _quoted(word: re.Match[str]) -> str:
    return '"' + word.group(0).replace("\\", "\\\\").replace('"', '\\"') + '"'


def first_id(value: str) -> str | None:
    """The first message id in `value` without angle brackets (None when there is none)."""
    match = _ANGLE_ID.search(value)
    if match:
        return match.group(1).strip() or None
    # Some senders omit the brackets; take the first word.
    words = value.strip().strip("<>").split()
    return words[0] if words else None


def all_ids(value: str) -> tuple[str, ...]:
    """Every message id in References / In-Reply-To, in order, without brackets."""
    found = _ANGLE_ID.findall(value)
    if found:
        return tuple(found)
    return tuple(word.strip("<>,") for word in value.split() if "@" in word)


def derive_message_id(headers: Mapping[str, tuple[str, ...]], data: bytes) -> str:
    """A stable id for a message without Message-ID: sha256 of identity headers and body."""
    digest = hashlib.sha256()
    for name in _IDENTITY_HEADERS:
        for value in headers.get(name, ()):
            digest.update(f"{name}:{' '.join(value.split())}\n".encode("utf-8", "replace"))
    digest.update(_body_bytes(data))
    return f"derived-{digest.hexdigest()[:32]}@{DERIVED_DOMAIN}"


def _body_bytes(data: bytes) -> bytes:
    # Bare CR line ends (old Mac mail, some web forms) too: the stdlib parser reads them, and
    # without the body two such mails from one sender with one subject would share an id.
    for separator in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        _head, found, body = data.partition(separator)
        if found:
            return body
    return b""


def parse_date(value: str) -> datetime | None:
    """The Date header as an aware datetime (UTC when the zone is missing or -0000)."""
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        # RFC 5322 §3.3: -0000 means "no information about the local zone"; UTC is the honest
        # reading.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def return_path(headers: Mapping[str, tuple[str, ...]]) -> str | None:
    """The topmost Return-Path address: None when absent, "" for the null sender <>."""
    values = headers.get("return-path")
    if not values:
        return None
    # The MTA doing final delivery prepends Return-Path, so the first one is the envelope
    # sender of this delivery; later ones come from earlier hops or quoted bounces.
    value = values[0].strip()
    match = re.search(r"<([^<>]*)>", value)
    return (match.group(1) if match else value).strip()


def content_type_of(msg: Message) -> tuple[str, str | None]:
    """The top-level MIME type and its report-type parameter (RFC 6522), lower case."""
    ctype = msg.get_content_type().lower()
    report = msg.get_param("report-type") if ctype == "multipart/report" else None
    return ctype, str(report).lower() if isinstance(report, str) else None
