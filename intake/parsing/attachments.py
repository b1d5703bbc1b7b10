"""Attachment metadata: safe display filename, type, size and sha256 (no payload kept)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from email.message import Message

from intake.parsing.charsets import unsurrogate
from intake.parsing.headers import decode_words
from intake.parsing.parsed import Attachment

# Long enough for real names, short enough for a table cell and any filesystem (255 bytes).
MAX_FILENAME = 120
# Unicode bidi controls (Trojan Source, CVE-2021-42574) and zero-width characters make a name
# display differently from what it is ("invoice\u202egpj.exe").
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def safe_filename(name: str) -> str:
    """`name` fit for display: no path, control, bidi or zero-width characters, capped length."""
    text = unicodedata.normalize("NFC", decode_words(unsurrogate(name)))
    text = re.split(r"[\\/]", text)[-1]
    text = _INVISIBLE.sub("", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = " ".join(text.split()).strip(" .")
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = f"{stem[: MAX_FILENAME - len(ext) - 2]}….{ext}"
        else:
            text = text[: MAX_FILENAME - 1] + "…"
    return text


def part_payload(part: Message) -> bytes:
    """The decoded payload of a leaf part, or the serialised message for message/* parts."""
    if part.is_multipart():
        try:
            return part.as_bytes()
        except (ValueError, LookupError, TypeError, UnicodeError, IndexError):
            return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def describe(part: Message, *, is_inline: bool) -> Attachment:
    """Metadata of one attachment part; the payload is hashed and then dropped."""
    payload = part_payload(part)
    ctype = part.get_content_type().lower()
    return Attachment(
        filename=_display_name(part, ctype),
        content_type=ctype,
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        is_inline=is_inline,
    )


def _display_name(part: Message, ctype: str) -> str:
    name = ""
    try:
        raw = part.get_filename() or part.get_param("name")
    except (ValueError, LookupError, TypeError, IndexError):
        raw = None
    if isinstance(raw, tuple):  # RFC 2231 value the stdlib could not collapse
        raw = str(raw[2])
    if isinstance(raw, str):
        name = safe_filename(raw)
    if name:
        return name
    if ctype == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            subject = safe_filename(str(inner[0].get("subject", "") or ""))
            return f"{subject or 'message'}.eml"
    if ctype == "application/ms-tnef":
        return "winmail.dat"
    return ""
