"""should_ack(...) -> AckDecision (pure); build the acknowledgement mail."""

from __future__ import annotations

import email.policy
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from zoneinfo import ZoneInfo

from intake.config import Settings
from intake.errors import ConfigError
from intake.parsing.parsed import ParsedMail
from intake.triage.verdict import Kind, Verdict

LANGUAGES = ("nl", "en")
# Our own loop header (AR-9, like RT's X-RT-Loop-Prevention); its value is our Message-ID domain.
LOOP_HEADER = "X-Intake-Loop"
# Our Message-IDs end in ".intake@<domain>": the domain alone is not enough, because mail clients
# such as Thunderbird put the sender's own domain (maastricht.nl) into the ids they make.
MESSAGE_ID_TAG = "intake"
MAX_VALUE_CHARS = 150  # SMTP-10: reused subjects and names are capped
MAX_LISTED = 20  # attachment and theme names listed in an acknowledgement
MAX_REFERENCES = 20  # RFC 5322 §3.6.4 allows trimming References; keep the first and the last


# ---------------------------------------------------------------------------------------------
# The decision


@dataclass(frozen=True, slots=True)
class AckPolicy:
    """What `should_ack` needs from the settings: our addresses, our domain and the limits."""

    enabled: bool = True
    own_addresses: frozenset[str] = frozenset()  # lower case: the mailbox, its aliases, our From
    own_message_id_domain: str = ""  # lower case; "" when unknown (the check is skipped)
    honour_suppress_header: bool = True  # AR-6
    require_addressed: bool = False  # AR-10: off, so Bcc'd and forwarded suggestions get an ack
    max_per_sender_per_day: int = 3  # AR-11
    max_per_thread: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> AckPolicy:
        addresses = [*settings.consultation.addresses, settings.outgoing.from_address]
        return cls(
            enabled=settings.ack.enabled,
            own_addresses=frozenset(a.strip().lower() for a in addresses if a.strip()),
            own_message_id_domain=message_id_domain(settings),
            honour_suppress_header=settings.ack.honour_suppress_header,
            require_addressed=settings.ack.require_addressed,
            max_per_sender_per_day=settings.ack.max_per_sender_per_day,
            max_per_thread=settings.ack.max_per_thread,
        )


@dataclass(frozen=True, slots=True)
class AckHistory:
    """What we already sent, counted from the database by the caller (keyed on `ack_recipient`)."""

    acks_to_sender_last_24h: int = 0
    acks_in_thread: int = 0
    refers_to_our_mail: bool = False  # In-Reply-To/References name one of our Message-IDs


@dataclass(frozen=True, slots=True)
class AckDecision:
    send: bool
    reason: str  # kebab case, one of ACK_REASONS
    recipient: str | None = None  # set only when `send`
    detail: str = ""  # what matched, for the log and `rules explain`

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


# A check returns what it matched (even "" is a hit) or None when it does not apply.
Check = Callable[[ParsedMail, AckPolicy], str | None]


def is_own_address(mail: ParsedMail, policy: AckPolicy) -> str | None:
    for address in (mail.return_path or "", mail.sender.key if mail.sender else ""):
        if address.strip().lower() in policy.own_addresses:
            return address
    return None


def has_own_message_id(mail: ParsedMail, policy: AckPolicy) -> str | None:
    local, _, domain = mail.message_id.strip(" <>").lower().rpartition("@")
    mine = policy.own_message_id_domain
    if (
        mine
        and not mail.message_id_derived
        and domain == mine
        and local.endswith(f".{MESSAGE_ID_TAG}")
    ):
        return mail.message_id
    return None


def has_loop_header(mail: ParsedMail, _: AckPolicy) -> str | None:
    # Any value: another intake installation's acknowledgement is a robot as well.
    if mail.has_header(LOOP_HEADER):
        return f"{LOOP_HEADER}: {mail.header(LOOP_HEADER)}"
    return None


