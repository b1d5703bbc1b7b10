"""build_acknowledgement(...): the acknowledgement mail, rendered from the templates."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from zoneinfo import ZoneInfo

from intake.acks import mime
from intake.acks.marks import (
    LANGUAGES,
    LOOP_HEADER,
    MAX_VALUE_CHARS,
    MESSAGE_ID_TAG,
    is_valid_address,
    message_id_domain,
    printable,
)
from intake.config import Settings
from intake.errors import ConfigError
from intake.parsing.parsed import ParsedMail
from intake.triage.verdict import Verdict

MAX_LISTED = 20  # attachment and theme names listed in an acknowledgement
MAX_REFERENCES = 20  # RFC 5322 §3.6.4 allows trimming References; keep the first and the last


@dataclass(frozen=True, slots=True)
class AckSettings:
    """The sender's side of every acknowledgement, taken from the settings once."""

    from_address: str
    from_name: str
    message_id_domain: str
    consultation_name: str
    deadline: datetime  # aware
    timezone: str
    contact: str  # whom to ask; the From address when not configured
    default_language: str = "nl"

    @classmethod
    def from_settings(cls, settings: Settings) -> AckSettings:
        outgoing, consultation = settings.outgoing, settings.consultation
        return cls(
            from_address=outgoing.from_address.strip(),
            from_name=outgoing.from_name,
            message_id_domain=message_id_domain(settings),
            consultation_name=consultation.name,
            deadline=consultation.deadline_at,
            timezone=consultation.timezone,
            contact=consultation.contact.strip() or outgoing.from_address.strip(),
            default_language=consultation.language,
        )


@dataclass(frozen=True, slots=True)
class AckInput:
    """What one acknowledgement says about the suggestion it answers."""

    message_id: str | None  # the original's, without brackets; None when it had none
    references: tuple[str, ...]
    subject: str
    received_at: datetime  # aware: when the mailbox received it
    attachment_names: tuple[str, ...]
    theme_names: tuple[str, ...]  # human and localised, primary first
    late: bool
    language: str  # "nl" or "en"
    recipient: str  # from AckDecision.recipient
    recipient_name: str = ""  # From's display name when From is the recipient

    @classmethod
    def from_mail(
        cls,
        mail: ParsedMail,
        verdict: Verdict,
        *,
        recipient: str,
        received_at: datetime,
        theme_names: Sequence[str],
        language: str,
    ) -> AckInput:
        same_person = mail.sender is not None and mail.sender.key == recipient.strip().lower()
        return cls(
            message_id=None if mail.message_id_derived else mail.message_id,
            references=mail.references,
            subject=mail.subject,
            received_at=received_at,
            attachment_names=tuple(a.filename for a in mail.attachments if not a.is_inline),
            theme_names=tuple(theme_names),
            late=verdict.late,
            language=language,
            recipient=recipient,
            recipient_name=mail.sender.name if mail.sender and same_person else "",
        )


@dataclass(frozen=True, slots=True)
class BuiltMail:
    message_id: str  # without brackets
    recipient: str
    subject: str
    data: bytes


# `rendering.render_mail` with its templates folder bound: (name, lang, context) → (subject, text,
# html). A callable, because acks and rendering are independent modules of one layer.
Render = Callable[[str, str, Mapping[str, object]], tuple[str, str, str]]


def salutation_name(name: str) -> str:
    """A display name as one addresses a person: Outlook's "Hermans, Jeroen" → "Jeroen Hermans"."""
    last, comma, first = name.partition(",")
    if comma and first.strip() and last.strip() and "," not in first and "@" not in name:
        return f"{first.strip()} {last.strip()}"
    return name


def ack_context(ack: AckInput, settings: AckSettings) -> dict[str, object]:
    """The template variables of an acknowledgement (templates/README.md lists each)."""
    tz = ZoneInfo(settings.timezone)
    attachments = [clean_text(name) for name in ack.attachment_names if clean_text(name)]
    return {
        "consultation": clean_text(settings.consultation_name),
        "name": salutation_name(clean_text(ack.recipient_name, 80)),
        "subject": clean_text(ack.subject),
        "received_at": _aware(ack.received_at, "received_at").astimezone(tz),
        "attachments": attachments[:MAX_LISTED],
        "attachments_more": max(0, len(attachments) - MAX_LISTED),
        "themes": [clean_text(name) for name in ack.theme_names if clean_text(name)][:MAX_LISTED],
        "late": ack.late,
        "deadline": _aware(settings.deadline, "deadline").astimezone(tz),
        "contact": clean_text(settings.contact),
        "sender_name": clean_text(settings.from_name),
    }


