"""`status --check`: last poll age, digest recipients, outbox failures, quarantine waiting.

Everything is read from the database, so the check works from another process than the worker
(a container HEALTHCHECK, a monitoring script) and needs neither the mailbox nor the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update

from intake.config import Settings
from intake.sources import open_source
from intake.store.db import session_factory, transaction
from intake.store.models import MailboxState, Message, OutboxMail
from intake.store.outbox_rows import FAILED
from intake.triage.verdict import Kind

# How many quarantined messages a report names by id; the count is always complete.
LISTED = 10
# A quarantined message waits for a look until staff release it (`intake quarantine release`).
WAITING = (Message.kind == Kind.UNPARSEABLE, Message.reviewed_at.is_(None))


@dataclass(frozen=True, slots=True)
class HealthReport:
    """ok is False when anything needs a person; `problems` say what and what to do next."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the figures behind the verdict


def check_health(settings: Settings, engine: Engine, now: datetime) -> HealthReport:
    """The health of this intake at `now`: the last good poll of the configured mailbox is
    recent, digests have somewhere to go, no outbox mail failed, and no quarantined message
    waits for a look."""
    tz = settings.consultation.tz
    source = mailbox_name(settings)
    stale_after = timedelta(seconds=settings.worker.stale_poll_seconds)
    problems: list[str] = []
    lines: list[str] = []
    with session_factory(engine)() as session:
        state = session.get(MailboxState, source)
        failed = session.scalar(select(func.count()).where(OutboxMail.status == FAILED)) or 0
        waiting = list(session.scalars(select(Message.id).where(*WAITING).order_by(Message.id)))

    lines.append(f"mailbox: {source}")
    last_success = state.last_success_at if state else None
    # poll_once clears last_error on success: an error here came after the last good poll.
    # One failed poll is no problem yet (the next one may work); a stale mailbox is.
    error = f"; last error: {state.last_error}" if state and state.last_error else ""
    if last_success is None:
        lines.append("  last good poll: never")
        problems.append(f"mailbox {source}: never polled successfully{error}")
    else:
        age = now - last_success
        lines.append(
            f"  last good poll: {last_success.astimezone(tz).isoformat(timespec='seconds')} "
            f"({_duration(age)} ago)"
        )
        if age > stale_after:
            problems.append(
                f"mailbox {source}: last good poll {_duration(age)} ago, longer than "
                f"worker.stale_poll_seconds ({_duration(stale_after)}){error}"
            )
    if error:
        lines.append(f"  {error.removeprefix('; ')}")

    lines.append(f"digest recipients: {len(settings.digest.recipients)}")
    if not settings.digest.recipients:
        problems.append(
            "digest: no recipients, so the daily and final digests cannot be sent;"
            " set [digest] recipients (or INTAKE_DIGEST_RECIPIENTS)"
        )

    lines.append(f"outbox: {failed} failed")
    if failed:
        problems.append(
            f"outbox: {failed} mail(s) failed; see `intake outbox`, then `intake outbox retry`"
        )

    lines.append(f"quarantine: {len(waiting)} waiting for a look")
    if waiting:
        shown = ", ".join(str(pk) for pk in waiting[:LISTED])
        more = f" and {len(waiting) - LISTED} more" if len(waiting) > LISTED else ""
        problems.append(
            f"quarantine: {len(waiting)} unparseable message(s) waiting for a look ({shown}{more});"
            " read each with `intake show ID --raw`, then `intake quarantine release ID`"
        )
    return HealthReport(ok=not problems, problems=problems, lines=lines)


def mailbox_name(settings: Settings) -> str:
    """The name under which the configured mailbox's position and polls are stored."""
    # Opening a source does not connect; the name is all that is used.
    return open_source(settings.mailbox).name


def waiting_messages(engine: Engine) -> list[Message]:
    """Quarantined messages nobody has looked at yet, oldest first."""
    with session_factory(engine)() as session:
        return list(session.scalars(select(Message).where(*WAITING).order_by(Message.id)))


def release_quarantined(engine: Engine, ids: list[int], now: datetime) -> list[int]:
    """The ids of these quarantined messages now marked reviewed (ids that are not quarantined,
    or were reviewed already, are left out); the messages themselves stay stored as they are."""
    with transaction(engine) as session:
        found = list(
            session.scalars(
                select(Message.id).where(
                    Message.id.in_(ids),
                    Message.kind == Kind.UNPARSEABLE,
                    Message.reviewed_at.is_(None),
                )
            )
        )
        if found:
            session.execute(update(Message).where(Message.id.in_(found)).values(reviewed_at=now))
    return sorted(found)


def _duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    if total < 120:
        return f"{total} s"
    if total < 7200:
        return f"{total // 60} min"
    return f"{total // 3600} h {total % 3600 // 60} min"