_REPORT_PARTS = (
    "message/delivery-status",  # RFC 3464
    "message/global-delivery-status",  # RFC 6533
    "message/disposition-notification",  # RFC 8098 read receipts
    "message/feedback-report",  # RFC 5965
)


def is_report(mail: ParsedMail, _: AckPolicy) -> str | None:
    if mail.content_type == "multipart/report":
        return "multipart/report"
    for part in mail.part_types:
        if part in _REPORT_PARTS:
            return part
    # Exchange's NDR marker has an EMPTY value: presence is what counts (AR-7).
    for name in ("X-MS-Exchange-Message-Is-Ndr", "X-Failed-Recipients"):
        if mail.has_header(name):
            return name
    return None


def is_auto_submitted(mail: ParsedMail, _: AckPolicy) -> str | None:
    for value in mail.header_all("Auto-Submitted"):
        # RFC 3834 §5: the token before any parameter or comment; anything but "no" is automatic.
        keyword = re.split(r"[;(]", value, maxsplit=1)[0].strip().lower()
        if keyword != "no":
            return f"Auto-Submitted: {value.strip()}"
    return None


# Header → None (presence suffices) or a lower-case fragment the value must contain (AR-8).
_AUTO_REPLY_MARKERS: Mapping[str, str | None] = {
    "x-autoreply": None,
    "x-autorespond": None,
    "x-autoresponder": None,
    "x-autoreply-from": None,
    "x-mail-autoreply": None,
    "x-autogenerated": None,
    "x-amazon-auto-reply": None,
    "x-loop": None,  # procmail, Zammad and others stamp it on what they generate
    "feedback-id": None,  # bulk senders' feedback loops (Gmail, SES)
    "x-fc-machinegenerated": "true",
    "x-post-messageclass": "autoresponder",
    "delivered-to": "autoresponder",
}


def has_auto_reply_marker(mail: ParsedMail, _: AckPolicy) -> str | None:
    for name, fragment in _AUTO_REPLY_MARKERS.items():
        if not mail.has_header(name):
            continue
        for value in mail.header_all(name) or ("",):
            if fragment is None or fragment in value.lower():
                return f"{name}: {value.strip()}".rstrip(": ")
    return None


_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def has_bulk_precedence(mail: ParsedMail, _: AckPolicy) -> str | None:
    for name in ("Precedence", "X-Precedence"):
        for value in mail.header_all(name):
            if value.strip().lower() in _BULK_PRECEDENCE:
                return f"{name}: {value.strip()}"
    return None


def is_list_mail(mail: ParsedMail, _: AckPolicy) -> str | None:
    # RFC 2369/2919 and older list software; the value does not matter (AR-4).
    for name in mail.headers:
        if name.startswith("list-") or name in ("mailing-list", "x-mailing-list"):
            return name
    return None


_SYSTEM_LOCAL = re.compile(
    r"""
      ^(?:post[-_.]?master|listserv|majordomo|bounces?
         |microsoftexchange329e71ec88ae4615bbc36ab6ce41109e)$  # Exchange Online's NDR sender
    | ^bounces?[-_.=]          # bounce-123@, bounces-list@
    | -request$ | ^owner-      # RFC 5230 §4.6: list software
    | (?:^|[-_.])(?:mailer[-_.]?daemon|no[-_.]?reply|do[-_.]?not[-_.]?reply)(?:[-_.]|$)
    """,
    re.VERBOSE,
)


def is_system_sender(mail: ParsedMail, _: AckPolicy) -> str | None:
    candidates = (_return_path_address(mail), mail.sender.key if mail.sender else "")
    for address in candidates:
        local = address.rpartition("@")[0].partition("+")[0]
        if local and _SYSTEM_LOCAL.search(local):
            return address
    return None


