"""Store analysed mail: a batch in one transaction, with its links and acknowledgements.

For each message: is it known already (same key, same bytes, same mail through another
alias), which stored message it replies to or resends, whether its sender gets an
acknowledgement (queued in the same transaction), and its rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from intake import acks, links
from intake.analysis import Analysed, TemplateRender, build_ack, quarantine_verdict
from intake.config import Settings
from intake.errors import ConfigError
from intake.parsing.headers import DERIVED_DOMAIN
from intake.parsing.parsed import ParsedMail
from intake.rendering import default_templates_dir
from intake.store import outbox_rows, queries
from intake.store.batch import BatchStore, Incoming
from intake.store.db import describe_error, transaction
from intake.store.models import MailboxState
from intake.triage import TriageContext
from intake.triage.rules import Rules
from intake.triage.verdict import Kind

log = logging.getLogger(__name__)

# Subject prefixes of a forward (en, nl, de, fr clients).
_FORWARD = re.compile(r"^\s*(fw|fwd|doorst|wg|tr)\s*:", re.IGNORECASE)
# A reply or forward with at most this many words of its own repeats what it quotes; a
# follow-up that adds to a suggestion says more (the thread mail in tests/mail has 35-42 words).
COVERING_NOTE_WORDS = 25
MAX_ERROR = 500  # characters of a store error kept with a quarantined message


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Everything one poll needs besides the mail: rules, deadline, acknowledgement policy."""

    rules: Rules
    context: TriageContext
    ack_policy: acks.AckPolicy
    ack_settings: acks.AckSettings
    render: acks.Render
    clock: Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def pipeline_for(
    settings: Settings, rules: Rules, clock: Callable[[], datetime] = utcnow
) -> Pipeline:
    """The pipeline for these settings; raises ConfigError when acknowledgements cannot be built."""
    if settings.ack.enabled and "@" not in settings.outgoing.from_address:
        raise ConfigError(
            "outgoing.from_address: acknowledgements need a sender address "
            "(or set ack.enabled = false)"
        )
    templates = settings.templates_dir or default_templates_dir()
    if not templates.is_dir():
        raise ConfigError(f"consultation.templates: {templates} is not a folder")

    return Pipeline(
        rules=rules,
        context=triage_context(settings),
        ack_policy=acks.AckPolicy.from_settings(settings),
        ack_settings=acks.AckSettings.from_settings(settings),
        render=TemplateRender(Path(templates)),
        clock=clock,
    )


def triage_context(settings: Settings) -> TriageContext:
    return TriageContext(
        received_at=datetime.now(UTC),
        deadline=settings.consultation.deadline_at,
        own_addresses=tuple(a.lower() for a in settings.consultation.addresses),
    )


def store_batch(
    engine: Engine, source_name: str, batch: list[Analysed], pipeline: Pipeline
) -> list[Outcome]:
    """Store a batch in one transaction and advance the mailbox position with it.

    A message the store rejects (a value the database cannot hold) fails the whole batch: it
    is then stored message by message, each in its own transaction, and the one that fails
    again is stored quarantined, with its bytes. A database that fails (locked, gone) is no
    message's fault: that error is raised, and nothing is quarantined for it.
    """
    if not batch:
        return []
    try:
        outcomes = _store_in_one_transaction(engine, source_name, batch, pipeline)
    except OperationalError:
        raise
    except Exception:
        log.warning("storing a batch of %d failed; storing its messages one at a time", len(batch))
        outcomes = [
            out for item in batch for out in _store_alone(engine, source_name, item, pipeline)
        ]
    for outcome in outcomes:
        outcome.log()
    return outcomes


def _store_alone(
    engine: Engine, source_name: str, item: Analysed, pipeline: Pipeline
) -> list[Outcome]:
    try:
        return _store_in_one_transaction(engine, source_name, [item], pipeline)
    except OperationalError:
        raise
    except Exception as exc:  # the per-message boundary: keep the bytes, mark, go on
        error = f"store failed: {describe_error(exc)}"[:MAX_ERROR]
        log.error("storing <%s> failed; quarantined: %s", item.mail.message_id, error)
        return _store_in_one_transaction(engine, source_name, [bare(item, error)], pipeline)


