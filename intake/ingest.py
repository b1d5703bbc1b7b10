"""One poll cycle: source → parse → triage → link → store → advance the mailbox position."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake import acks, links
from intake.analysis import Analysed, TemplateRender, analyse, build_ack, quarantine_verdict
from intake.config import Settings
from intake.errors import ConfigError, SourceError
from intake.parsing.parsed import ParsedMail
from intake.rendering import default_templates_dir
from intake.sources import Position, RawMail, Source, open_source
from intake.store import outbox_rows, queries
from intake.store.db import transaction
from intake.store.models import AttachmentRecord, MailboxState, Message, SourceItem, ThemeMatch
from intake.triage import TriageContext
from intake.triage.rules import Rules
from intake.triage.verdict import Kind

log = logging.getLogger(__name__)

# Subject prefixes of a forward (en, nl, de, fr clients).
_FORWARD = re.compile(r"^\s*(fw|fwd|doorst|wg|tr)\s*:", re.IGNORECASE)
# A reply or forward with at most this many words of its own repeats what it quotes; a
# follow-up that adds to a suggestion says more (the thread mail in tests/mail has 35-42 words).
COVERING_NOTE_WORDS = 25
# Messages analysed before one commit: large enough to amortise the transaction, small enough
# that a crash repeats little work and memory stays bounded.
STORE_BATCH = 50


@dataclass
class PollSummary:
    fetched: int = 0
    stored: int = 0
    known: int = 0
    quarantined: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    # Seconds spent per stage: fetch, analyse (parse + triage), store; with a pool of parser
    # processes also wait (the store waiting for them), and analyse is their time together.
    seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"fetched {self.fetched}, stored {self.stored}, already known {self.known}, "
            f"quarantined {self.quarantined}"
        )


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Everything one poll needs besides the mail: rules, deadline, acknowledgement policy."""

    rules: Rules
    context: TriageContext
    ack_policy: acks.AckPolicy
    ack_settings: acks.AckSettings
    render: acks.Render
    clock: Callable[[], datetime]


class Analyser(Protocol):
    """Turns fetched mail into analysed mail, in order: here, or in a pool of processes."""

    def analyse_all(
        self,
        raws: Iterable[RawMail],
        rules: Rules,
        context: TriageContext,
        seconds: dict[str, float],
    ) -> Generator[Analysed, None, None]:
        """Each message of `raws` analysed, in the same order; adds to `seconds` per stage."""
        ...

    def close(self) -> None:
        """Stop any processes it started."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class InProcessAnalyser:
    """Analyses each message in the polling process, as it is fetched."""

    def analyse_all(
        self,
        raws: Iterable[RawMail],
        rules: Rules,
        context: TriageContext,
        seconds: dict[str, float],
    ) -> Generator[Analysed, None, None]:
        mails = iter(raws)
        while True:
            began = time.perf_counter()
            raw = next(mails, None)
            fetched = time.perf_counter()
            seconds["fetch"] = seconds.get("fetch", 0.0) + fetched - began
            if raw is None:
                return
            item = analyse(raw, rules, context)
            seconds["analyse"] = seconds.get("analyse", 0.0) + time.perf_counter() - fetched
            yield item

    def close(self) -> None:
        """Nothing to stop."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def pipeline_for(
    settings: Settings, rules: Rules, clock: Callable[[], datetime] = _utcnow
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


