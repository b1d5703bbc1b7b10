"""One poll cycle: source → parse → triage (intake.analysis) → store (intake.storing) → advance
the mailbox position."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.analysis import Analysed, analyse
from intake.config import Settings
from intake.errors import SourceError
from intake.sources import Position, RawMail, Source, open_source
from intake.store import queries
from intake.store.db import transaction
from intake.storing import Outcome, Pipeline, pipeline_for, store_batch, utcnow
from intake.triage import TriageContext
from intake.triage.rules import Rules
from intake.triage.verdict import Kind

log = logging.getLogger(__name__)

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

    def count(self, outcome: Outcome) -> None:
        if not outcome.stored:
            self.known += 1
            return
        kind = str(outcome.item.verdict.kind)
        self.stored += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if outcome.item.verdict.kind == Kind.UNPARSEABLE:
            self.quarantined += 1

    def __str__(self) -> str:
        return (
            f"fetched {self.fetched}, stored {self.stored}, already known {self.known}, "
            f"quarantined {self.quarantined}"
        )


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


def poll_once(
    settings: Settings,
    engine: Engine,
    rules: Rules,
    *,
    clock: Callable[[], datetime] = utcnow,
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
    """Store a batch, count what it did, then tell the source (a Maildir moves its files)."""
    if not batch:
        return
    began = time.perf_counter()
    for outcome in store_batch(engine, source.name, batch, pipeline):
        summary.count(outcome)
    source.mark_processed([item.raw.key for item in batch])
    summary.seconds["store"] = summary.seconds.get("store", 0.0) + time.perf_counter() - began


def _known_keys(session: Session, source_name: str) -> frozenset[str]:
    # Only sources without UIDs need the list of stored keys; IMAP resumes from its UID.
    if source_name.startswith("maildir:"):
        return queries.known_keys(session, source_name)
    return frozenset()


def _record_failure(engine: Engine, source_name: str, error: str) -> None:
    with transaction(engine) as session:
        queries.mailbox_state(session, source_name).last_error = error[:2000]