def bare(item: Analysed, error: str) -> Analysed:
    """`item` as its bytes, digests and `error` only, quarantined: what every database holds.

    What the store refused is somewhere in what the parser read, so none of that is kept;
    staff read the message from its bytes (`intake show --raw`).
    """
    mail = ParsedMail(
        message_id=f"unstorable-{item.sha256[:32]}@{DERIVED_DOMAIN}",
        message_id_derived=True,
        sender=None,
        to=(),
        cc=(),
        reply_to=(),
        return_path=None,
        subject="",
        date=None,
        in_reply_to=None,
        references=(),
        content_language=None,
        headers={},
        content_type="",
        part_types=(),
        text="",
        error=error,
    )
    return replace(item, mail=mail, verdict=quarantine_verdict(error), ack=None)


def _store_in_one_transaction(
    engine: Engine, source_name: str, batch: list[Analysed], pipeline: Pipeline
) -> list[Outcome]:
    now = pipeline.clock()
    with transaction(engine) as session:
        state = queries.mailbox_state(session, source_name)
        incoming = [_incoming(item, pipeline) for item in batch]
        store = BatchStore(
            session.connection(), source_name, incoming, acks_since=now - timedelta(hours=24)
        )
        outcomes = []
        for item, keys in zip(batch, incoming, strict=True):
            outcomes.append(store_one(store, item, keys, pipeline, now))
            _advance(state, item.raw.key)
        store.flush()
    return outcomes