def build_acknowledgement(
    ack: AckInput, settings: AckSettings, render: Render, *, now: datetime
) -> BuiltMail:
    """The acknowledgement as bytes, with a fresh Message-ID at our domain, ready to queue.

    Raises ConfigError when the sender address or Message-ID domain is missing or malformed,
    ValueError when `ack.recipient` is not one valid address or a time is naive.
    """
    if not is_valid_address(ack.recipient):
        raise ValueError(f"not a single valid address: {printable(ack.recipient)!r}")
    language = ack.language if ack.language in LANGUAGES else settings.default_language
    subject, text, html = render("ack", language, ack_context(ack, settings))
    subject = clean_text(subject, 200)
    domain = _checked_domain(settings.message_id_domain)
    message_id = make_msgid(idstring=MESSAGE_ID_TAG, domain=domain)

    # The mail goes out with SMTPUTF8 when an address needs it (as the SMTP transport decides);
    # otherwise every header is 7-bit. The bodies are quoted-printable either way.
    utf8 = not (ack.recipient.isascii() and settings.from_address.isascii())
    fields = [
        _sender(settings, utf8=utf8),
        mime.mailbox_field("To", clean_text(ack.recipient_name, 80), ack.recipient, utf8=utf8),
        mime.text_field("Subject", subject, utf8=utf8),
        "Date: " + format_datetime(_aware(now, "now").astimezone(ZoneInfo(settings.timezone))),
        mime.field("Message-ID", [message_id], fold_first=True),
    ]
    original = _message_id(ack.message_id) if ack.message_id else None
    if original:
        fields.append(mime.field("In-Reply-To", [original], fold_first=True))
        fields.append(
            mime.field("References", _references(ack.references, original), fold_first=True)
        )
    # SMTP-8: plain first, HTML last (the preferred part); quoted-printable stays 7-bit clean.
    content_type, body = mime.alternative((("plain", text), ("html", html)))
    fields += [
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "X-Auto-Response-Suppress: All",  # Exchange: no OOF or receipts for our ack (AR-21)
        # Read by helpdesks and responders that ignore Auto-Submitted (Zammad, Discourse);
        # unlike bulk/junk it does not mark the ack as bulk mail for spam filters.
        "Precedence: auto_reply",
        mime.field(LOOP_HEADER, [domain]),
        "MIME-Version: 1.0",
        content_type,
        mime.text_field("Content-Language", language, utf8=utf8),
    ]
    head = mime.CRLF.join(fields) + mime.CRLF * 2
    return BuiltMail(
        message_id=message_id.strip("<>"),
        recipient=ack.recipient,
        subject=subject,
        data=head.encode("utf-8" if utf8 else "ascii") + body,
    )


def clean_text(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`value` on one line: control and bidi characters gone, whitespace collapsed, capped.

    SMTP-10 and SEC-5 (Trojan Source): for every mail-derived value shown to people.
    """
    # A printable string has no character of the removed categories and no whitespace but
    # the space (str.isprintable: every Cc, Cf, Co, Cs, Cn, Zl, Zp and Zs except U+0020 is not
    # printable), so only the collapsing is left to do; tests/test_acks.py checks every code
    # point.
    if value.isprintable():
        kept = value
    else:
        spaced = "".join(" " if char.isspace() else char for char in value)
        kept = "".join(
            ch for ch in spaced if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
        )
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _sender(settings: AckSettings, *, utf8: bool) -> str:
    return _from_field(settings.from_name, settings.from_address, utf8=utf8)


@lru_cache(maxsize=16)
def _from_field(name: str, address: str, *, utf8: bool) -> str:
    # The same for every acknowledgement of a configuration: written once.
    if not is_valid_address(address):
        raise ConfigError(
            f"outgoing.from_address: acknowledgements need a sender address, got {address!r}"
        )
    return mime.mailbox_field("From", clean_text(name, 80), address, utf8=utf8)


def _checked_domain(domain: str) -> str:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain) or ".." in domain:
        raise ConfigError(
            "outgoing.message_id_domain: set it, or outgoing.from_address, to a mail domain "
            f"(got {domain!r})"
        )
    return domain


def _message_id(value: str) -> str | None:
    """`<id>` when `value` is a usable Message-ID, else None (nothing from it reaches a header)."""
    bare = value.strip().strip("<>").strip()
    if not bare or len(bare) > 900 or not re.fullmatch(r"[^\s<>\"\\]+", bare) or not bare.isascii():
        return None
    return f"<{bare}>"


def _references(references: Iterable[str], original: str) -> list[str]:
    ids = [ref for value in references if (ref := _message_id(value)) and ref != original]
    if len(ids) >= MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 2) :]]
    return [*ids, original]


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime")
    return moment
