"""Choose the text part, HTML → text, charset repair; everything else is an attachment."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from intake.parsing.attachments import describe
from intake.parsing.charsets import decode_text
from intake.parsing.htmltext import html_to_text
from intake.parsing.parsed import Attachment

# mail-parser caps nesting through RecursionError; our own walk stops well before that and
# records a defect, so one absurd message cannot exhaust the stack here either. Real mail that
# went through many forwards and list gateways nests a hundred levels and more.
MAX_DEPTH = 250
_TEXT_TYPES = ("text/plain", "text/html")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")


@dataclass(slots=True)
class Body:
    """What the MIME tree holds: chosen text, attachments and attached messages."""

    text: str = ""
    html_only: bool = False
    attachments: list[Attachment] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # attached message/rfc822 parts
    dsn_actions: list[str] = field(default_factory=list)  # Action: of each DSN recipient
    defects: list[str] = field(default_factory=list)


def extract_body(msg: Message) -> Body:
    """The body text and attachment metadata of `msg` (text/plain preferred over HTML)."""
    body = Body()
    plain: list[str] = []
    html: list[str] = []
    _collect(msg, body, plain, html, depth=0, in_related=False)
    if any(chunk.strip() for chunk in plain):
        body.text = "\n\n".join(chunk.strip("\n") for chunk in plain if chunk.strip())
    elif html:
        body.text = "\n\n".join(t for t in (html_to_text(h) for h in html) if t)
        body.html_only = True
    return body


def _collect(
    part: Message,
    body: Body,
    plain: list[str],
    html: list[str],
    *,
    depth: int,
    in_related: bool,
) -> None:
    if depth > MAX_DEPTH:
        body.defects.append("NestingTooDeep")
        return
    ctype = part.get_content_type().lower()
    if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
        body.attachments.append(describe(part, is_inline=False))
        inner = part.get_payload()
        if ctype == "message/rfc822" and isinstance(inner, list) and inner:
            body.messages.extend(m for m in inner[:1] if isinstance(m, Message))
        if ctype in _DSN_TYPES and isinstance(inner, list):
            # The first block is per message, the rest one per recipient (RFC 3464 §2.1).
            fields = (block.get("Action") for block in inner if isinstance(block, Message))
            body.dsn_actions.extend(str(value).strip().lower() for value in fields if value)
        return
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/alternative":
            _collect_alternative(children, body, plain, html, depth=depth)
            return
        for index, child in enumerate(children):
            if index and ctype in ("multipart/signed", "multipart/encrypted"):
                # RFC 1847: the second part is the signature or control data, not body text.
                body.attachments.append(describe(child, is_inline=False))
                continue
            _collect(
                child,
                body,
                plain,
                html,
                depth=depth + 1,
                in_related=in_related or ctype == "multipart/related",
            )
        return
    if ctype in _TEXT_TYPES and not _is_attachment(part):
        text = _decode(part, body)
        (plain if ctype == "text/plain" else html).append(text)
        return
    body.attachments.append(describe(part, is_inline=_is_inline(part, in_related)))


def _collect_alternative(
    children: list[Message], body: Body, plain: list[str], html: list[str], *, depth: int
) -> None:
    """Take the first alternative that yields text, text/plain before text/html."""
    results: list[tuple[list[str], list[str], Body]] = []
    for child in children:
        sub = Body()
        sub_plain: list[str] = []
        sub_html: list[str] = []
        _collect(child, sub, sub_plain, sub_html, depth=depth + 1, in_related=False)
        results.append((sub_plain, sub_html, sub))
    chosen = next((i for i, r in enumerate(results) if any(t.strip() for t in r[0])), None)
    if chosen is None:
        chosen = next((i for i, r in enumerate(results) if any(t.strip() for t in r[1])), None)
    for index, (sub_plain, sub_html, sub) in enumerate(results):
        if index == chosen:
            plain.extend(sub_plain)
            html.extend(sub_html)
        # Attachments of every alternative are real (an HTML alternative's inline images).
        body.attachments.extend(sub.attachments)
        body.messages.extend(sub.messages)
        body.dsn_actions.extend(sub.dsn_actions)
        body.defects.extend(sub.defects)


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment":
        return True
    # A named text part without disposition is a file someone attached (invoice.html).
    return disposition != "inline" and bool(_filename(part))


def _is_inline(part: Message, in_related: bool) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment":
        return False
    # cid: images: referenced from the HTML by Content-ID, shown in the text, not attached.
    return bool(part.get("content-id")) or in_related or disposition == "inline"


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except (ValueError, LookupError, TypeError, IndexError):
        return ""


def _decode(part: Message, body: Body) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text, repaired = decode_text(payload, part.get_content_charset())
    if repaired:
        body.defects.append("CharsetRepaired")
    return text.replace("\r\n", "\n").replace("\r", "\n")