def poll_once(
    settings: Settings,
    engine: Engine,
    rules: Rules,
    *,
    clock: Callable[[], datetime] = _utcnow,
    progress: Callable[[PollSummary], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    source: Source | None = None,
    analyser: Analyser | None = None,
) -> PollSummary:
    """Fetch every new message, store each exactly once, and advance the mailbox position.

    Idempotent: the position only moves past committed messages, and a message already stored
    (same bytes, or same Message-ID and body) is recorded as known, never stored twice.
    `analyser` parses and triages (default: in this process, message by message); the store
    takes its results in mailbox order either way.
    """
    own_source = source is None
    source = source or open_source(settings.mailbox, settings.mailbox_password)
    summary = PollSummary()
    pipeline = pipeline_for(settings, rules, clock)
    try:
        with transaction(engine) as session:
            state = queries.mailbox_state(session, source.name)
            state.last_poll_at = datetime.now(UTC)
            position = Position(
                uidvalidity=state.uidvalidity,
                last_uid=state.last_uid,
                known_keys=_known_keys(session, source.name),
            )
        batch: list[Analysed] = []
        analysed = (analyser or InProcessAnalyser()).analyse_all(
            source.fetch_new(position), rules, pipeline.context, summary.seconds
        )
        with closing(analysed):
            for item in analysed:
                summary.fetched += 1
                batch.append(item)
                if len(batch) >= STORE_BATCH:
                    _timed_store(engine, source, batch, summary, pipeline)
                    batch = []
                    if progress:
                        progress(summary)
                if should_stop():
                    break
        _timed_store(engine, source, batch, summary, pipeline)
    except SourceError as exc:
        _record_failure(engine, source.name, str(exc))
        raise
    finally:
        if own_source:
            source.close()
    with transaction(engine) as session:
        state = queries.mailbox_state(session, source.name)
        state.last_success_at = datetime.now(UTC)
        state.last_error = None
    log.info("poll %s: %s", source.name, summary)
    return summary


def _timed_store(
    engine: Engine, source: Source, batch: list[Analysed], summary: PollSummary, pipeline: Pipeline
) -> None:
    began = time.perf_counter()
    store_batch(engine, source, batch, summary, pipeline)
    summary.seconds["store"] = summary.seconds.get("store", 0.0) + time.perf_counter() - began


def _known_keys(session: Session, source_name: str) -> frozenset[str]:
    # Only sources without UIDs need the list of stored keys; IMAP resumes from its UID.
    if source_name.startswith("maildir:"):
        return queries.known_keys(session, source_name)
    return frozenset()


def _record_failure(engine: Engine, source_name: str, error: str) -> None:
    with transaction(engine) as session:
        queries.mailbox_state(session, source_name).last_error = error[:2000]


def store_batch(
    engine: Engine,
    source: Source,
    batch: Iterable[Analysed],
    summary: PollSummary,
    pipeline: Pipeline,
) -> None:
    """Store a batch in one transaction and advance the position with it; then tell the source."""
    batch = list(batch)
    if not batch:
        return
    with transaction(engine) as session:
        state = queries.mailbox_state(session, source.name)
        for item in batch:
            try:
                with session.begin_nested():
                    store_one(session, source.name, item, summary, pipeline)
            except Exception as exc:  # the per-message boundary: keep the bytes, mark, go on
                log.exception("storing <%s> failed; quarantined", item.mail.message_id)
                with session.begin_nested():
                    quarantined = replace(
                        item,
                        mail=replace(item.mail, error=f"store failed: {exc!r}"),
                        verdict=quarantine_verdict(f"store failed: {exc!r}"),
                    )
                    store_one(session, source.name, quarantined, summary, pipeline)
            _advance(state, item.raw.key)
    source.mark_processed([item.raw.key for item in batch])


def _advance(state: MailboxState, key: str) -> None:
    validity, _, uid = key.partition(":")
    if not (validity.isdigit() and uid.isdigit()):
        return  # Maildir keys: the stored keys are the position
    if int(validity) != state.uidvalidity:
        state.uidvalidity, state.last_uid = int(validity), int(uid)
    else:
        state.last_uid = max(state.last_uid, int(uid))


def store_one(
    session: Session, source_name: str, item: Analysed, summary: PollSummary, pipeline: Pipeline
) -> None:
    """Store one analysed message with its acknowledgement decision (and the acknowledgement
    queued, in the same transaction), or record where a known one was seen again."""
    raw, mail, verdict = item.raw, item.mail, item.verdict
    if queries.has_source_item(session, source_name, raw.key):
        summary.known += 1
        return
    existing = queries.find_known(
        session,
        item.sha256,
        mail.message_id,
        item.body_sha256,
        from_addr=mail.sender.key if mail.sender else "",
        subject=mail.subject,
    )
    if existing is not None:
        session.add(SourceItem(source=source_name, key=raw.key, message_pk=existing.id))
        summary.known += 1
        log.info("known <%s> again at %s %s", mail.message_id, source_name, raw.key)
        return
    message = to_message(source_name, item)
    _link(session, message, mail)
    session.add(message)
    session.flush()
    session.add(SourceItem(source=source_name, key=raw.key, message_pk=message.id))
    _decide_ack(session, message, item, pipeline)
    summary.stored += 1
    summary.kinds[message.kind] = summary.kinds.get(message.kind, 0) + 1
    if message.kind == Kind.UNPARSEABLE:
        summary.quarantined += 1
        why = message.parse_error or str(verdict.kind_reason or "")
        log.warning("quarantined <%s>: %s", message.message_id, why)
    reason = verdict.kind_reason
    log.info(
        "stored <%s> id=%s kind=%s reason=%s themes=%s late=%s ack=%s:%s",
        message.message_id,
        message.id,
        message.kind,
        reason.code if reason else "-",
        ",".join(t.theme for t in verdict.themes) or "-",
        message.late,
        message.ack_status,
        message.ack_reason,
    )


def _decide_ack(session: Session, message: Message, item: Analysed, pipeline: Pipeline) -> None:
    """Record should_ack's decision; when it says yes, queue the acknowledgement."""
    mail, verdict, now = item.mail, item.verdict, pipeline.clock()
    refs = links.thread_refs(mail.in_reply_to, mail.references)
    ours = outbox_rows.acks_by_message_id(session, refs)
    if message.kind == Kind.BOUNCE:
        _mark_bounced(session, message, item, pipeline)
    root = outbox_rows.thread_root(session, message)
    recipient = acks.ack_recipient(mail)
    history = acks.AckHistory(
        acks_to_sender_last_24h=outbox_rows.acks_to_recipient_since(
            session, recipient, now - timedelta(hours=24)
        )
        if recipient
        else 0,
        acks_in_thread=outbox_rows.acks_in_thread(session, root),
        refers_to_our_mail=bool(ours),
    )
    decision = acks.should_ack(mail, verdict, pipeline.ack_policy, history)
    if not decision.send or decision.recipient is None:
        message.ack_status, message.ack_reason = "suppressed", str(decision)
        return
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
        message.ack_status = "suppressed"
        message.ack_reason = f"unbuildable: {exc}"[:500]
        return
    outbox_rows.queue_mail(
        session,
        purpose=outbox_rows.ACK,
        message_id=built.message_id,
        envelope_from=pipeline.ack_settings.from_address,
        recipients=[built.recipient],
        subject=built.subject,
        data=built.data,
        now=now,
        message_pk=message.id,
        thread_root_pk=root,
    )
    message.ack_status, message.ack_reason = "queued", str(decision)


def _mark_bounced(session: Session, message: Message, item: Analysed, pipeline: Pipeline) -> None:
    # AR-23/DET-6: a bounce of our acknowledgement names it in its headers or quotes it.
    domain = pipeline.ack_policy.own_message_id_domain
    mentioned = links.thread_refs(item.mail.in_reply_to, item.mail.references)
    mentioned += outbox_rows.our_message_ids_in(item.raw.data, domain)
    for row in outbox_rows.acks_by_message_id(session, mentioned).values():
        if row.status in (outbox_rows.SENT, outbox_rows.QUEUED, outbox_rows.SENDING):
            row.status = outbox_rows.BOUNCED
            row.last_error = f"bounced: see message {message.id} <{message.message_id}>"
            log.warning("acknowledgement <%s> bounced (message %s)", row.message_id, message.id)


def _link(session: Session, message: Message, mail: ParsedMail) -> None:
    refs = links.thread_refs(mail.in_reply_to, mail.references)
    known = queries.ids_by_message_id(session, refs)
    # A reply to one of our acknowledgements belongs to the suggestion it acknowledged.
    for mid, row in outbox_rows.acks_by_message_id(session, refs).items():
        if row.message_pk is not None:
            known.setdefault(mid, row.message_pk)
    thread = links.find_thread(mail.in_reply_to, mail.references, known)
    reasons = []
    if thread is not None:
        message.thread_of_id = thread.target_id
        reasons.append(f"reply: {thread.reason}")
    if message.kind == Kind.SUGGESTION and message.from_addr:
        # The mail a reply answers is a candidate too: a resend "with the forgotten
        # attachment" often replies to the first mail, and is still the same suggestion.
        earlier = [
            links.Earlier(row.id, row.subject, row.text, row.duplicate_of_id)
            for row in queries.earlier_suggestions(session, message.from_addr)
        ]
        resend = links.find_resend(message.subject, message.text, earlier)
        if resend is None and mail.quoted and _is_covering_note(message, mail):
            # Forwarding one's own earlier mail "in case it got lost", or answering it "now with
            # the attachment": the suggestion is in the quoted part, the new text only covers it.
            resend = links.find_resend(message.subject, mail.quoted, earlier)
        if resend is not None:
            message.duplicate_of_id = resend.target_id
            reasons.append(f"resend: {resend.reason}")
    message.link_reason = "; ".join(reasons)


def _is_covering_note(message: Message, mail: ParsedMail) -> bool:
    """A forward, or a reply to a stored message, whose own text is a line or two."""
    if not (_FORWARD.match(message.subject) or message.thread_of_id is not None):
        return False
    return len(mail.text.split()) <= COVERING_NOTE_WORDS


def to_message(source_name: str, item: Analysed) -> Message:
    raw, mail, verdict = item.raw, item.mail, item.verdict
    sender = mail.sender
    return Message(
        message_id=mail.message_id,
        message_id_derived=mail.message_id_derived,
        sha256=item.sha256,
        body_sha256=item.body_sha256,
        raw=raw.data,
        size=raw.size,
        truncated=raw.truncated,
        source=source_name,
        source_key=raw.key,
        received_at=raw.arrived_at,
        date_header=mail.date,
        stored_at=datetime.now(UTC),
        from_addr=sender.key if sender else "",
        from_name=sender.name if sender else "",
        return_path=mail.return_path,
        to_addrs=[a.key for a in mail.to],
        cc_addrs=[a.key for a in mail.cc],
        subject=mail.subject,
        in_reply_to=mail.in_reply_to,
        references=list(mail.references),
        content_language=mail.content_language,
        headers={name: list(values) for name, values in mail.headers.items()},
        language=mail.language,
        text=mail.text,
        quoted=mail.quoted,
        signature=mail.signature,
        disclaimer=mail.disclaimer,
        forwarded_from=mail.forwarded_from.key if mail.forwarded_from else None,
        forwarded_from_name=mail.forwarded_from.name if mail.forwarded_from else None,
        html_only=mail.html_only,
        parse_error=mail.error,
        defects=list(mail.defects),
        kind=str(verdict.kind),
        kind_reasons=[r.as_dict() for r in verdict.kind_reasons],
        primary_theme=verdict.primary_theme,
        late=verdict.late,
        sender_role=str(verdict.role),
        role_reason=str(verdict.role_reason or ""),
        themes=[
            ThemeMatch(
                theme=t.theme, score=t.score, rank=rank, matches=[m.as_dict() for m in t.matches]
            )
            for rank, t in enumerate(verdict.themes)
        ],
        attachments=[
            AttachmentRecord(
                position=n,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
                is_inline=a.is_inline,
            )
            for n, a in enumerate(mail.attachments)
        ],
    )
