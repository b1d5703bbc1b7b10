"""KIND_CHECKS table: header checks first, then configured subject patterns; every hit is kept."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from intake.parsing import UNREADABLE_DEFECT
from intake.parsing.parsed import ParsedMail
from intake.triage import mailboxes
from intake.triage.matching import fold
from intake.triage.rules import Rules
from intake.triage.verdict import Kind, Reason


@dataclass(frozen=True, slots=True)
class KindInputs:
    """What the checks may consult besides the mail: the rules and our own mailbox addresses."""

    rules: Rules
    own_addresses: frozenset[str] = frozenset()


Check = Callable[[ParsedMail, KindInputs], Reason | None]


@dataclass(frozen=True, slots=True)
class KindCheck:
    check: Check
    kind: Kind
    # A generic hit (Auto-Submitted, the null sender) gives way to a specific bounce, auto-reply or
    # receipt hit further down: Exchange NDRs carry "Auto-Submitted: auto-replied", and RFC 3834
    # auto-replies are sent from the null sender.
    generic: bool = False


def _header(mail: ParsedMail, name: str, matched: str = "", code: str = "") -> Reason:
    value = matched or mail.header(name)
    return Reason(code or name.lower(), field="header", matched=f"{name}: {value}".rstrip())


def _report_type(mail: ParsedMail) -> str:
    """The report-type parameter of a top-level multipart/report ("" otherwise)."""
    if mail.content_type != "multipart/report":
        return ""
    if mail.report_type:
        return mail.report_type
    found = re.search(r"report-type\s*=\s*\"?([\w.-]+)", mail.header("Content-Type"), re.IGNORECASE)
    return found.group(1).lower() if found else "unknown"


def _sender_keys(mail: ParsedMail) -> list[str]:
    keys = [mail.sender.key] if mail.sender else []
    if mail.return_path:
        keys.append(mail.return_path.strip().strip("<>").lower())
    return keys


def _is_allowlisted(mail: ParsedMail, inputs: KindInputs) -> bool:
    """DET-9: mail from allowlisted senders (e.g. the council information system) is not bulk."""
    allow = inputs.rules.allowlist
    return bool(allow) and any(allow.match(key) for key in _sender_keys(mail))


# -- reports and bounces (AR-7, DET-3) ------------------------------------------------------------


_DELIVERED = frozenset({"delivered", "relayed", "expanded"})


def is_delivery_notification(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # A DSN whose every recipient was reached (Outlook's "Bezorgd:") is a receipt: nothing
    # bounced, and the report structure must not make it one (RFC 3464 §2.3.3).
    if mail.dsn_actions and all(action in _DELIVERED for action in mail.dsn_actions):
        return Reason("dsn-delivered", "structure", f"Action: {mail.dsn_actions[0]}")
    return None


def is_delivery_report(mail: ParsedMail, _: KindInputs) -> Reason | None:
    if _report_type(mail) == "delivery-status":  # RFC 3464 / 6522
        return Reason("report-delivery-status", "structure", "multipart/report; delivery-status")
    return None


def has_delivery_status_part(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # NDRs are sometimes re-wrapped as multipart/mixed: the part gives them away (DET-3).
    for part in ("message/delivery-status", "message/global-delivery-status"):
        if part in mail.part_types:
            return Reason("delivery-status-part", "structure", part)
    return None


def is_exchange_ndr(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # The header's value is empty: only its presence counts (AR-7).
    if mail.has_header("X-MS-Exchange-Message-Is-Ndr"):
        return _header(mail, "X-MS-Exchange-Message-Is-Ndr", code="exchange-ndr")
    return None


def has_failed_recipients(mail: ParsedMail, _: KindInputs) -> Reason | None:
    if mail.has_header("X-Failed-Recipients"):  # Exim
        return _header(mail, "X-Failed-Recipients", code="failed-recipients")
    return None


def is_feedback_report(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # RFC 5965 abuse report: a provider telling us a recipient marked *our* mail (an ack) as spam.
    # It is not spam itself but feedback on mail we sent, handled as a bounce: never acknowledged,
    # correlated with the ack it embeds, and a sign to stop writing to that address.
    if _report_type(mail) == "feedback-report" or "message/feedback-report" in mail.part_types:
        return Reason("report-feedback", "structure", "feedback-report")
    return None


def is_other_report(mail: ParsedMail, _: KindInputs) -> Reason | None:
    kind = _report_type(mail)
    if kind and kind not in ("delivery-status", "disposition-notification", "feedback-report"):
        return Reason("report-other", "structure", f"multipart/report; {kind}")
    return None


def is_system_bounce_sender(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # AR-5, DET-3: senders of delivery reports, including Exchange Online's fixed system mailbox.
    for key in _sender_keys(mail):
        if mailboxes.sends_reports(key.rpartition("@")[0]):
            return Reason("system-sender", "sender", key)
    return None


# -- receipts (RFC 8098) --------------------------------------------------------------------


def is_read_receipt(mail: ParsedMail, _: KindInputs) -> Reason | None:
    if _report_type(mail) == "disposition-notification":
        return Reason(
            "report-disposition", "structure", "multipart/report; disposition-notification"
        )
    if "message/disposition-notification" in mail.part_types:
        return Reason("report-disposition", "structure", "message/disposition-notification")
    return None


# -- spam flagged upstream (AR-12) --------------------------------------------------------------


def is_flagged_spam(mail: ParsedMail, _: KindInputs) -> Reason | None:
    if mail.header("X-Spam-Flag").strip().lower() == "yes":
        return _header(mail, "X-Spam-Flag", code="spam-flag")
    if mail.header("X-Spam-Status").strip().lower().startswith("yes"):
        return _header(mail, "X-Spam-Status", matched="Yes", code="spam-status")
    report = mail.header("X-Forefront-Antispam-Report")
    if re.search(r"(?:^|;)\s*SFV:SPM\s*(?:;|$)", report, re.IGNORECASE):
        return _header(
            mail, "X-Forefront-Antispam-Report", matched="SFV:SPM", code="forefront-spam"
        )
    return None


# -- auto-replies (AR-2, AR-8, AR-9, DET-2) ---------------------------------------------------


def is_own_address(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    # AR-9: mail from our own mailbox is our ack (or its bounce) coming back: a loop.
    for key in _sender_keys(mail):
        if key in inputs.own_addresses:
            return Reason("own-address", "sender", key)
    return None


def is_auto_submitted(mail: ParsedMail, _: KindInputs) -> Reason | None:
    for value in mail.header_all("Auto-Submitted"):
        first_word = re.split(r"[;(]", value, maxsplit=1)[0].strip().lower()
        if first_word and first_word != "no":  # RFC 3834 §5: anything but "no" is automatic
            return Reason("auto-submitted", "header", f"Auto-Submitted: {value.strip()}")
    return None


def is_exchange_rule_reply(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # DET-2: the pair marks an Exchange inbox-rule or OOF reply. X-Auto-Response-Suppress alone
    # is a request, not evidence: Exchange stamps it on human mail sent via distribution groups
    # (AR-6).
    if mail.has_header("X-Auto-Response-Suppress") and mail.has_header(
        "X-MS-Exchange-Inbox-Rules-Loop"
    ):
        return _header(mail, "X-MS-Exchange-Inbox-Rules-Loop", code="exchange-inbox-rule")
    return None


_MARKERS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
    "X-Autogenerated",
    "X-Amazon-Auto-Reply",
    "X-Loop",
)


def has_autoreply_marker(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    # AR-8: vendor markers, collected by multi_mail, RT, Zammad and ezmlm-weed.
    if _is_allowlisted(mail, inputs):
        return None
    for name in _MARKERS:
        if mail.has_header(name):
            return _header(mail, name, code="autoreply-marker")
    if mail.header("X-FC-MachineGenerated").strip().lower() == "true":
        return _header(mail, "X-FC-MachineGenerated", code="autoreply-marker")
    if "autoresponder" in mail.header("X-POST-MessageClass").lower():
        return _header(mail, "X-POST-MessageClass", code="autoreply-marker")
    if any(value.strip().lower() == "autoresponder" for value in mail.header_all("Delivered-To")):
        return _header(mail, "Delivered-To", matched="Autoresponder", code="autoreply-marker")
    return None


def _precedence(mail: ParsedMail) -> tuple[str, str]:
    for name in ("Precedence", "X-Precedence"):
        for value in mail.header_all(name):
            return name, value.strip().lower()
    return "", ""


def is_precedence_auto_reply(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    name, value = _precedence(mail)
    if value == "auto_reply" and not _is_allowlisted(mail, inputs):
        return _header(mail, name, matched=value, code="precedence")
    return None


# -- the null sender (AR-1) ---------------------------------------------------------------------


def has_null_sender(mail: ParsedMail, _: KindInputs) -> Reason | None:
    if mail.return_path == "":  # "<>": only machines send from the null sender (RFC 5321 §4.5.5)
        return Reason("null-return-path", "header", "Return-Path: <>")
    return None


# -- bulk (AR-3, AR-4, AR-5, AR-8) --------------------------------------------------------------

_LIST_HEADERS = (
    "List-Id",
    "List-Unsubscribe",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Owner",
    "List-Archive",
    "Mailing-List",
    "X-Mailing-List",
)


def is_precedence_bulk(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    name, value = _precedence(mail)
    if value in ("bulk", "junk", "list") and not _is_allowlisted(mail, inputs):
        return _header(mail, name, matched=value, code="precedence")
    return None


def is_list_mail(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    if _is_allowlisted(mail, inputs):
        return None
    for name in _LIST_HEADERS:
        if mail.has_header(name):
            return _header(mail, name, code="list-header")
    return None


def has_feedback_id(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    # Feedback-ID is set by bulk senders (Gmail's sender guidelines) for complaint statistics.
    if mail.has_header("Feedback-ID") and not _is_allowlisted(mail, inputs):
        return _header(mail, "Feedback-ID", code="feedback-id")
    return None


# AR-5: list software (-request, owner-, LISTSERV, majordomo) and notification senders.
def is_system_bulk_sender(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
    if _is_allowlisted(mail, inputs) or _relays_for_a_person(mail):
        return None
    for key in _sender_keys(mail):
        if mailboxes.is_list_or_no_reply(key.rpartition("@")[0]):
            return Reason("system-sender", "sender", key)
    return None


def _relays_for_a_person(mail: ParsedMail) -> bool:
    """A web form relaying a resident's message: no-reply sender, the resident in Reply-To.

    Without list headers, Precedence or Auto-Submitted (checked before this one), a Reply-To
    in another domain that is not a system mailbox itself names the person who wrote.
    """
    if mail.sender is None or not mail.reply_to:
        return False
    domain = mail.sender.key.rpartition("@")[2]
    return all(
        "@" in person.addr
        and person.key.rpartition("@")[2] != domain
        and not mailboxes.is_system(person.key.rpartition("@")[0])
        for person in mail.reply_to
    )


OPENING_MAX_TEXT = 600  # characters of new text; a longer message is not a notice
OPENING_LENGTH = 200  # characters at the start that `opening` patterns see

# -- patterns from the rules file (DET-7), the last resort -----------------------------


def _pattern_check(kind: Kind) -> Check:
    def matches_pattern(mail: ParsedMail, inputs: KindInputs) -> Reason | None:
        patterns = [p for p in inputs.rules.kind_patterns if p.kind is kind]
        subject = fold(mail.subject)
        for pattern in patterns:
            if any(regex.search(subject) for regex in pattern.subject):
                return Reason(pattern.id, "subject", mail.subject.strip())
        # Only the kinds with opening patterns (auto-replies) read the text at all.
        opening = _opening(mail) if any(p.opening for p in patterns) else ""
        for pattern in patterns if opening else ():
            found = next((m for r in pattern.opening if (m := r.search(opening))), None)
            if found:
                return Reason(pattern.id, "body", found.group(0))
        return None

    matches_pattern.__name__ = f"matches_{kind.value}_pattern"
    return matches_pattern


def _opening(mail: ParsedMail) -> str:
    """The start of a short message's new text, folded, where an automatic notice shows.

    DET-8 warns against classifying on the body; a notice such as "Dit is een automatisch
    bericht" opening a few lines is the one exception: an absence reply without headers
    shows itself nowhere else. A longer text is a person writing, whatever its first words.
    """
    text = mail.text.strip()
    if not text or len(text) > OPENING_MAX_TEXT:
        return ""
    return fold(" ".join(text[:OPENING_LENGTH].split()))


# -- nothing to read ------------------------------------------------------------------------------


def has_unreadable_text(mail: ParsedMail, _: KindInputs) -> Reason | None:
    # Decoded binary cannot be a suggestion, and a null sender on it proves nothing: it goes to
    # the quarantine, where staff see the raw bytes.
    if UNREADABLE_DEFECT not in mail.defects:
        return None
    return Reason("unreadable-text", "body", "")


# -- nothing new to read ---------------------------------------------------------------------------


def is_empty(mail: ParsedMail, _: KindInputs) -> Reason | None:
    if mail.text.strip() or any(not part.is_inline for part in mail.attachments):
        return None
    return Reason("no-text", "body", "")


# Order is priority: certain structural evidence first, then headers, then the subject (DET-1).
KIND_CHECKS: tuple[KindCheck, ...] = (
    KindCheck(is_delivery_notification, Kind.RECEIPT),
    KindCheck(is_delivery_report, Kind.BOUNCE),
    KindCheck(has_delivery_status_part, Kind.BOUNCE),
    KindCheck(is_exchange_ndr, Kind.BOUNCE),
    KindCheck(has_failed_recipients, Kind.BOUNCE),
    KindCheck(is_feedback_report, Kind.BOUNCE),
    KindCheck(is_read_receipt, Kind.RECEIPT),
    KindCheck(is_other_report, Kind.BOUNCE),
    KindCheck(is_system_bounce_sender, Kind.BOUNCE),
    KindCheck(has_unreadable_text, Kind.UNPARSEABLE),
    KindCheck(is_own_address, Kind.AUTO_REPLY),
    KindCheck(is_flagged_spam, Kind.SPAM),
    KindCheck(is_auto_submitted, Kind.AUTO_REPLY, generic=True),
    KindCheck(is_exchange_rule_reply, Kind.AUTO_REPLY),
    KindCheck(has_autoreply_marker, Kind.AUTO_REPLY),
    KindCheck(is_precedence_auto_reply, Kind.AUTO_REPLY),
    KindCheck(has_null_sender, Kind.BOUNCE, generic=True),
    KindCheck(is_precedence_bulk, Kind.BULK),
    KindCheck(is_list_mail, Kind.BULK),
    KindCheck(has_feedback_id, Kind.BULK),
    KindCheck(is_system_bulk_sender, Kind.BULK),
    KindCheck(_pattern_check(Kind.BOUNCE), Kind.BOUNCE),
    KindCheck(_pattern_check(Kind.RECEIPT), Kind.RECEIPT),
    KindCheck(_pattern_check(Kind.AUTO_REPLY), Kind.AUTO_REPLY),
    KindCheck(_pattern_check(Kind.BULK), Kind.BULK),
    KindCheck(_pattern_check(Kind.SPAM), Kind.SPAM),
    KindCheck(is_empty, Kind.EMPTY),
)

_SPECIFIC_FOR_GENERIC: tuple[Kind, ...] = (Kind.BOUNCE, Kind.AUTO_REPLY, Kind.RECEIPT)


def detect_kind(mail: ParsedMail, inputs: KindInputs) -> tuple[Kind, tuple[Reason, ...]]:
    """The kind of `mail` and every reason found, the deciding one first; suggestion if none.

    Never reads the body (DET-8): only structure, headers, sender and subject.
    """
    hits = [(row, reason) for row in KIND_CHECKS if (reason := row.check(mail, inputs))]
    if not hits:
        return Kind.SUGGESTION, ()
    decide = 0
    first, first_reason = hits[0]
    if first.generic:
        specific = _SPECIFIC_FOR_GENERIC
        if "auto-generated" in first_reason.matched.lower():
            # A notification sent to every subscriber (Auto-Submitted: auto-generated with
            # Precedence: bulk or list headers) is bulk, not a reply to anyone.
            specific = (*specific, Kind.BULK)
        decide = next(
            (
                n
                for n, (row, _) in enumerate(hits)
                if not row.generic and row.kind in specific and row.kind is not first.kind
            ),
            0,
        )
    row, reason = hits[decide]
    others = tuple(r for n, (_, r) in enumerate(hits) if n != decide)
    return row.kind, (reason, *others)
