"""`intake run`: APScheduler jobs, single-worker DB lock, SIGTERM/SIGINT.

The behaviour lives in plain functions that tests call one step at a time (`run_cycle`,
`poll_job`, `digest_job`, the lock functions); `run` only wires them to a scheduler, the
signal handlers and an Event the main thread waits on (SCHED-8).

Jobs: the poll (every `worker.poll_interval_seconds`, never two at once), each followed by
delivering the outbox; the digest check at `digest.daily_at`, at the final moment and once at
start (catch-up: the digest functions are idempotent), each followed by delivery and marking
the sent digests. With an IMAP mailbox the poll runs in its own thread instead (SCHED-5),
waiting in IDLE between polls when the server offers it (IMAP-11).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import TypeVar
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from intake import digests, ingest, outbox
from intake.config import Settings
from intake.digests.periods import final_time
from intake.errors import IntakeError, SourceError, TransportError
from intake.ingest_pool import PoolAnalyser, analyser_for
from intake.sources import Source, open_source
from intake.sources.imap import ImapSource
from intake.store import queries
from intake.store.db import describe_error, open_database, transaction
from intake.store.models import WorkerLock
from intake.triage.rules import RuleBook

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]

LOCK_NAME = "worker"
# The holder refreshes the lock this often; a lock whose heartbeat is older than LOCK_STALE
# (four missed heartbeats) belongs to a worker that crashed or hangs, and may be taken over.
HEARTBEAT_SECONDS = 30.0
LOCK_STALE = timedelta(minutes=2)
# IMAP-11: re-issue IDLE at least every 10 minutes (Exchange Online drops longer ones).
IDLE_MAX_SECONDS = 600.0
# IMAP-12 back-off inside one poll; the next poll is the worker's own retry, so a dead server
# costs a poll about a second instead of the interactive command's five attempts.
WORKER_IMAP_ATTEMPTS = 2
# How long a stop waits for the poll in hand (one message, then its commit).
STOP_GRACE_SECONDS = 20.0


class LockHeldError(IntakeError):
    """Another live worker holds the lock on this database."""


class LockLostError(IntakeError):
    """The lock was taken over while this worker ran (it stalled longer than LOCK_STALE)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_holder() -> str:
    """A holder token naming this process: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"


# -- the lock -------------------------------------------------------------------------------


def acquire_lock(engine: Engine, holder: str, now: datetime) -> str | None:
    """The previous holder whose stale lock was taken over, or None when the lock was free.

    Raises LockHeldError naming the holder when a live worker (heartbeat within LOCK_STALE)
    has it. Claimed with an INSERT, or a conditional UPDATE of a stale row (P4), so two
    workers starting together cannot both win.
    """
    try:
        with transaction(engine) as session:
            session.add(
                WorkerLock(name=LOCK_NAME, holder=holder, acquired_at=now, heartbeat_at=now)
            )
        return None
    except IntegrityError:
        pass  # the row exists: is it alive?
    with transaction(engine) as session:
        current = session.get(WorkerLock, LOCK_NAME)
        if current is None:  # released in between: start over
            return acquire_lock(engine, holder, now)
        previous, beat = current.holder, current.heartbeat_at
        gone = has_exited(previous)
        stale = [] if gone else [WorkerLock.heartbeat_at < now - LOCK_STALE]
        taken = session.execute(
            update(WorkerLock)
            .where(WorkerLock.name == LOCK_NAME, WorkerLock.holder == previous, *stale)
            .values(holder=holder, acquired_at=now, heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) == 1:
            log.warning(
                "took over the worker lock from %s: %s",
                previous,
                "that process has exited" if gone else f"its last heartbeat was {now - beat} ago",
            )
            return previous
    age = int((now - beat).total_seconds())
    raise LockHeldError(
        f"another worker runs on this database: {previous} (last heartbeat {age} s ago). "
        f"Stop it first; a worker silent for {int(LOCK_STALE.total_seconds())} s is taken over."
    )


def has_exited(holder: str) -> bool:
    """True when `holder` names a process of this host that no longer exists.

    A worker killed (SIGKILL, the OOM killer) and restarted by its supervisor need not wait
    LOCK_STALE for its own lock. Anything uncertain is False and left to the heartbeat: another
    host, a PID that lives (perhaps reused), our own PID (the holder may run in another PID
    namespace under the same host name, as containers with the host's network do).
    """
    match = re.fullmatch(r"(\S+) pid (\d+) \S+", holder)
    if match is None or match[1] != socket.gethostname() or int(match[2]) == os.getpid():
        return False
    try:
        os.kill(int(match[2]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, run by another user
    return False


def heartbeat(engine: Engine, holder: str, now: datetime) -> bool:
    """True when `holder` still holds the lock (its heartbeat is now `now`)."""
    with transaction(engine) as session:
        result = session.execute(
            update(WorkerLock)
            .where(WorkerLock.name == LOCK_NAME, WorkerLock.holder == holder)
            .values(heartbeat_at=now)
        )
        return getattr(result, "rowcount", 0) == 1


def release_lock(engine: Engine, holder: str) -> None:
    """Give the lock up, if `holder` still has it."""
    with transaction(engine) as session:
        session.execute(
            delete(WorkerLock).where(WorkerLock.name == LOCK_NAME, WorkerLock.holder == holder)
        )


# -- one failure, one log line --------------------------------------------------------------


class FailureLog:
    """Logs each distinct failure of a job once, and once more when the job works again.

    A mailbox that is down fails every poll with the same error: one ERROR line says so, not a
    stack trace a minute. An intake error (the message says what to do) is logged without a
    traceback, anything unexpected with one.
    """

    def __init__(self) -> None:
        self._current: dict[str, tuple[str, str]] = {}  # job → (key, text) of its failure
        self._lock = threading.Lock()

    def failed(self, job: str, exc: BaseException) -> bool:
        """True when this failure was logged (it differs from the job's previous one)."""
        text = describe_error(exc)
        # Failures that differ only in a number (attempts, seconds, a count) are the same one.
        key = re.sub(r"\d+", "#", text)
        with self._lock:
            repeated = self._current.get(job, ("", ""))[0] == key
            self._current[job] = (key, text)
        if repeated:
            log.debug("%s failed again: %s", job, text)
            return False
        if isinstance(exc, IntakeError | OperationalError):
            # Expected in production (a server down, the database busy): the message says it.
            log.error("%s failed: %s (retrying; logged once until it changes)", job, text)
        else:
            log.error("%s failed (retrying; logged once until it changes)", job, exc_info=exc)
        return True

    def is_failing(self, job: str) -> bool:
        with self._lock:
            return job in self._current

    def succeeded(self, job: str) -> None:
        with self._lock:
            previous = self._current.pop(job, None)
        if previous is not None:
            log.info("%s works again (it failed with %s)", job, previous[1])


# -- the steps ------------------------------------------------------------------------------


@dataclass
class Worker:
    """What the jobs share: settings, database, rules, the mailbox and the stop flag."""

    settings: Settings
    engine: Engine
    rulebook: RuleBook
    source: Source
    holder: str
    clock: Clock = _utcnow
    stop: threading.Event = field(default_factory=threading.Event)
    failures: FailureLog = field(default_factory=FailureLog)
    # Database work runs one job at a time, whoever starts it (the scheduler, the IDLE loop, a
    # test): SQLite fails a transaction that read before another connection wrote, instead of
    # waiting, and a good message would end up quarantined.
    busy: threading.Lock = field(default_factory=threading.Lock)
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    lock_lost: bool = False
    # `run` gives it the pool of parser processes `worker.parse_processes` asks for.
    analyser: ingest.Analyser = field(default_factory=ingest.InProcessAnalyser)
    _last_beat: float = field(default_factory=time.monotonic)

    def should_stop(self) -> bool:
        """True once stopping. Polls and deliveries ask between two messages, outside any
        transaction, so the lock's heartbeat rides along there during long work."""
        self.keep_alive()
        return self.stop.is_set()

    def keep_alive(self) -> None:
        """Refresh the lock's heartbeat when one is due; stop when another worker took it.

        Only call it from the thread holding `busy`, or after acquiring it.
        """
        if time.monotonic() - self._last_beat < self.heartbeat_seconds:
            return
        self._last_beat = time.monotonic()
        held = _guarded(
            self, "heartbeat", lambda: heartbeat(self.engine, self.holder, self.clock())
        )
        if held is False:
            log.error("the worker lock was taken over by another worker; stopping")
            self.lock_lost = True
            self.stop.set()

    @property
    def waits_in_idle(self) -> bool:
        return isinstance(self.source, ImapSource)


@dataclass
class Cycle:
    """What one cycle did; None for a step that failed (it was logged) or was skipped."""

    poll: ingest.PollSummary | None = None
    digests: list[str] | None = None
    delivery: outbox.DeliverySummary | None = None


def open_source_for_worker(settings: Settings) -> Source:
    """The mailbox, kept open across polls (one IMAP connection, re-opened after a drop)."""
    if settings.mailbox.url.startswith(("imap://", "imaps://")):
        return ImapSource(
            settings.mailbox.url,
            settings.mailbox,
            settings.mailbox_password,
            max_attempts=WORKER_IMAP_ATTEMPTS,
        )
    return open_source(settings.mailbox, settings.mailbox_password)


def start_worker(
    settings: Settings,
    engine: Engine,
    *,
    clock: Clock = _utcnow,
    holder: str | None = None,
    stop: threading.Event | None = None,
) -> Worker:
    """A worker holding the database's lock; raises LockHeldError when another one runs, and
    ConfigError (before taking the lock) when the rules or the mailbox URL are wrong."""
    rulebook = RuleBook(settings.rules_path)
    source = open_source_for_worker(settings)
    holder = holder or new_holder()
    previous = acquire_lock(engine, holder, clock())
    log.info("worker lock taken by %s%s", holder, f" (from stale {previous})" if previous else "")
    return Worker(settings, engine, rulebook, source, holder, clock, stop or threading.Event())


def stop_worker(worker: Worker, *, close_source: bool = True) -> None:
    """Release the lock and close the mailbox."""
    if close_source:
        worker.source.close()
    release_lock(worker.engine, worker.holder)


def poll_mailbox(worker: Worker) -> ingest.PollSummary | None:
    """Fetch and store new mail (stops after the message in hand when asked to stop)."""

    _set_imap_attempts(worker)

    def poll() -> ingest.PollSummary:
        try:
            return ingest.poll_once(
                worker.settings,
                worker.engine,
                worker.rulebook.rules,
                clock=worker.clock,
                should_stop=worker.should_stop,
                source=worker.source,
                analyser=worker.analyser,
            )
        except SourceError:
            raise  # poll_once recorded it in the mailbox state
        except Exception as exc:
            _record_poll_error(worker, exc)
            raise

    return _guarded(worker, "poll", poll)


def queue_digests(worker: Worker) -> list[str] | None:
    """Record and queue the digests due now (idempotent: each period once)."""
    return _guarded(
        worker,
        "digest",
        lambda: digests.send_due_digests(worker.settings, worker.engine, worker.clock()),
    )


def deliver_outbox(worker: Worker) -> outbox.DeliverySummary | None:
    """Send what is due, then mark the digests whose mail went out."""

    def deliver() -> outbox.DeliverySummary:
        summary = outbox.deliver_due(
            worker.settings, worker.engine, clock=worker.clock, should_stop=worker.should_stop
        )
        digests.mark_sent_digests(worker.engine)
        if summary.unreachable:
            # A relay that is down fails every round alike: one ERROR line until it changes.
            if summary.sent or summary.failed:
                log.info("outbox: %s", summary)
            raise TransportError(summary.unreachable, permanent=False, connection=True)
        if summary.sent or summary.failed or summary.retrying:
            log.info("outbox: %s", summary)
        return summary

    return _guarded(worker, "delivery", deliver)


def poll_job(worker: Worker) -> Cycle:
    """The poll job: poll the mailbox, then deliver the outbox; skipped while a poll runs."""
    if not worker.busy.acquire(blocking=False):
        log.debug("a poll is still running; this one is skipped")
        return Cycle()
    try:
        if worker.should_stop():
            return Cycle()
        summary = poll_mailbox(worker)
        return Cycle(poll=summary, delivery=deliver_outbox(worker))
    finally:
        worker.busy.release()


def digest_job(worker: Worker) -> Cycle:
    """The digest job: queue the due digests, deliver them, mark them sent (waits for a poll
    in hand to finish first)."""
    with worker.busy:
        if worker.should_stop():
            return Cycle()
        queued = queue_digests(worker)
        if queued:
            log.info("digests queued: %s", ", ".join(queued))
        return Cycle(digests=queued, delivery=deliver_outbox(worker))


def run_cycle(worker: Worker) -> Cycle:
    """One full cycle, as the worker runs it at start: poll, digest check (catching up on
    digests missed while it was down), delivery."""
    with worker.busy:
        if worker.should_stop():
            return Cycle()
        summary = poll_mailbox(worker)
        queued = None if worker.should_stop() else queue_digests(worker)
        if queued:
            log.info("digests queued: %s", ", ".join(queued))
        return Cycle(poll=summary, digests=queued, delivery=deliver_outbox(worker))


def mailbox_loop(worker: Worker) -> None:
    """Poll, then wait for new mail until the next poll, until stopped.

    With IMAP the wait is IDLE, re-issued at least every 10 minutes (IMAP-11) and cut short
    when the server signals new mail; IDLE is only a hint, so a poll runs after every signal
    and at every interval. Without IDLE, or after a failure, the wait is the poll interval.
    """
    first = True
    while not worker.stop.is_set():
        # The first round is the start cycle: poll, then catch up on missed digests.
        if first:
            run_cycle(worker)
            first = False
        else:
            poll_job(worker)
        wait_for_mail(worker)


def wait_for_mail(worker: Worker) -> None:
    """Return when the server signals new mail, the poll interval has passed, or on stop."""
    interval = worker.settings.worker.poll_interval_seconds
    source = worker.source
    started = time.monotonic()

    def idle(seconds: float) -> bool | None:
        _set_imap_attempts(worker)
        return source.idle_wait(seconds) if isinstance(source, ImapSource) else None

    # `stop.is_set()`, not `should_stop()`, here: the heartbeat write belongs to whoever holds
    # `busy`. An IDLE failure is a poll failure (the same connection); an IDLE success says
    # nothing about the poll, which may fail for other reasons.
    while not worker.stop.is_set():
        left = interval - (time.monotonic() - started)
        if left <= 0:
            return
        seconds = min(left, IDLE_MAX_SECONDS)
        signalled = _guarded(worker, "poll", partial(idle, seconds), clears=False)
        if signalled:
            return
        if signalled is None:  # no IDLE, or it failed: wait out the interval
            worker.stop.wait(left)
            return
        # A quiet IDLE round ended: IDLE again for what is left of the interval.


def _guarded(worker: Worker, job: str, action: Callable[[], T], *, clears: bool = True) -> T | None:
    try:
        result = action()
    except Exception as exc:  # the job boundary: log once, keep the worker running
        worker.failures.failed(job, exc)
        return None
    if clears:
        worker.failures.succeeded(job)
    return result


def _set_imap_attempts(worker: Worker) -> None:
    # While the mailbox is known to be down, one attempt per poll: the retries' warnings would
    # otherwise repeat every poll what the one ERROR line already said.
    if isinstance(worker.source, ImapSource):
        failing = worker.failures.is_failing("poll")
        worker.source.max_attempts = 1 if failing else WORKER_IMAP_ATTEMPTS


def _record_poll_error(worker: Worker, exc: Exception) -> None:
    try:
        with transaction(worker.engine) as session:
            state = queries.mailbox_state(session, worker.source.name)
            state.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    except SQLAlchemyError:
        log.debug("could not record the poll error", exc_info=True)


# -- wiring ---------------------------------------------------------------------------------


def build_scheduler(worker: Worker) -> BackgroundScheduler:
    """The scheduler with the worker's jobs, not started.

    Explicit time zone (SCHED-2): the default is the host's, UTC in most containers. The daily
    digest may run up to an hour late (a restart, a busy executor); the final one however late
    (SCHED-4); the catch-up check at start covers anything missed while the worker was down.
    """
    settings = worker.settings
    tz = ZoneInfo(settings.consultation.timezone)
    scheduler = BackgroundScheduler(timezone=tz)
    now = worker.clock()
    if not worker.waits_in_idle:
        interval = settings.worker.poll_interval_seconds
        scheduler.add_job(
            poll_job,
            IntervalTrigger(seconds=interval, timezone=tz),
            args=[worker],
            id="poll",
            name="poll",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
        )
    daily = settings.digest.daily_at
    scheduler.add_job(
        digest_job,
        CronTrigger(hour=daily.hour, minute=daily.minute, second=daily.second, timezone=tz),
        args=[worker],
        id="digest-daily",
        name="daily digest",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    final = final_time(settings)
    if final > now:
        scheduler.add_job(
            digest_job,
            DateTrigger(run_date=final, timezone=tz),
            args=[worker],
            id="digest-final",
            name="final digest",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    if worker.waits_in_idle:
        return scheduler  # the mailbox thread runs the start cycle (SCHED-5)
    scheduler.add_job(
        run_cycle,
        DateTrigger(run_date=now, timezone=tz),
        args=[worker],
        id="start",
        name="first cycle with digest catch-up",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    return scheduler


def run(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> None:
    """Run the worker until SIGTERM, SIGINT or `stop` is set; returns after a clean stop.

    Raises LockHeldError when another worker runs on the database, LockLostError when one took
    the lock over meanwhile (this worker stops without touching the database further).
    """
    stop = stop or threading.Event()
    with _signals_set(stop):
        engine = open_database(settings.database.url)
        try:
            worker = start_worker(settings, engine, stop=stop)
            worker.heartbeat_seconds = heartbeat_seconds
            # Started before the first poll, so that no poll after an IDLE wake-up waits for
            # processes to start (issue 6).
            with analyser_for(settings) as worker.analyser:
                if isinstance(worker.analyser, PoolAnalyser):
                    worker.analyser.start()
                lost = _run_started(worker)
        finally:
            engine.dispose()
    if lost:
        raise LockLostError("the worker lock was taken over by another worker; this one stopped")
    log.info("worker stopped")


def _run_started(worker: Worker) -> bool:
    """Run the jobs until stopped; True when the lock was lost meanwhile."""
    settings = worker.settings
    loop: threading.Thread | None = None
    scheduler = build_scheduler(worker)
    try:
        scheduler.start()
        if worker.waits_in_idle:
            loop = threading.Thread(
                target=mailbox_loop, args=(worker,), name="intake-mailbox", daemon=True
            )
            loop.start()
        log.info(
            "worker running: mailbox %s, poll every %s s%s, daily digest at %s %s",
            worker.source.name,
            settings.worker.poll_interval_seconds,
            " (IDLE between polls when offered)" if loop else "",
            settings.digest.daily_at.strftime("%H:%M"),
            settings.consultation.timezone,
        )
        # Between jobs the main thread keeps the lock alive; during one, the job does.
        while not worker.stop.wait(min(5.0, worker.heartbeat_seconds)):
            if worker.busy.acquire(blocking=False):
                try:
                    worker.keep_alive()
                finally:
                    worker.busy.release()
    finally:
        worker.stop.set()
        log.info("stopping: finishing the work in hand")
        scheduler.shutdown(wait=True)
        # The poll in hand stops after its current message and commits; a thread waiting in
        # IDLE holds no work and is left to end with the process.
        if worker.busy.acquire(timeout=STOP_GRACE_SECONDS):
            worker.busy.release()
        if loop is not None:
            loop.join(timeout=1.0)
        if not worker.lock_lost:
            stop_worker(worker, close_source=loop is None or not loop.is_alive())
    return worker.lock_lost


@contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` (main thread only; elsewhere the caller sets it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
