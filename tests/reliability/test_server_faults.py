"""Servers misbehave while the worker runs: nothing is lost, the worker keeps running, and the log
says what happened once instead of a traceback per retry.

IMAP faults run the real `intake run` against the test Dovecot (restarted, `doveadm kick`, the
folder deleted and recreated). SMTP faults and a locked SQLite database run the worker's poll
and send cycle in this process against the test SMTP server, with a clock moved past each
retry's back-off instead of waiting for it.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from intake import worker
from intake.store.db import session_factory
from intake.store.models import Message, OutboxMail
from tests.reliability.harness import (
    Feeder,
    IntakeHome,
    WorkerProcess,
    tally,
    wait_until,
)
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import RecordingSMTP

pytestmark = pytest.mark.imap

FOLDER = "Consultation"


def stored(engine: Engine) -> int:
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def append_copies(dovecot: Dovecot, numbers: range, folder: str = "INBOX") -> list[str]:
    """Copies `numbers` of the corpus appended to `folder`; their Message-IDs."""
    feeder = Feeder(
        dovecot, len(numbers), pick=lambda: (0, 0.0), folder=folder, first=numbers.start
    )
    feeder.append(len(numbers))
    return feeder.appended


def assert_all_stored_once(home: IntakeHome, smtp: RecordingSMTP) -> None:
    figures = tally(home, list(smtp.messages))
    print(f"figures: {figures.line()}")
    assert figures.messages > 0
    assert figures.stored == figures.messages
    assert not figures.lost
    assert not figures.duplicate_rows
    assert not figures.distinct_double_acks


# -- IMAP: the real worker ----------------------------------------------------------------------


@pytest.fixture
def home(imap_mailbox: Dovecot, smtp: RecordingSMTP, tmp_path: Path) -> IntakeHome:
    # Small fetch batches, so that a fault lands between two FETCH commands of one poll.
    return IntakeHome.create(tmp_path, imap_mailbox, smtp, mailbox_batch_size="5")


@pytest.fixture
def running(home: IntakeHome, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = home.worker(tmp_path / "worker-0.log")
    try:
        yield process
    finally:
        process.kill()


def warnings_in(log: str) -> list[str]:
    """WARNING and ERROR lines about the mailbox or a job (not about a message)."""
    return [
        line
        for line in log.splitlines()
        if (" WARNING " in line or " ERROR " in line)
        and (" intake.sources." in line or " intake.worker:" in line)
    ]


def finish(home: IntakeHome, process: WorkerProcess, total: int) -> str:
    """Wait until `total` messages are stored, check the worker still runs, stop it; its log."""
    engine = home.engine()
    try:
        wait_until(lambda: stored(engine) >= total, timeout=60, what=f"{total} messages stored")
    finally:
        engine.dispose()
    assert process.is_running(), process.text()
    assert process.terminate() == 0, process.text()
    return process.text()


def test_dovecot_restarted_while_mail_arrives_loses_nothing(
    home: IntakeHome, running: WorkerProcess, smtp: RecordingSMTP
) -> None:
    running.wait_for("poll imap")  # waiting in IDLE
    for start in (0, 30):
        append_copies(home.dovecot, range(start, start + 30))  # IDLE wakes the worker
        time.sleep(0.3)  # fetching, parsing, storing
        home.dovecot.restart(drop_connections=True)
    log = finish(home, running, 60)
    assert_all_stored_once(home, smtp)
    assert "Traceback" not in log
    # At most a retry warning and one ERROR line for each restart, then "works again".
    assert 1 <= len(warnings_in(log)) <= 4, log


def test_a_connection_kicked_during_idle_and_during_a_fetch_loses_nothing(
    home: IntakeHome, running: WorkerProcess, smtp: RecordingSMTP
) -> None:
    running.wait_for("worker running")
    running.wait_for("poll imap")  # the first poll is done: waiting in IDLE now
    home.dovecot.kick()
    append_copies(home.dovecot, range(60))
    engine = home.engine()
    try:
        wait_until(lambda: stored(engine) > 0, timeout=30, what="the first batch stored")
        home.dovecot.kick()  # in the middle of fetching the sixty
    finally:
        engine.dispose()
    log = finish(home, running, 60)
    assert_all_stored_once(home, smtp)
    assert "Traceback" not in log
    # One line for each drop (in IDLE the server's BYE ends the wait; the next command says so).
    assert 1 <= len(warnings_in(log)) <= 2, log


def test_a_folder_deleted_and_recreated_is_read_again_without_storing_twice(
    imap_mailbox: Dovecot, smtp: RecordingSMTP, tmp_path: Path
) -> None:
    home = IntakeHome.create(
        tmp_path, imap_mailbox, smtp, mailbox_url=imap_mailbox.url(FOLDER, tls="none")
    )
    first = append_copies(imap_mailbox, range(10), folder=FOLDER)
    process = home.worker(tmp_path / "worker-0.log")
    try:
        engine = home.engine()
        try:
            wait_until(lambda: stored(engine) == 10, timeout=30, what="10 messages stored")
        finally:
            engine.dispose()
        with imap_mailbox.client() as client:  # a mailbox rebuilt from a backup, say
            client.delete_folder(FOLDER)
            client.create_folder(FOLDER)
        again = append_copies(imap_mailbox, range(10), folder=FOLDER)
        assert again == first
        append_copies(imap_mailbox, range(10, 13), folder=FOLDER)
        log = finish(home, process, 13)
    finally:
        process.kill()
    assert "Traceback" not in log
    assert log.count("UIDVALIDITY changed") == 1, log
    assert log.count("already known 10") == 1, log
    engine = home.engine()
    try:
        assert stored(engine) == 13
    finally:
        engine.dispose()
    acks = [m for m in smtp.messages if m["In-Reply-To"]]
    replied = [m["In-Reply-To"] for m in acks]
    assert len(replied) == len(set(replied))  # no message acknowledged twice


# -- SMTP and the database: the poll and send cycle ---------------------------------------------


class Clock:
    """The worker's clock, moved on by the test past each back-off."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def cycle(
    imap_mailbox: Dovecot, smtp: RecordingSMTP, tmp_path: Path
) -> Iterator[tuple[worker.Worker, Clock, IntakeHome]]:
    home = IntakeHome.create(tmp_path, imap_mailbox, smtp)
    clock = Clock()
    engine = home.engine()
    running = worker.start_worker(home.settings(), engine, clock=clock)
    try:
        yield running, clock, home
    finally:
        worker.stop_worker(running)
        engine.dispose()