def is_spam_flagged(mail: ParsedMail, _: AckPolicy) -> str | None:
    for value in mail.header_all("X-Spam-Flag"):
        if value.strip().lower() == "yes":
            return f"X-Spam-Flag: {value.strip()}"
    for value in mail.header_all("X-Spam-Status"):
        if value.strip().lower().startswith("yes"):
            return "X-Spam-Status: yes"
    for value in mail.header_all("X-Forefront-Antispam-Report"):
        # Exchange Online Protection: SPM = spam, SKS = marked spam by a transport rule.
        verdict = re.search(r"\bSFV:\s*(SPM|SKS)\b", value, re.IGNORECASE)
        if verdict:
            return f"X-Forefront-Antispam-Report: SFV:{verdict.group(1).upper()}"
    for value in mail.header_all("X-MS-Exchange-Organization-SCL"):
        if value.strip().isdigit() and int(value.strip()) >= 5:  # SCL 5..9 is spam
            return f"X-MS-Exchange-Organization-SCL: {value.strip()}"
    return None


# Return-Path domains of bulk-mail platforms: an ack there reaches a bounce processor, not a
# person (AR-13; fixmystreet #85). Not exhaustive; the VERP shapes below catch most others.
_BULK_DOMAINS = (
    "amazonses.com",
    "sendgrid.net",
    "mcsv.net",
    "mcdlv.net",
    "rsgsv.net",
    "mandrillapp.com",
    "mailgun.org",
    "sparkpostmail.com",
    "mktomail.com",
    "hubspotemail.net",
    "exacttarget.com",
    "bounces.google.com",
    "mailjet.com",
    "sendinblue.com",
    "createsend.com",
)
_MACHINE_LOCAL = re.compile(r"[0-9a-f]{16,}|\d{8,}")


def has_bulk_return_path(mail: ParsedMail, _: AckPolicy) -> str | None:
    path = _return_path_address(mail)
    if not path or path.startswith(("srs0=", "srs1=")):
        return None  # SRS (forwarding) leads back to the person: acknowledged
    if mail.sender and path == mail.sender.key:
        return None
    local, _at, domain = path.rpartition("@")
    if any(domain == d or domain.endswith("." + d) for d in _BULK_DOMAINS):
        return path
    # VERP encodes the recipient ("bounce-jan=example.nl@") or a per-message id in the local part.
    if "=" in local or _MACHINE_LOCAL.search(local):
        return path
    return None


ROBOT_CHECKS: tuple[tuple[str, Check], ...] = (
    ("delivery-report", is_report),  # AR-7
    ("auto-submitted", is_auto_submitted),  # AR-2
    ("auto-reply-marker", has_auto_reply_marker),  # AR-8
    ("precedence", has_bulk_precedence),  # AR-3
    ("list-mail", is_list_mail),  # AR-4
    ("system-sender", is_system_sender),  # AR-5
    ("spam-flag", is_spam_flagged),  # AR-12
    ("bulk-return-path", has_bulk_return_path),  # AR-13
)
LOOP_CHECKS: tuple[tuple[str, Check], ...] = (
    ("own-address", is_own_address),  # AR-9
    ("own-message-id", has_own_message_id),
    ("loop-header", has_loop_header),
)
ACK_REASONS = (
    "disabled",
    "not-a-suggestion",
    "null-return-path",
    *(reason for reason, _ in LOOP_CHECKS),
    *(reason for reason, _ in ROBOT_CHECKS),
    "reply-to-our-mail-by-robot",
    "no-recipient",
    "invalid-recipient",
    "not-addressed",
    "suppressed-by-sender",
    "thread-limit",
    "sender-limit",
    "ok",
)


