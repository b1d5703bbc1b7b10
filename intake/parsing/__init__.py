"""parse(data: bytes) -> ParsedMail; never raises (failure is a value)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

from intake.parsing import feedparser_tail
from intake.parsing.base64_lines import join_base64_lines
from intake.parsing.body import Body, extract_body
from intake.parsing.charsets import is_unreadable, is_western
from intake.parsing.forwards import Forward, find_inline_forward, forward_from_message
from intake.parsing.headers import (
    address_header_map,
    addresses_from_values,
    all_ids,
    content_type_of,
    derive_message_id,
    first_id,
    header_map,
    parse_date,
    raw_header_items,
    return_path,
)
from intake.parsing.language import detect_language
from intake.parsing.mailparser_scan import scan_headers
from intake.parsing.parsed import Address, Attachment, ParsedMail
from intake.parsing.quotes import Reply, split_reply
from intake.parsing.repair import repair_header_block

__all__ = ["Address", "Attachment", "ParsedMail", "parse"]

log = logging.getLogger(__name__)
# mail-parser's full pass logs header values and attachment names (at ERROR and WARNING); the
# address and date scanners intake calls log nothing today, and stay quiet if a version does.
# Mail content never goes into the log (PRIV-2), and parse() records its own failures and
# defects as values; set here, so that every process that parses (the CLI, the worker, parser
# processes) is quiet the same way.
logging.getLogger("mailparser").setLevel(logging.CRITICAL + 1)
feedparser_tail.install()

TRUNCATED_DEFECT = "TruncatedMessage"  # only the headers were fetched (over the size limit)
NO_FROM_DEFECT = "FromMissing"  # no usable From address; sender taken from Sender/Reply-To
UNREADABLE_DEFECT = "UnreadableText"  # the text is decoded binary: nothing a person can read
MAX_ERROR = 500  # characters of an exception message kept in ParsedMail.error


def parse(data: bytes, *, truncated: bool = False) -> ParsedMail:
    """What intake reads from a message's bytes.

    Never raises: any failure (deep nesting, malformed headers, a library bug) gives a
    ParsedMail with `error` set and whatever the headers alone could tell.
    `truncated=True` says the bytes are only the headers plus a note, because the message was
    over the size limit; it is parsed as it is and marked with a defect.
    """
    try:
        return _parse(data, truncated=truncated)
    except Exception as exc:  # the contract: a failure is a value, stored and quarantined
        log.debug("parse failed, falling back to headers only", exc_info=True)
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        return _parse_headers_only(data, error=error, truncated=truncated)


class NestingError(ValueError):
    """The MIME tree is nested deeper than the parser can recurse."""


@dataclass(frozen=True, slots=True)
class _Text:
    reply: Reply
    forwarded_from: Address | None = None


def _parse(original: bytes, *, truncated: bool) -> ParsedMail:
    repaired, repairs = repair_header_block(original)
    data = join_base64_lines(repaired)
    try:
        msg: Message = message_from_bytes(data)
    except RecursionError as exc:
        # The stdlib parser recurses once per multipart level; headers only, then.
        raise NestingError("message nesting too deep to parse") from exc
    items, hint = raw_header_items(msg), _charset_hint(msg)
    headers = header_map(items, hint)
    addresses = address_header_map(items, hint)
    scanned = scan_headers(msg)
    fields = _header_fields(headers, addresses, original, scanned.addresses)
    defects: list[str] = [*repairs, *sorted(_part_defects(msg) | scanned.defects)]
    if fields["date"] is None:
        fields["date"] = scanned.date
    if fields["sender"] is None:
        # Without a usable From, Sender (RFC 5322 §3.6.2) or else Reply-To is who wrote it, as
        # far as anyone can tell (Zammad falls back the same way); a defect says so.
        fallback = _pick_sender(addresses_from_values(addresses.get("sender", ())))
        fields["sender"] = fallback or _pick_sender(fields["reply_to"])
        defects.append(NO_FROM_DEFECT)
    content_type, report_type = content_type_of(msg)
    body = extract_body(msg)
    chosen = _choose_text(body, str(fields["subject"]), content_type)
    defects.extend(body.defects)
    if truncated:
        defects.append(TRUNCATED_DEFECT)
    if is_unreadable(body.text):
        defects.append(UNREADABLE_DEFECT)
    reply = chosen.reply
    language = detect_language(f"{fields['subject']}\n{reply.text}") or detect_language(
        reply.quoted
    )
    return ParsedMail(
        **fields,
        headers=headers,
        content_type=content_type,
        report_type=report_type,
        dsn_actions=tuple(body.dsn_actions),
        part_types=tuple(part.get_content_type().lower() for part in msg.walk()),
        text=reply.text,
        quoted=reply.quoted,
        signature=reply.signature,
        disclaimer=reply.disclaimer,
        forwarded_from=chosen.forwarded_from,
        html_only=body.html_only,
        attachments=tuple(body.attachments),
        language=language,
        defects=tuple(dict.fromkeys(defects)),
    )


def _choose_text(body: Body, subject: str, content_type: str) -> _Text:
    """Split the body into new text and the rest, following a forward when it is all there is."""
    forward: Forward | None = find_inline_forward(body.text, subject)
    # A report's attached message is the bounced original, not a forward (RFC 3464).
    if forward is None and body.messages and content_type != "multipart/report":
        forward = forward_from_message(body.text, body.messages[0])
    if forward is None:
        return _Text(split_reply(body.text))
    note = split_reply(forward.note)
    if not note.text:
        inner = split_reply(forward.text)
        return _Text(
            Reply(
                text=inner.text,
                quoted=_join(note.quoted, inner.quoted),
                signature=_join(note.signature, inner.signature),
                disclaimer=_join(note.disclaimer, inner.disclaimer),
            ),
            forwarded_from=forward.author,
        )
    forwarded = _join(forward.header, forward.text)
    return _Text(
        Reply(
            text=note.text,
            quoted=_join(note.quoted, forwarded),
            signature=note.signature,
            disclaimer=note.disclaimer,
        )
    )


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)


def _pick_sender(addresses: tuple[Address, ...]) -> Address | None:
    # A second, well-formed From after a garbled one (zammad mail017) is the usable one.
    usable = [address for address in addresses if "@" in address.addr]
    return usable[0] if usable else (addresses[0] if addresses else None)


def _part_defects(msg: Message) -> set[str]:
    """The kinds of structural defect the stdlib parser noted in any part."""
    return {type(defect).__name__ for part in msg.walk() for defect in part.defects}


def _charset_hint(msg: Message) -> str | None:
    """The message's most telling charset: how raw 8-bit header bytes were likely written.

    A non-western charset anywhere wins over a western one: Chinese spam often declares
    iso-8859-1 on a dummy first part and gb2312 on the real one (zammad mail046).
    """
    charsets = [str(c) for c in (part.get_content_charset() for part in msg.walk()) if c]
    return next((c for c in charsets if not is_western(c)), charsets[0] if charsets else None)


def _header_fields(
    headers: Mapping[str, tuple[str, ...]],
    addresses: Mapping[str, tuple[str, ...]],
    data: bytes,
    scanned: Mapping[str, tuple[Address, ...]],
) -> dict[str, Any]:
    """The header-derived ParsedMail fields, from decoded header values and raw address ones.

    Addresses are mail-parser's (`scanned`) where it found any, else the stdlib's reading.
    """

    def first(name: str) -> str:
        values = headers.get(name, ())
        return values[0] if values else ""

    def listed(name: str) -> tuple[Address, ...]:
        return scanned.get(name) or addresses_from_values(addresses.get(name, ()))

    message_id = first_id(first("message-id"))
    in_reply_to = first("in-reply-to")
    return {
        "message_id": message_id or derive_message_id(headers, data),
        "message_id_derived": message_id is None,
        "sender": _pick_sender(scanned.get("from", ()))
        or _pick_sender(addresses_from_values(addresses.get("from", ()))),
        "to": listed("to"),
        "cc": listed("cc"),
        "reply_to": listed("reply-to"),
        "return_path": return_path(headers),
        "subject": " ".join(first("subject").split()),
        "date": parse_date(first("date")),
        "in_reply_to": first_id(in_reply_to) if in_reply_to else None,
        "references": tuple(
            id_ for value in headers.get("references", ()) for id_ in all_ids(value)
        ),
        "content_language": first("content-language") or None,
    }


def _parse_headers_only(data: bytes, *, error: str, truncated: bool) -> ParsedMail:
    headers: dict[str, tuple[str, ...]] = {}
    content_type = ""
    try:
        msg = BytesHeaderParser().parsebytes(data)
        items = raw_header_items(msg)
        headers = header_map(items)
        content_type = msg.get_content_type().lower()
        fields = _header_fields(headers, address_header_map(items), data, {})
    except Exception:  # even the headers are unreadable: keep only a derived id
        log.debug("header fallback failed", exc_info=True)
        fields = _header_fields({}, {}, data, {})
    return ParsedMail(
        **fields,
        headers=headers,
        content_type=content_type,
        part_types=(content_type,) if content_type else (),
        text="",
        defects=("ParseError", TRUNCATED_DEFECT) if truncated else ("ParseError",),
        error=error,
    )
