"""Parse and triage mail in worker processes while the main process fetches and stores it.

Parsing is the slow stage of a poll (a few hundred messages a second on one core), so with
`worker.parse_processes` above 1 the poll hands chunks of fetched messages to a pool of
processes and stores their results in mailbox order. Only the analysis crosses the
process boundary: the raw bytes stay in the main process, which stores them.

Guarantees kept from the single-process poll: results come back in the order fetched, a
bounded number of chunks is in flight (memory does not grow with the mailbox), and a message
that kills a worker process (a crash in a C library, the kernel's out-of-memory killer) is
stored as `unparseable` with its raw bytes, never lost: the chunk is analysed again in fresh
processes, then message by message, and the one that breaks the pool alone gets a headers-only
analysis in the main process.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from functools import partial
from types import TracebackType

from intake.analysis import (
    AckDrafter,
    Analysed,
    AnalyseFn,
    ChunkResult,
    RulesParcel,
    analyse,
    analyse_and_draft,
    analyse_chunk,
    init_parser_process,
    quarantine_verdict,
    ready,
)
from intake.config import Settings
from intake.ingest import Analyser, InProcessAnalyser
from intake.parsing import parse
from intake.sources import RawMail
from intake.triage import TriageContext
from intake.triage.rules import Rules

log = logging.getLogger(__name__)

# A chunk is what one task carries: enough messages to make the hand-over cheap, few enough
# bytes that the chunks in flight stay small next to the 300 MB a process may use (issue 6).
CHUNK_MESSAGES = 10
CHUNK_BYTES = 4_000_000
IN_FLIGHT_PER_PROCESS = 4
HEADER_BYTES = 262_144  # of a message that crashed a worker: the part read in the main process
CRASHED = "a parser process died while reading this message"


def default_processes() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PoolAnalyser:
    """Analyses chunks of mail in `processes` spawned worker processes, results in order.

    The processes start on first use (or `start()`) and live until `close()`, so a worker that
    polls after every IDLE wake-up pays their start-up once.
    """

    def __init__(self, processes: int, analyse_one: AnalyseFn = analyse) -> None:
        self.processes = processes
        self._analyse_one = analyse_one
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes now and wait until each has imported intake."""
        pool = self._executor()
        for future in [pool.submit(ready) for _ in range(self.processes)]:
            future.result()

    def close(self) -> None:
        """Stop the worker processes now; work still running is discarded (its poll ended)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # A stopping worker must not wait for chunks nobody will store (SIGTERM: seconds).
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5.0)

    def __enter__(self) -> PoolAnalyser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def analyse_all(
        self,
        raws: Iterable[RawMail],
        rules: Rules,
        context: TriageContext,
        seconds: dict[str, float],
    ) -> Generator[Analysed, None, None]:
        """Every message of `raws` analysed, in order; fetches ahead while workers parse."""
        pending: deque[tuple[list[RawMail], Future[ChunkResult], ProcessPoolExecutor]] = deque()
        parcel = RulesParcel.of(rules)
        mails = iter(raws)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.processes * IN_FLIGHT_PER_PROCESS:
                    chunk = _take_chunk(mails, seconds)
                    if not chunk:
                        exhausted = True
                        break
                    pool = self._executor()
                    future = pool.submit(analyse_chunk, self._analyse_one, chunk, parcel, context)
                    pending.append((chunk, future, pool))
                    if pending[0][1].done():
                        break  # hand finished work to the store before fetching more
                if not pending:
                    return
                chunk, future, pool = pending.popleft()
                began = time.perf_counter()
                try:
                    analysed, spent = future.result()
                except BrokenProcessPool:
                    self._discard(pool)
                    analysed = self._after_crash(chunk, parcel, context)
                    spent = time.perf_counter() - began
                _add(seconds, "wait", time.perf_counter() - began)
                _add(seconds, "analyse", spent)
                yield from (
                    replace(item, raw=raw) for raw, item in zip(chunk, analysed, strict=True)
                )
        finally:
            for _, future, _ in pending:
                future.cancel()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the worker has threads (scheduler, IDLE, database pool) that a
            # forked child would inherit in whatever state they were.
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_parser_process,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Forget a broken pool (once: the chunks still in flight on it report the same)."""
        if pool is self._pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _after_crash(
        self, chunk: list[RawMail], parcel: RulesParcel, context: TriageContext
    ) -> list[Analysed]:
        """The chunk analysed again in fresh processes; message by message if it breaks again."""
        attempt = self._run_alone(chunk, parcel, context)
        if attempt is not None:
            return attempt
        results = []
        for raw in chunk:
            single = self._run_alone([raw], parcel, context)
            if single is None:
                log.error("a parser process died on %s; stored as unparseable", raw.key)
                results.append(crashed(raw))
            else:
                results.extend(single)
        return results

    def _run_alone(
        self, chunk: list[RawMail], parcel: RulesParcel, context: TriageContext
    ) -> list[Analysed] | None:
        pool = self._executor()
        try:
            return pool.submit(analyse_chunk, self._analyse_one, chunk, parcel, context).result()[0]
        except BrokenProcessPool:
            self._discard(pool)
            return None


def _take_chunk(mails: Iterator[RawMail], seconds: dict[str, float]) -> list[RawMail]:
    chunk: list[RawMail] = []
    size = 0
    while len(chunk) < CHUNK_MESSAGES and size < CHUNK_BYTES:
        began = time.perf_counter()
        raw = next(mails, None)
        _add(seconds, "fetch", time.perf_counter() - began)
        if raw is None:
            break
        chunk.append(raw)
        size += len(raw.data)
    return chunk


def _add(seconds: dict[str, float], stage: str, spent: float) -> None:
    seconds[stage] = seconds.get(stage, 0.0) + spent


def crashed(raw: RawMail) -> Analysed:
    """A message that killed a worker process: quarantined, with what its headers say."""
    head, body = _split(raw.data)
    mail = parse(head[:HEADER_BYTES], truncated=raw.truncated)
    return Analysed(
        raw,
        replace(mail, text="", error=CRASHED),
        quarantine_verdict(CRASHED),
        hashlib.sha256(raw.data).hexdigest(),
        hashlib.sha256(body).hexdigest(),
    )


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Header block and body, split as `ingest.analyse` splits them for the body's hash."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end >= 0:
            return data[: end + len(separator)], data[end + len(separator) :]
    return data, b""


def analyser_for(settings: Settings) -> Analyser:
    """The analyser `worker.parse_processes` asks for: a pool, or the poll's own process.

    In a pool the processes also draft each suggestion's acknowledgement, so that the store
    only queues it. Use the result as a context manager: leaving it stops the processes.
    """
    processes = settings.worker.parse_processes
    if processes is None:
        processes = default_processes()
    if processes <= 1:
        return InProcessAnalyser()
    if not settings.ack.enabled:
        return PoolAnalyser(processes)
    return PoolAnalyser(
        processes, partial(analyse_and_draft, drafter=AckDrafter.from_settings(settings))
    )