def _advance(state: MailboxState, key: str) -> None:
    validity, _, uid = key.partition(":")
    if not (validity.isdigit() and uid.isdigit()):
        return  # Maildir keys: the stored keys are the position
    if int(validity) != state.uidvalidity:
        state.uidvalidity, state.last_uid = int(validity), int(uid)
    else:
        state.last_uid = max(state.last_uid, int(uid))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What storing one message did: counted and logged once its transaction committed."""

    item: Analysed
    message_pk: int
    stored: bool  # False: a known message, seen again under another key (or the same one)
    ack_status: str = ""
    ack_reason: str = ""

    def log(self) -> None:
        mail, verdict = self.item.mail, self.item.verdict
        if not self.stored:
            if self.message_pk:
                log.info("known <%s> again at %s", mail.message_id, self.item.raw.key)
            return
        kind = str(verdict.kind)
        if verdict.kind == Kind.UNPARSEABLE:
            why = mail.error or str(verdict.kind_reason or "")
            log.warning("quarantined <%s>: %s", mail.message_id, why)
        reason = verdict.kind_reason
        log.info(
            "stored <%s> id=%s kind=%s reason=%s themes=%s late=%s ack=%s:%s",
            mail.message_id,
            self.message_pk,
            kind,
            reason.code if reason else "-",
            ",".join(t.theme for t in verdict.themes) or "-",
            verdict.late,
            self.ack_status,
            self.ack_reason,
        )


def _incoming(item: Analysed, pipeline: Pipeline) -> Incoming:
    mail = item.mail
    refs = links.thread_refs(mail.in_reply_to, mail.references)
    if item.verdict.kind == Kind.BOUNCE:
        refs += outbox_rows.our_message_ids_in(
            item.raw.data, pipeline.ack_policy.own_message_id_domain
        )
    return Incoming(
        key=item.raw.key,
        sha256=item.sha256,
        message_id=mail.message_id,
        body_sha256=item.body_sha256,
        from_addr=mail.sender.key if mail.sender else "",
        subject=mail.subject,
        refs=refs,
        ack_recipient=acks.ack_recipient(mail),
    )


def store_one(
    store: BatchStore, item: Analysed, keys: Incoming, pipeline: Pipeline, now: datetime
) -> Outcome:
    """Store one analysed message with its acknowledgement decision (and the acknowledgement
    queued, in the same transaction), or record where a known one was seen again."""
    if store.has_key(item.raw.key):
        return Outcome(item, 0, stored=False)
    existing = store.known(keys)
    if existing is not None:
        store.add_source_item(item.raw.key, existing)
        return Outcome(item, existing, stored=False)
    row = message_row(store.source, item)
    _link(store, row, item.mail)
    row["ack_status"], row["ack_reason"], ack = _decide_ack(store, row, item, pipeline, now)
    pk = store.add_message(row, item.raw.data, theme_rows(item), attachment_rows(item))
    store.add_source_item(item.raw.key, pk)
    if ack is not None:
        store.queue_ack(
            message_id=ack.message_id,
            envelope_from=pipeline.ack_settings.from_address,
            recipient=ack.recipient,
            subject=ack.subject,
            data=ack.data,
            now=now,
            message_pk=pk,
            thread_root_pk=store.thread_root(pk),
        )
    if item.verdict.kind == Kind.BOUNCE:
        _mark_bounced(store, pk, item, pipeline)
    return Outcome(
        item, pk, stored=True, ack_status=row["ack_status"], ack_reason=row["ack_reason"]
    )


def _decide_ack(
    store: BatchStore, row: dict[str, Any], item: Analysed, pipeline: Pipeline, now: datetime
) -> tuple[str, str, acks.BuiltMail | None]:
    """should_ack's decision (status, reason) and, when it says yes, the acknowledgement."""
    mail, verdict = item.mail, item.verdict
    refs = links.thread_refs(mail.in_reply_to, mail.references)
    recipient = acks.ack_recipient(mail)
    parent = row["thread_of_id"]
    history = acks.AckHistory(
        acks_to_sender_last_24h=store.acks_to_recipient(recipient) if recipient else 0,
        # A message that starts a thread has no acknowledgements in it yet.
        acks_in_thread=store.acks_in_thread(store.thread_root(parent)) if parent else 0,
        refers_to_our_mail=bool(store.acks_by_message_id(refs)),
    )
    decision = acks.should_ack(mail, verdict, pipeline.ack_policy, history)
    if not decision.send or decision.recipient is None:
        return "suppressed", str(decision), None
    try:
        built = item.ack
        if built is None or built.recipient != decision.recipient:
            built = build_ack(
                item,
                pipeline.rules,
                decision.recipient,
                settings=pipeline.ack_settings,
                render=pipeline.render,
                now=now,
            )
    except ValueError as exc:
        # A sender name or address no mail header can carry (the email package's header
        # defects are ValueErrors): the suggestion is stored as it is, only unacknowledged.
        log.warning("no acknowledgement for <%s>: %s", mail.message_id, exc)
        return "suppressed", f"unbuildable: {exc}"[:500], None
    return "queued", str(decision), built


def _mark_bounced(store: BatchStore, pk: int, item: Analysed, pipeline: Pipeline) -> None:
    # AR-23/DET-6: a bounce of our acknowledgement names it in its headers or quotes it.
    domain = pipeline.ack_policy.own_message_id_domain
    mentioned = links.thread_refs(item.mail.in_reply_to, item.mail.references)
    mentioned += outbox_rows.our_message_ids_in(item.raw.data, domain)
    for ack in store.acks_by_message_id(mentioned).values():
        if ack.status in (outbox_rows.SENT, outbox_rows.QUEUED, outbox_rows.SENDING):
            error = f"bounced: see message {pk} <{item.mail.message_id}>"
            store.set_status(ack, outbox_rows.BOUNCED, error)
            log.warning("acknowledgement <%s> bounced (message %s)", ack.message_id, pk)