def should_ack(
    mail: ParsedMail, verdict: Verdict, policy: AckPolicy, history: AckHistory
) -> AckDecision:
    """Whether to acknowledge `mail`, why, and to whom; the first rule that hits decides.

    Pure: no database, network or clock. The kind checks repeat triage's on purpose, so that a
    suggestion misfiled by a subject heuristic still never reaches a robot.
    """
    if not policy.enabled:
        return AckDecision(send=False, reason="disabled")
    if verdict.kind is not Kind.SUGGESTION:
        return AckDecision(send=False, reason="not-a-suggestion", detail=str(verdict.kind))
    if mail.return_path == "":  # AR-1, RFC 3834 §2: never answer the null sender
        return AckDecision(send=False, reason="null-return-path", detail="Return-Path: <>")
    for reason, check in LOOP_CHECKS:
        if (matched := check(mail, policy)) is not None:
            return AckDecision(send=False, reason=reason, detail=matched)
    for reason, check in ROBOT_CHECKS:
        if (matched := check(mail, policy)) is not None:
            if history.refers_to_our_mail:  # AR-23: a robot answering our acknowledgement
                return AckDecision(
                    send=False, reason="reply-to-our-mail-by-robot", detail=f"{reason}: {matched}"
                )
            return AckDecision(send=False, reason=reason, detail=matched)

    recipient = ack_recipient(mail)
    if recipient is None:
        return AckDecision(send=False, reason="no-recipient")
    if not is_valid_address(recipient):
        return AckDecision(send=False, reason="invalid-recipient", detail=_printable(recipient))
    if policy.require_addressed and not _is_addressed(mail, policy):  # AR-10
        return AckDecision(send=False, reason="not-addressed")
    if policy.honour_suppress_header and (matched := _suppressed(mail)):  # AR-6
        return AckDecision(send=False, reason="suppressed-by-sender", detail=matched)
    # A reply to our acknowledgement belongs to a thread we have already acknowledged.
    in_thread = max(history.acks_in_thread, 1 if history.refers_to_our_mail else 0)
    if in_thread >= policy.max_per_thread:
        return AckDecision(send=False, reason="thread-limit", detail=f"{in_thread} sent")
    if history.acks_to_sender_last_24h >= policy.max_per_sender_per_day:  # AR-11
        return AckDecision(
            send=False, reason="sender-limit", detail=f"{history.acks_to_sender_last_24h} in 24 h"
        )
    return AckDecision(send=True, reason="ok", recipient=recipient)


def ack_recipient(mail: ParsedMail) -> str | None:
    """The address an acknowledgement goes to: the Return-Path, else From; None for `<>`.

    AR-20: never Reply-To. A BATV-signed Return-Path (`prvs=tag=jan@…`) gives the address it
    signs. Callers count sent acknowledgements on this address lower-cased.
    """
    if mail.return_path == "":
        return None
    if mail.return_path is not None:
        return _unsigned(mail.return_path.strip().strip("<>").strip())
    if mail.sender is not None and mail.sender.addr.strip():
        return mail.sender.addr.strip()
    return None


_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")


def is_valid_address(address: str) -> bool:
    """True for one bare address: one @, no spaces, brackets, separators or control characters."""
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        return False
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in address):
        return False
    domain = address.rpartition("@")[2]
    return not (domain.startswith(".") or domain.endswith(".") or ".." in domain)


def _unsigned(address: str) -> str:
    # BATV (prvs=, Microsoft's msprvs1=) signs the envelope sender of ordinary mail.
    match = re.fullmatch(r"(?:prvs|msprvs1|btv1)=[^=@]+=(.+@.+)", address, re.IGNORECASE)
    return match.group(1) if match else address


def _return_path_address(mail: ParsedMail) -> str:
    return _unsigned((mail.return_path or "").strip().strip("<>").strip()).lower()


def _is_addressed(mail: ParsedMail, policy: AckPolicy) -> bool:
    named = {address.key for address in (*mail.to, *mail.cc)}
    resent = [*mail.header_all("Resent-To"), *mail.header_all("Resent-Cc")]
    named.update(addr.strip().lower() for _name, addr in getaddresses(resent))
    return not named.isdisjoint(policy.own_addresses)