def run_cycles(running: worker.Worker, clock: Clock, count: int) -> list[worker.Cycle]:
    """`count` poll-and-send cycles, an hour apart: every back-off has run out by the next."""
    done = []
    for _ in range(count):
        done.append(worker.poll_job(running))
        clock.advance(timedelta(hours=1))
    return done


def problems_logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


def acks_of(smtp: RecordingSMTP) -> list[str]:
    return [m["Message-ID"] or "" for m in smtp.messages]


def test_smtp_refusing_connections_for_a_while_delays_acknowledgements_only(
    cycle: tuple[worker.Worker, Clock, IntakeHome],
    smtp: RecordingSMTP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running, clock, home = cycle
    append_copies(home.dovecot, range(30, 40))  # ten suggestions and automatic mail
    smtp.refuse_connections()
    with caplog.at_level(logging.INFO):
        cycles = run_cycles(running, clock, 3)
        assert all(c.poll is not None for c in cycles)  # polling goes on
        smtp.accept_connections()
        worker.poll_job(running)
        clock.advance(timedelta(hours=3))
        worker.poll_job(running)
    queued = queued_acks(running.engine)
    assert queued
    assert sorted(acks_of(smtp)) == sorted(f"<{mid}>" for mid in queued)
    assert len(problems_logged(caplog, "connection refused")) == 1, caplog.text
    assert any("delivery works again" in r.getMessage() for r in caplog.records)
    assert not tracebacks(caplog)
    assert_all_stored_once(home, smtp)


def queued_acks(engine: Engine) -> list[str]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(select(OutboxMail.message_id).where(OutboxMail.purpose == "ack"))
        )


