"""Record each due digest, queue its mail in the outbox, and mark it sent once delivered.

Recording claims the period: the INSERT of the `digests` row (unique on kind and period key)
comes first in the transaction, so a second worker or a restarted one fails on it and builds
nothing (P4). The mail is built and queued in that same transaction, so a period is either
recorded with its mail queued, recorded as empty on purpose, or not recorded at all. The outbox
then sends the mail; its Message-ID was fixed when queued, so a crash while sending repeats
the identical mail at worst.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.config import Settings
from intake.digests.build import RenderedDigest, render_digest
from intake.digests.figures import Span
from intake.digests.mail import FileAttachment, build_digest_mail, digest_recipients
from intake.digests.periods import DAILY, FINAL, FINAL_KEY, Period, due_periods
from intake.digests.spreadsheets import XLSX_TYPE, export_files, suggestion_rows
from intake.store.db import session_factory, transaction
from intake.store.models import DigestRun, OutboxMail
from intake.store.outbox_rows import DIGEST, SENT, queue_mail
from intake.triage.rules import Rules, load_rules

log = logging.getLogger(__name__)

# DigestRun.status: `recorded` without an outbox Message-ID is a period done without a mail.
RECORDED, QUEUED = "recorded", "queued"
CSV_ZIP_BYTES = 5_000_000  # a larger CSV is attached zipped


@dataclass(frozen=True, slots=True)
class History:
    """What the digests table says about earlier digests."""

    last_end: datetime | None  # where the next daily digest starts
    final_recorded: bool


def digest_history(session: Session) -> History:
    last_daily = session.scalar(
        select(func.max(DigestRun.period_end)).where(DigestRun.kind == DAILY)
    )
    final_end = session.scalar(select(DigestRun.period_end).where(DigestRun.kind == FINAL))
    ends = [end for end in (last_daily, final_end) if end is not None]
    return History(last_end=max(ends) if ends else None, final_recorded=final_end is not None)


def send_due_digests(
    settings: Settings, engine: Engine, now: datetime, *, force_final: bool = False
) -> list[str]:
    """The digests recorded and queued now, as "daily 2019-02-05" or "final"; idempotent.

    Periods that are due but empty are recorded without a mail (when `digest.send_empty` is
    false, or after the final digest) and not listed. `force_final` records the final digest
    now even before it is due (once: never when it was recorded already). Raises ConfigError
    when something is due and `digest.recipients` is empty.
    """
    with session_factory(engine)() as session:
        history = digest_history(session)
    due = due_periods(now, history.last_end, history.final_recorded, settings)
    if force_final and not history.final_recorded and not any(p.kind == FINAL for p in due):
        due = [Period(kind=FINAL, key=FINAL_KEY, start=None, end=now)]
    if not due:
        return []
    digest_recipients(settings)  # fail before recording anything
    rules = load_rules(settings.rules_path)
    queued = []
    for period in due:
        since = history.last_end if period.kind == FINAL else period.start
        outcome = record_period(settings, engine, rules, period, since=since, now=now)
        if outcome == QUEUED:
            queued.append(f"{period.kind} {period.key}" if period.kind == DAILY else FINAL)
    return queued


def record_period(
    settings: Settings,
    engine: Engine,
    rules: Rules,
    period: Period,
    *,
    since: datetime | None,
    now: datetime,
) -> str | None:
    """Record `period` and queue its digest in one transaction: `queued`, `recorded` (empty,
    no mail) or None when the period was recorded already (by another worker or an earlier run)."""
    span = Span(start=period.start, end=period.end, since=since)
    try:
        with transaction(engine) as session:
            run = DigestRun(
                kind=period.kind,
                period_key=period.key,
                period_start=period.start,
                period_end=period.end,
                status=RECORDED,
                created_at=now,
            )
            session.add(run)
            session.flush()  # the claim: a unique violation here means someone has it
            final = period.kind == FINAL
            rendered = render_digest(
                session, settings, rules, span, final=final, now=now, after_final=period.after_final
            )
            if not _worth_sending(rendered, period, settings):
                log.info("digest %s %s recorded without mail: nothing new", period.kind, period.key)
                return RECORDED
            attachments = export_attachments(session, settings, span) if final else ()
            built = build_digest_mail(settings, rendered, now=now, attachments=attachments)
            queue_mail(
                session,
                purpose=DIGEST,
                message_id=built.message_id,
                envelope_from=built.envelope_from,
                recipients=built.recipients,
                subject=built.subject,
                data=built.data,
                now=now,
            )
            run.status = QUEUED
            run.outbox_message_id = built.message_id
    except IntegrityError:
        log.info("digest %s %s was recorded already; skipped", period.kind, period.key)
        return None
    log.info(
        "queued digest <%s> kind=%s period=%s suggestions=%d bytes=%d",
        built.message_id,
        period.kind,
        period.key,
        rendered.figures.listed,
        len(built.data),
    )
    return QUEUED


def _worth_sending(rendered: RenderedDigest, period: Period, settings: Settings) -> bool:
    figures = rendered.figures
    if period.kind == FINAL:
        return True  # the final digest always goes out, even for a quiet consultation
    if period.after_final:
        # Only late suggestions or unreadable mail are news once the final digest went out;
        # bounces and out-of-office answers to acknowledgements are not.
        return bool(figures.listed or figures.quarantined)
    return settings.digest.send_empty or not figures.is_empty


def export_attachments(
    session: Session, settings: Settings, span: Span
) -> tuple[FileAttachment, FileAttachment]:
    """The final digest's CSV and XLSX: one row per suggestion in the span.

    Both are written to temporary files first (bounded memory while the rows stream from the
    database), then read back once for the mail. A CSV over `CSV_ZIP_BYTES` is attached as a
    ZIP of it: complete texts of 20,000 suggestions make a CSV of tens of megabytes, which
    mail servers refuse (the XLSX is compressed already).
    """
    tz = settings.consultation.tz
    stamp = span.end.astimezone(tz).strftime("%Y-%m-%d")
    name = f"suggestions-{stamp}"
    with tempfile.TemporaryDirectory(prefix="intake-export-") as folder:
        csv_path, xlsx_path = export_files(suggestion_rows(session, span, tz), Path(folder), name)
        if csv_path.stat().st_size > CSV_ZIP_BYTES:
            zipped = csv_path.with_name(f"{name}.csv.zip")
            with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.write(csv_path, csv_path.name)
            table = FileAttachment(zipped.name, "application", "zip", zipped.read_bytes())
        else:
            table = FileAttachment(
                csv_path.name, "text", "csv", csv_path.read_bytes(), charset="utf-8"
            )
        xlsx_data = xlsx_path.read_bytes()
    maintype, subtype = XLSX_TYPE.split("/")
    return table, FileAttachment(xlsx_path.name, maintype, subtype, xlsx_data)


def mark_sent_digests(engine: Engine) -> int:
    """How many queued digests turned `sent` because their outbox mail was sent; idempotent."""
    with transaction(engine) as session:
        rows = session.execute(
            select(DigestRun.id, OutboxMail.sent_at)
            .join(OutboxMail, OutboxMail.message_id == DigestRun.outbox_message_id)
            .where(DigestRun.status == QUEUED, OutboxMail.status == SENT)
        ).all()
        for run_id, sent_at in rows:
            session.execute(
                update(DigestRun)
                .where(DigestRun.id == run_id, DigestRun.status == QUEUED)
                .values(status=SENT, sent_at=sent_at)
            )
    return len(rows)


def preview_digest(
    settings: Settings,
    engine: Engine,
    *,
    final: bool,
    since: datetime | None,
    now: datetime,
) -> RenderedDigest:
    """The digest as it would be built now, without recording or sending anything.

    The daily preview covers from `since` (default: the end of the last digest) until `now`;
    the final one covers everything. Works without recipients.
    """
    rules = load_rules(settings.rules_path)
    with session_factory(engine)() as session:
        history = digest_history(session)
        if final:
            span = Span(start=None, end=now, since=history.last_end)
        else:
            start = since if since is not None else history.last_end
            span = Span(start=start, end=now, since=start)
        return render_digest(
            session,
            settings,
            rules,
            span,
            final=final,
            now=now,
            after_final=history.final_recorded and not final,
        )
