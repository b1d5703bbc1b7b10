"""The health check: a stale or never successful poll, failed outbox mail and quarantined mail
waiting for a look each make intake unhealthy; `status --check` exits 1 naming them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, update

from intake import health
from intake.cli import cli
from intake.config import Database, Digest, Mailbox, Settings, Worker
from intake.store import queries
from intake.store.db import open_database, transaction
from intake.store.models import OutboxMail
from intake.store.outbox_rows import ACK, FAILED, queue_mail
from tests.test_digest_fixtures import store

NOW = datetime(2019, 2, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        mailbox=Mailbox(url=f"maildir:{tmp_path / 'mail'}"),
        database=Database(url=f"sqlite:///{tmp_path / 'intake.db'}"),
        worker=Worker(stale_poll_seconds=900),
        digest=Digest(recipients=["onderzoek@maastricht.nl"]),
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database.url)
    yield engine
    engine.dispose()


def record_poll(
    settings: Settings, engine: Engine, *, success_at: datetime | None, error: str | None = None
) -> None:
    with transaction(engine) as session:
        state = queries.mailbox_state(session, health.mailbox_name(settings))
        state.last_poll_at = NOW
        state.last_success_at = success_at
        state.last_error = error


def add_failed_mail(engine: Engine) -> None:
    with transaction(engine) as session:
        row = queue_mail(
            session,
            purpose=ACK,
            message_id="ack-1@maastricht.nl",
            envelope_from="smartcity@maastricht.nl",
            recipients=["jan@example.nl"],
            subject="Bedankt",
            data=b"Subject: Bedankt\r\n\r\nBedankt.\r\n",
            now=NOW,
        )
        session.flush()
        session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == row.id)
            .values(status=FAILED, last_error="550")
        )


def test_a_recent_poll_with_nothing_failed_or_waiting_is_healthy(
    settings: Settings, engine: Engine
) -> None:
    record_poll(settings, engine, success_at=NOW - timedelta(minutes=1))
    report = health.check_health(settings, engine, NOW)
    assert report.ok
    assert report.problems == []
    assert "  last good poll: 2019-02-04T10:59:00+01:00 (60 s ago)" in report.lines


def test_digests_without_recipients_are_unhealthy(settings: Settings, engine: Engine) -> None:
    record_poll(settings, engine, success_at=NOW - timedelta(minutes=1))
    nobody = settings.model_copy(update={"digest": Digest(recipients=[])})
    report = health.check_health(nobody, engine, NOW)
    assert not report.ok
    assert report.problems == [
        "digest: no recipients, so the daily and final digests cannot be sent;"
        " set [digest] recipients (or INTAKE_DIGEST_RECIPIENTS)"
    ]


def test_a_mailbox_never_polled_is_unhealthy(settings: Settings, engine: Engine) -> None:
    report = health.check_health(settings, engine, NOW)
    assert not report.ok
    assert report.problems == [
        f"mailbox {health.mailbox_name(settings)}: never polled successfully"
    ]


def test_a_poll_older_than_stale_poll_seconds_is_unhealthy_and_names_the_last_error(
    settings: Settings, engine: Engine
) -> None:
    record_poll(settings, engine, success_at=NOW - timedelta(minutes=20), error="cannot reach")
    (problem,) = health.check_health(settings, engine, NOW).problems
    assert "last good poll 20 min ago, longer than worker.stale_poll_seconds (15 min)" in problem
    assert problem.endswith("; last error: cannot reach")


def test_one_failed_poll_after_a_recent_good_one_is_shown_but_still_healthy(
    settings: Settings, engine: Engine
) -> None:
    record_poll(settings, engine, success_at=NOW - timedelta(minutes=2), error="cannot reach")
    report = health.check_health(settings, engine, NOW)
    assert report.ok
    assert "  last error: cannot reach" in report.lines


def test_failed_outbox_mail_is_unhealthy(settings: Settings, engine: Engine) -> None:
    record_poll(settings, engine, success_at=NOW)
    add_failed_mail(engine)
    report = health.check_health(settings, engine, NOW)
    assert not report.ok
    assert report.problems == [
        "outbox: 1 mail(s) failed; see `intake outbox`, then `intake outbox retry`"
    ]


def test_quarantined_mail_is_unhealthy_until_staff_release_it(
    settings: Settings, engine: Engine
) -> None:
    record_poll(settings, engine, success_at=NOW)
    broken = store(engine, stored_at=NOW, kind="unparseable")
    suggestion = store(engine, stored_at=NOW)
    (problem,) = health.check_health(settings, engine, NOW).problems
    assert problem.startswith(f"quarantine: 1 unparseable message(s) waiting for a look ({broken})")
    assert health.release_quarantined(engine, [broken, suggestion], NOW) == [broken]
    assert health.check_health(settings, engine, NOW).ok
    assert health.release_quarantined(engine, [broken], NOW) == []  # once is enough


def test_status_check_exits_1_printing_each_problem_and_0_when_healthy(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    config = tmp_path / "intake.toml"
    config.write_text(
        f'[mailbox]\nurl = "{settings.mailbox.url}"\n'
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[outgoing]\nurl = "file:{tmp_path / "outbox"}"\n'
        '[digest]\nrecipients = ["onderzoek@maastricht.nl"]\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    add_failed_mail(engine)
    broken = store(engine, stored_at=NOW, kind="unparseable")
    result = runner.invoke(cli, ["--config", str(config), "status", "--check"])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3  # never polled, failed mail, quarantine
    assert result.output.rstrip().endswith("unhealthy")

    listed = runner.invoke(cli, ["--config", str(config), "quarantine"])
    assert listed.exit_code == 0
    assert listed.output.split()[0] == str(broken)
    released = runner.invoke(cli, ["--config", str(config), "quarantine", "release", str(broken)])
    assert released.output.strip() == f"released 1 message(s): {broken}"
    with transaction(engine) as session:
        session.execute(update(OutboxMail).values(status="sent"))
    record_poll(settings, engine, success_at=datetime.now(UTC))
    result = runner.invoke(cli, ["--config", str(config), "status", "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("healthy")