@pytest.mark.parametrize(
    ("fault", "sent"),
    [
        pytest.param({"stage": "MAIL", "code": 451, "times": 3}, "all", id="4xx"),
        pytest.param({"stage": "RCPT", "code": 550, "times": 1}, "all but one", id="5xx"),
    ],
)
def test_smtp_answering_4xx_retries_and_5xx_fails_one_mail_logged_once(
    cycle: tuple[worker.Worker, Clock, IntakeHome],
    smtp: RecordingSMTP,
    caplog: pytest.LogCaptureFixture,
    fault: dict[str, Any],
    sent: str,
) -> None:
    running, clock, home = cycle
    append_copies(home.dovecot, range(30, 40))
    smtp.fail_next(fault["stage"], fault["code"], times=fault["times"])
    with caplog.at_level(logging.INFO):
        run_cycles(running, clock, 4)
    queued = queued_acks(running.engine)
    arrived = len(set(acks_of(smtp)))
    assert arrived == (len(queued) if sent == "all" else len(queued) - 1)
    code = str(fault["code"])
    assert len(problems_logged(caplog, code)) == fault["times"], caplog.text
    assert not tracebacks(caplog)
    assert_all_stored_once(home, smtp)


def test_smtp_hanging_past_the_timeout_repeats_at_most_the_identical_mail(
    cycle: tuple[worker.Worker, Clock, IntakeHome],
    smtp: RecordingSMTP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running, clock, home = cycle
    append_copies(home.dovecot, range(30, 34))
    timeout = home.settings().outgoing.timeout_seconds
    smtp.hang_next(timeout + 1, stage="DATA")  # the relay got the mail but answers too late
    with caplog.at_level(logging.INFO):
        run_cycles(running, clock, 3)
    queued = queued_acks(running.engine)
    assert {m.strip("<>") for m in acks_of(smtp)} == set(queued)
    repeated = len(acks_of(smtp)) - len(set(acks_of(smtp)))
    print(f"repeated identical acks: {repeated}")
    assert repeated <= 1
    assert len(problems_logged(caplog, "no answer within")) == 1, caplog.text
    assert not tracebacks(caplog)
    assert_all_stored_once(home, smtp)


def test_a_database_locked_by_another_writer_delays_polls_and_quarantines_nothing(
    cycle: tuple[worker.Worker, Clock, IntakeHome],
    smtp: RecordingSMTP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running, _, home = cycle

    # Wait half a second for a lock instead of thirty, so that the test sees the timeout.
    @event.listens_for(running.engine, "connect")
    def impatient(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA busy_timeout=500")

    running.engine.dispose()  # connections from now on get the short timeout
    database = home.folder / "intake.db"
    other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    append_copies(home.dovecot, range(30, 40))
    release = threading.Timer(2.0, lambda: other.execute("ROLLBACK"))
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            worker.poll_job(running)
        release.start()
        release.join()
        worker.poll_job(running)
    other.close()
    assert stored(running.engine) == 10
    with session_factory(running.engine)() as session:
        errors = list(
            session.scalars(select(Message.parse_error).where(Message.parse_error.is_not(None)))
        )
    assert not [e for e in errors if "locked" in e], errors
    # Once for each job that met the lock, in one line without a traceback or the SQL.
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m.split(" (")[0] for m in failed] == [
        "poll failed: database: database is locked",
        "delivery failed: database: database is locked",
    ], failed
    assert not tracebacks(caplog)
    assert any("poll works again" in r.getMessage() for r in caplog.records)
    assert_all_stored_once(home, smtp)


def test_processes_opening_a_fresh_database_at_once_all_migrate_it(tmp_path: Path) -> None:
    # The worker and the container's first health check start together on an empty volume.
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    # Each process imports intake first, then opens the database when told (one line on stdin).
    script = (
        "import sys; from intake.store.db import open_database; "
        "print('ready', flush=True); sys.stdin.readline(); open_database(sys.argv[1])"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for process in processes:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.flush()
    errors = [p.communicate(timeout=60)[1].decode()[-500:] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