def _suppressed(mail: ParsedMail) -> str:
    for value in mail.header_all("X-Auto-Response-Suppress"):
        # MS-OXCMAIL 2.1.3.2.20: comma-separated None, All, DR, NDR, RN, NRN, OOF, AutoReply
        tokens = {token.strip().lower() for token in re.split(r"[,\s]+", value)}
        if tokens & {"all", "autoreply"}:
            return f"X-Auto-Response-Suppress: {value.strip()}"
    return ""


def choose_language(mail: ParsedMail, default: str) -> str:
    """The acknowledgement's language: the detected one, else Content-Language, else `default`.

    Accept-Language (AR-26) is read after Content-Language; only nl and en are answered.
    """
    if mail.language in LANGUAGES:
        return mail.language
    for value in (mail.content_language or "", mail.header("Accept-Language")):
        for tag in re.split(r"[,\s]+", value):
            primary = tag.split(";")[0].split("-")[0].strip().lower()
            if primary in LANGUAGES:
                return primary
    return default


# ---------------------------------------------------------------------------------------------
# The acknowledgement itself


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


def message_id_domain(settings: Settings) -> str:
    """Our Message-ID domain: `outgoing.message_id_domain`, else From's (never the host, SMTP-6)."""
    domain = (
        settings.outgoing.message_id_domain or settings.outgoing.from_address.rpartition("@")[2]
    )
    return domain.strip().lower()


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
        raise ValueError(f"not a single valid address: {_printable(ack.recipient)!r}")
    language = ack.language if ack.language in LANGUAGES else settings.default_language
    subject, text, html = render("ack", language, ack_context(ack, settings))
    subject = clean_text(subject, 200)
    domain = _checked_domain(settings.message_id_domain)
    message_id = make_msgid(idstring=MESSAGE_ID_TAG, domain=domain)

    msg = EmailMessage()
    msg["From"] = _sender(settings)
    msg["To"] = HeaderAddress(
        display_name=clean_text(ack.recipient_name, 80), addr_spec=ack.recipient
    )
    msg["Subject"] = subject
    msg["Date"] = format_datetime(_aware(now, "now").astimezone(ZoneInfo(settings.timezone)))
    msg["Message-ID"] = message_id
    original = _message_id(ack.message_id) if ack.message_id else None
    if original:
        msg["In-Reply-To"] = original
        msg["References"] = " ".join(_references(ack.references, original))
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    msg["X-Auto-Response-Suppress"] = "All"  # Exchange: no OOF or receipts for our ack (AR-21)
    # Read by helpdesks and responders that ignore Auto-Submitted (Zammad, Discourse); unlike
    # bulk/junk it does not mark the ack as bulk mail for spam filters.
    msg["Precedence"] = "auto_reply"
    msg[LOOP_HEADER] = domain
    # SMTP-8: plain first, HTML last (the preferred part); quoted-printable stays 7-bit clean.
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = language  # after the body: set_content drops Content-* headers
    policy = email.policy.SMTP if ack.recipient.isascii() else email.policy.SMTPUTF8
    return BuiltMail(
        message_id=message_id.strip("<>"),
        recipient=ack.recipient,
        subject=subject,
        data=msg.as_bytes(policy=policy),
    )


def clean_text(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`value` on one line: control and bidi characters gone, whitespace collapsed, capped.

    SMTP-10 and SEC-5 (Trojan Source): for every mail-derived value shown to people.
    """
    spaced = "".join(" " if char.isspace() else char for char in value)
    kept = "".join(ch for ch in spaced if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs"))
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _sender(settings: AckSettings) -> HeaderAddress:
    if not is_valid_address(settings.from_address):
        raise ConfigError(
            "outgoing.from_address: acknowledgements need a sender address, "
            f"got {settings.from_address!r}"
        )
    return HeaderAddress(
        display_name=clean_text(settings.from_name, 80), addr_spec=settings.from_address
    )


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


def _printable(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii")[:MAX_VALUE_CHARS]
