"""Secrets and transport security against the real servers: passwords never show in output,
logs, errors or `intake status`; a certificate from an unknown CA is refused unless
`ca_file` names that CA.

The commands run as `intake` processes of their own (DEBUG logging, passwords from the
environment and from `password_file`), so everything they print or log is what an operator or a
log collector would see.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake import outbox
from intake.cli import cli
from intake.config import load_settings
from intake.errors import ConfigError, SourceError, TransportError
from intake.sources import Position, open_source
from intake.store.db import open_database, session_factory
from intake.store.models import OutboxMail
from intake.transports import OutgoingMail, open_transport
from tests.pipeline_fixtures import base_sections, deliver, mail, poll, settings_in, write_config
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import TEST_PASSWORD, TEST_USER, RecordingSMTP

# The CLI runs in this process: no password from the environment of the test run itself.
NO_SECRETS: dict[str, str | None] = {
    "INTAKE_MAILBOX_PASSWORD": None,
    "INTAKE_OUTGOING_PASSWORD": None,
    "INTAKE_LOGGING_LEVEL": "DEBUG",
}

pytestmark = pytest.mark.imap

WRONG_IMAP = "Wr0ng-imap-Secret-4b1e"
WRONG_SMTP = "Wr0ng-smtp-Secret-9c2d"


def run_intake(config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`intake --config CONFIG ARGS…` in a process of its own; output and logs captured."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    environment.update(env, INTAKE_LOGGING_LEVEL="DEBUG")
    return subprocess.run(
        [sys.executable, "-m", "intake", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def imap_config(folder: Path, dovecot: Dovecot, **mailbox: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sections = base_sections(folder)
    sections["mailbox"] = {
        "url": dovecot.url(tls="implicit"),
        "ca_file": dovecot.ca_path,
        "timeout_seconds": 5,
        **mailbox,
    }
    return write_config(folder, sections)


def assert_secret_absent(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text
        assert secret[4:-4] not in text  # not even a part of it


# -- passwords --------------------------------------------------------------------------------


def test_a_refused_imap_login_names_no_password_in_poll_status_or_logs(
    imap_mailbox: Dovecot, tmp_path: Path
) -> None:
    config = imap_config(tmp_path / "intake", imap_mailbox)
    env = {"INTAKE_MAILBOX_PASSWORD": WRONG_IMAP}
    polled = run_intake(config, "poll", env=env)
    assert polled.returncode == 1
    assert "login as 'smartcity@maastricht.test' refused" in polled.stderr
    status = run_intake(config, "status", env=env)
    assert "last error" in status.stdout
    assert_secret_absent(WRONG_IMAP, polled.stdout, polled.stderr, status.stdout, status.stderr)


def test_a_good_imap_login_from_a_password_file_logs_no_password_at_debug_level(
    imap_mailbox: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # imapclient's protocol log included
    secret = tmp_path / "mailbox-password"
    secret.write_text(imap_mailbox.password + "\n")
    config = imap_config(tmp_path / "intake", imap_mailbox, password_file=str(secret))
    imap_mailbox.append(mail())
    polled = CliRunner().invoke(cli, ["--config", str(config), "poll"], env=NO_SECRETS)
    status = CliRunner().invoke(cli, ["--config", str(config), "status"], env=NO_SECRETS)
    assert polled.exit_code == 0, polled.output
    assert "stored 1" in polled.output
    assert "LOGIN" in caplog.text.upper()  # the login itself was logged, without its secret
    assert_secret_absent(imap_mailbox.password, polled.output, status.output, caplog.text)


def test_a_refused_smtp_login_names_no_password_in_the_outbox_error_or_logs(
    smtp_tls: RecordingSMTP, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_in(
        tmp_path / "intake",
        outgoing={"url": smtp_tls.url, "ca_file": smtp_tls.ca_file, "username": TEST_USER},
    ).model_copy(update={"outgoing_password": WRONG_SMTP})
    engine = open_database(settings.database.url)
    deliver(settings, mail(), datetime.now(UTC))
    poll(settings, engine)
    summary = outbox.deliver_due(settings, engine)
    assert summary.sent == 0
    assert smtp_tls.messages == []
    with session_factory(engine)() as session:
        (row,) = session.scalars(select(OutboxMail))
        error = row.last_error or ""
    assert "refused" in error
    assert_secret_absent(WRONG_SMTP, error, caplog.text, repr(settings), str(settings))
    # What the commands print about it.
    env = {**NO_SECRETS, "INTAKE_OUTGOING_PASSWORD": WRONG_SMTP}
    shown = [
        CliRunner().invoke(cli, ["--config", settings.source_file, *args], env=env).output
        for args in (["send"], ["outbox"], ["status"], ["status", "--check"])
    ]
    assert any("refused" in output for output in shown)
    assert_secret_absent(WRONG_SMTP, *shown, caplog.text)
    engine.dispose()


def test_a_password_in_the_url_or_the_config_file_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    sections = base_sections(tmp_path)
    sections["mailbox"] = {"url": f"imaps://user:{WRONG_IMAP}@imap.example.org/INBOX"}
    config = write_config(tmp_path, sections)
    with pytest.raises(ConfigError) as url_error:
        open_source(load_settings(config, environ={}).mailbox)
    assert_secret_absent(WRONG_IMAP, str(url_error.value))
    sections["mailbox"] = {"password": WRONG_IMAP}  # secrets never go in the file
    with pytest.raises(ConfigError) as file_error:
        load_settings(write_config(tmp_path, sections), environ={})
    assert "secrets never go in config files" in str(file_error.value)
    assert_secret_absent(WRONG_IMAP, str(file_error.value))


# -- certificates -----------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_an_imap_server_with_a_certificate_from_an_unknown_ca_is_refused_unless_ca_file_names_it(
    imap_mailbox: Dovecot, tls: str
) -> None:
    untrusted = imap_mailbox.mailbox(tls=tls, ca_file="")
    with pytest.raises(SourceError, match=r"not trusted.*mailbox\.ca_file"):
        list(open_source(untrusted, imap_mailbox.password).fetch_new(Position()))
    trusted = imap_mailbox.mailbox(tls=tls)
    source = open_source(trusted, imap_mailbox.password)
    try:
        assert list(source.fetch_new(Position())) == []
    finally:
        source.close()


@pytest.mark.parametrize("server", ["smtp_tls", "smtps"])
def test_an_smtp_server_with_a_certificate_from_an_unknown_ca_is_refused_unless_ca_file_names_it(
    server: str, request: pytest.FixtureRequest
) -> None:
    smtp: RecordingSMTP = request.getfixturevalue(server)
    letter = OutgoingMail(
        message_id="tls-1@example.org",
        envelope_from="inspraak@example.org",
        recipients=("anna@example.nl",),
        data=b"From: inspraak@example.org\r\nTo: anna@example.nl\r\nSubject: t\r\n\r\nhallo\r\n",
    )
    untrusted = open_transport(smtp.outgoing(ca_file="", username=TEST_USER), TEST_PASSWORD)
    with pytest.raises(TransportError, match=r"not trusted.*outgoing\.ca_file") as refused:
        untrusted.send(letter)
    assert not refused.value.permanent  # fixing the configuration lets the mail go
    assert smtp.messages == []
    trusted = open_transport(smtp.outgoing(username=TEST_USER), TEST_PASSWORD)
    try:
        assert trusted.send(letter).startswith("250")
    finally:
        trusted.close()
    assert len(smtp.messages) == 1
    assert smtp.messages[0].tls