def _link(store: BatchStore, row: dict[str, Any], mail: ParsedMail) -> None:
    refs = links.thread_refs(mail.in_reply_to, mail.references)
    known = store.ids_by_message_id(refs)
    # A reply to one of our acknowledgements belongs to the suggestion it acknowledged.
    for mid, ack in store.acks_by_message_id(refs).items():
        if ack.message_pk is not None:
            known.setdefault(mid, ack.message_pk)
    thread = links.find_thread(mail.in_reply_to, mail.references, known)
    reasons = []
    if thread is not None:
        row["thread_of_id"] = thread.target_id
        reasons.append(f"reply: {thread.reason}")
    if row["kind"] == Kind.SUGGESTION and row["from_addr"]:
        # The mail a reply answers is a candidate too: a resend "with the forgotten
        # attachment" often replies to the first mail, and is still the same suggestion.
        earlier = [
            links.Earlier(e.id, e.subject, e.text, e.duplicate_of_id)
            for e in store.earlier_suggestions(row["from_addr"])
        ]
        resend = links.find_resend(row["subject"], row["text"], earlier)
        if resend is None and mail.quoted and _is_covering_note(row, mail):
            # Forwarding one's own earlier mail "in case it got lost", or answering it "now with
            # the attachment": the suggestion is in the quoted part, the new text only covers it.
            resend = links.find_resend(row["subject"], mail.quoted, earlier)
        if resend is not None:
            row["duplicate_of_id"] = resend.target_id
            reasons.append(f"resend: {resend.reason}")
    row["link_reason"] = "; ".join(reasons)


def _is_covering_note(row: dict[str, Any], mail: ParsedMail) -> bool:
    """A forward, or a reply to a stored message, whose own text is a line or two."""
    if not (_FORWARD.match(row["subject"]) or row["thread_of_id"] is not None):
        return False
    return len(mail.text.split()) <= COVERING_NOTE_WORDS


def message_row(source_name: str, item: Analysed) -> dict[str, Any]:
    """The `messages` row of an analysed message, before linking and the ack decision."""
    raw, mail, verdict = item.raw, item.mail, item.verdict
    sender = mail.sender
    return _storable(
        {
            "message_id": mail.message_id,
            "message_id_derived": mail.message_id_derived,
            "sha256": item.sha256,
            "body_sha256": item.body_sha256,
            "size": raw.size,
            "truncated": raw.truncated,
            "source": source_name,
            "source_key": raw.key,
            "received_at": raw.arrived_at,
            "date_header": mail.date,
            "stored_at": datetime.now(UTC),
            "from_addr": sender.key if sender else "",
            "from_name": sender.name if sender else "",
            "return_path": mail.return_path,
            "to_addrs": [a.key for a in mail.to],
            "cc_addrs": [a.key for a in mail.cc],
            "subject": mail.subject,
            "in_reply_to": mail.in_reply_to,
            "references": list(mail.references),
            "content_language": mail.content_language,
            "headers": {name: list(values) for name, values in mail.headers.items()},
            "language": mail.language,
            "text": mail.text,
            "quoted": mail.quoted,
            "signature": mail.signature,
            "disclaimer": mail.disclaimer,
            "forwarded_from": mail.forwarded_from.key if mail.forwarded_from else None,
            "forwarded_from_name": mail.forwarded_from.name if mail.forwarded_from else None,
            "html_only": mail.html_only,
            "parse_error": mail.error,
            "defects": list(mail.defects),
            "reviewed_at": None,
            "kind": str(verdict.kind),
            "kind_reasons": [r.as_dict() for r in verdict.kind_reasons],
            "primary_theme": verdict.primary_theme,
            "late": verdict.late,
            "sender_role": str(verdict.role),
            "role_reason": str(verdict.role_reason or ""),
            "ack_status": None,
            "ack_reason": "",
            "duplicate_of_id": None,
            "thread_of_id": None,
            "link_reason": "",
        }
    )


def theme_rows(item: Analysed) -> list[dict[str, Any]]:
    return [
        {
            "theme": t.theme,
            "score": t.score,
            "rank": rank,
            "matches": [m.as_dict() for m in t.matches],
        }
        for rank, t in enumerate(item.verdict.themes)
    ]


def attachment_rows(item: Analysed) -> list[dict[str, Any]]:
    return [
        _storable(
            {
                "position": n,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "is_inline": a.is_inline,
            }
        )
        for n, a in enumerate(item.mail.attachments)
    ]


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every NUL in its text replaced: PostgreSQL text cannot hold one, and a stray
    NUL in a mail that is otherwise readable text is no reason to quarantine it."""
    for name, value in row.items():
        if isinstance(value, str) and "\x00" in value:
            row[name] = value.replace("\x00", "\ufffd")
    return row
