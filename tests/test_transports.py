"""Outgoing transports against a real SMTP server (aiosmtpd) and a real pickup folder."""

from __future__ import annotations

import logging
import os
import socket
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
import trustme

from intake.config import Outgoing
from intake.errors import ConfigError, TransportError
from intake.transports import OutgoingMail, Transport, open_transport, parse_smtp_url
from intake.transports.file import FileTransport, safe_id
from intake.transports.pacing import Pacer
from intake.transports.smtp import SmtpTransport
from tests.servers.smtp import TEST_PASSWORD, TEST_USER, RecordingSMTP

SENDER = "inspraak@example.org"
RESIDENT = "resident@example.net"


def make_mail(
    number: int = 1,
    *,
    recipients: tuple[str, ...] = (RESIDENT,),
    to_header: str | None = None,
    body: str = "Dank voor uw suggestie.\n",
) -> OutgoingMail:
    message_id = f"<ack-{number}@example.org>"
    msg = EmailMessage()
    msg["From"] = f"Gemeente <{SENDER}>"
    msg["To"] = to_header or ", ".join(recipients)
    msg["Subject"] = f"Ontvangen: suggestie {number}"
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return OutgoingMail(SENDER, recipients, msg.as_bytes(), message_id)


def transport_for(server: RecordingSMTP, password: str = "", **overrides: object) -> Transport:
    return open_transport(server.outgoing(**overrides), password)


def send_expecting_error(transport: Transport, mail: OutgoingMail) -> TransportError:
    with pytest.raises(TransportError) as caught:
        transport.send(mail)
    return caught.value


# -- OutgoingMail and open_transport --------------------------------------------------------


def test_outgoing_mail_needs_a_recipient() -> None:
    with pytest.raises(ValueError, match="recipient"):
        OutgoingMail(SENDER, (), b"Subject: x\n\nx\n", "<x@example.org>")


def test_outgoing_mail_refuses_line_breaks_in_envelope_addresses() -> None:
    with pytest.raises(ValueError, match="control character"):
        OutgoingMail(SENDER, ("a@example.org\r\nRCPT TO:<b@example.org>",), b"x", "<x@e.org>")


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit_tls", "starttls"),
    [
        ("smtp://relay.example.org", "relay.example.org", 587, False, True),
        ("smtp://relay.example.org:2525", "relay.example.org", 2525, False, True),
        ("smtps://relay.example.org", "relay.example.org", 465, True, False),
        ("smtp://127.0.0.1:2525?tls=none", "127.0.0.1", 2525, False, False),
    ],
)
def test_smtp_urls_give_host_port_and_tls(
    url: str, host: str, port: int, implicit_tls: bool, starttls: bool
) -> None:
    address = parse_smtp_url(url)
    assert (address.host, address.port, address.implicit_tls, address.starttls) == (
        host,
        port,
        implicit_tls,
        starttls,
    )


def test_user_name_in_the_url_is_percent_decoded_and_wins_over_settings() -> None:
    assert parse_smtp_url("smtp://inspraak%40example.org@smtp.office365.com:587").username == (
        "inspraak@example.org"
    )
    assert parse_smtp_url("smtp://smtp.office365.com", "fallback@example.org").username == (
        "fallback@example.org"
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("smtp://user:hunter2@relay.example.org", "passwords never go in the URL"),
        ("smtps://relay.example.org?tls=none", "smtps:// is always TLS"),
        ("smtp://relay.example.org?tls=maybe", "tls must be none"),
        ("smtp://relay.example.org?starttls=no", "unknown option"),
        ("smtp:///nohost", "no host"),
        ("lmtp://relay.example.org", "unsupported transport"),
    ],
)
def test_unusable_outgoing_urls_are_config_errors(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as caught:
        open_transport(Outgoing(url=url))
    assert "hunter2" not in str(caught.value)


def test_a_password_without_a_user_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"outgoing\.username"):
        open_transport(Outgoing(url="smtp://relay.example.org"), "secret")


def test_plain_text_to_a_remote_host_is_allowed_but_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="intake.transports"):
        parse_smtp_url("smtp://127.0.0.1:2525?tls=none")
        assert not caplog.records
        parse_smtp_url("smtp://relay.example.org:25?tls=none")
    assert "plain text" in caplog.text


def test_file_url_opens_the_pickup_folder(tmp_path: Path) -> None:
    transport = open_transport(Outgoing(url=f"file:{tmp_path}/outbox"))
    assert isinstance(transport, FileTransport)
    assert transport.folder == tmp_path / "outbox"


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outgoing\.ca_file"):
        open_transport(Outgoing(url="smtp://relay.example.org", ca_file=str(tmp_path / "no.pem")))


# -- delivery -------------------------------------------------------------------------------


def test_mail_arrives_with_the_given_envelope_not_the_headers(smtp: RecordingSMTP) -> None:
    mail = make_mail(recipients=(RESIDENT, "archive@example.org"), to_header=RESIDENT)
    with transport_for(smtp) as transport:
        answer = transport.send(mail)
    assert answer.startswith("250 2.0.0 OK queued as TEST")
    [received] = smtp.messages
    assert received.envelope_from == SENDER
    assert received.recipients == (RESIDENT, "archive@example.org")
    assert received["Message-ID"] == "<ack-1@example.org>"
    assert received.message.get_content() == "Dank voor uw suggestie.\r\n"


def test_lf_line_ends_go_out_as_crlf(smtp: RecordingSMTP) -> None:
    mail = make_mail(body="regel een\nregel twee\n")
    assert b"\r\n" not in mail.data
    with transport_for(smtp) as transport:
        transport.send(mail)
    [received] = smtp.messages
    assert received.data.count(b"\r\n") == received.data.count(b"\n")
    assert received.message.get_content() == "regel een\r\nregel twee\r\n"
    assert received["Subject"] == "Ontvangen: suggestie 1"


def test_non_ascii_addresses_are_sent_with_smtputf8(smtp: RecordingSMTP) -> None:
    with transport_for(smtp) as transport:
        transport.send(make_mail(recipients=("jöran@example.nl",)))
    assert smtp.messages[0].recipients == ("jöran@example.nl",)


def test_consecutive_sends_share_one_connection(smtp: RecordingSMTP) -> None:
    with transport_for(smtp) as transport:
        for number in range(3):
            transport.send(make_mail(number))
    assert len(smtp.messages) == 3
    assert smtp.connections == 1


def test_a_dropped_connection_is_reopened_for_the_next_send(smtp: RecordingSMTP) -> None:
    with transport_for(smtp) as transport:
        transport.send(make_mail(1))
        smtp.refuse_connections()  # restarting the relay drops the open session
        smtp.accept_connections()
        transport.send(make_mail(2))
    assert [m["Message-ID"] for m in smtp.messages] == [
        "<ack-1@example.org>",
        "<ack-2@example.org>",
    ]
    assert smtp.connections == 1  # since the restart


# -- what is temporary and what is permanent ------------------------------------------------


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_451_is_temporary_and_the_next_attempt_succeeds(smtp: RecordingSMTP, stage: str) -> None:
    smtp.fail_next(stage, 451)  # type: ignore[arg-type]
    with transport_for(smtp) as transport:
        error = send_expecting_error(transport, make_mail())
        assert not error.permanent
        assert "451 4.3.0 Temporary local problem" in str(error)
        assert transport.send(make_mail()).startswith("250")
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(("stage", "code"), [("MAIL", 550), ("DATA", 554), ("DATA", 552)])
def test_5xx_in_the_transaction_is_permanent(smtp: RecordingSMTP, stage: str, code: int) -> None:
    smtp.fail_next(stage, code)  # type: ignore[arg-type]
    with transport_for(smtp) as transport:
        error = send_expecting_error(transport, make_mail())
    assert error.permanent
    assert f"{stage}" in str(error)
    assert f" {code} " in str(error)
    assert smtp.messages == []


def test_a_refused_recipient_is_permanent(smtp: RecordingSMTP) -> None:
    smtp.fail_next("RCPT", 550)
    with transport_for(smtp) as transport:
        error = send_expecting_error(transport, make_mail())
    assert error.permanent
    assert f"RCPT TO <{RESIDENT}> refused: 550 5.1.1 Mailbox unavailable" in str(error)
    assert smtp.messages == []


def test_a_recipient_put_off_with_4xx_is_temporary(smtp: RecordingSMTP) -> None:
    smtp.fail_next("RCPT", 450)
    with transport_for(smtp) as transport:
        error = send_expecting_error(transport, make_mail())
    assert not error.permanent


def test_partly_refused_mail_is_sent_and_the_refusal_named(smtp: RecordingSMTP) -> None:
    smtp.fail_next("RCPT", 550)  # the first recipient only
    with transport_for(smtp) as transport:
        answer = transport.send(make_mail(recipients=("gone@example.org", "staff@example.org")))
    assert answer.startswith("250")
    assert "refused 1 of 2: gone@example.org (550 5.1.1" in answer
    assert smtp.messages[0].recipients == ("staff@example.org",)


def test_exchange_quota_answers_are_temporary_despite_5xx(smtp: RecordingSMTP) -> None:
    # learn.microsoft.com, "Sending limits": the daily recipient limit answers 554 5.2.0.
    smtp.fail_next(
        "DATA", 554, text="5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"
    )
    with transport_for(smtp) as transport:
        assert not send_expecting_error(transport, make_mail()).permanent


def test_a_relay_that_is_down_is_temporary(smtp: RecordingSMTP) -> None:
    smtp.refuse_connections()
    with transport_for(smtp) as transport:
        error = send_expecting_error(transport, make_mail())
    assert not error.permanent
    assert "connection refused" in str(error)


def test_a_hanging_relay_is_temporary_within_the_timeout(smtp: RecordingSMTP) -> None:
    smtp.hang_next(3.0)
    started = time.monotonic()
    with transport_for(smtp, timeout_seconds=0.5) as transport:
        error = send_expecting_error(transport, make_mail())
    assert time.monotonic() - started < 2.0
    assert not error.permanent
    assert "no answer within 0.5 s" in str(error)


def test_a_relay_hanging_before_it_greets_is_temporary(smtp: RecordingSMTP) -> None:
    # A listening socket that never answers: the greeting itself times out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = Outgoing(url=f"smtp://127.0.0.1:{port}?tls=none", timeout_seconds=0.3)
        with open_transport(settings) as transport:
            error = send_expecting_error(transport, make_mail())
    assert not error.permanent
    assert "no answer within 0.3 s" in str(error)


# -- TLS and login --------------------------------------------------------------------------


def test_starttls_with_the_trusted_ca_delivers_encrypted_and_logged_in(
    smtp_tls: RecordingSMTP,
) -> None:
    with transport_for(smtp_tls, TEST_PASSWORD, username=TEST_USER) as transport:
        transport.send(make_mail())
    [received] = smtp_tls.messages
    assert received.tls
    assert received.login == TEST_USER


def test_the_user_name_may_come_from_the_url(smtp_tls: RecordingSMTP) -> None:
    url = smtp_tls.url.replace("smtp://", "smtp://intake-relay%40example.org@")
    with transport_for(smtp_tls, TEST_PASSWORD, url=url) as transport:
        transport.send(make_mail())
    assert smtp_tls.messages[0].login == TEST_USER


def test_implicit_tls_delivers(smtps: RecordingSMTP) -> None:
    with transport_for(smtps, TEST_PASSWORD, username=TEST_USER) as transport:
        transport.send(make_mail())
    [received] = smtps.messages
    assert received.tls
    assert received.login == TEST_USER


@pytest.mark.parametrize("server_name", ["smtp_tls", "smtps"])
def test_a_certificate_from_an_unknown_ca_is_refused(
    server_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Temporary, not permanent: the mail is fine, the configuration is not.

    Every message would fail alike, and each can go once `outgoing.ca_file` is fixed, so the
    outbox keeps them queued instead of marking them all failed.
    """
    server: RecordingSMTP = request.getfixturevalue(server_name)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with transport_for(server, ca_file=str(other_ca)) as transport:
        error = send_expecting_error(transport, make_mail())
    assert not error.permanent
    assert "certificate is not trusted" in str(error)
    assert "outgoing.ca_file" in str(error)
    assert server.messages == []


def test_without_a_ca_file_the_system_store_is_used_and_a_test_ca_refused(
    smtp_tls: RecordingSMTP,
) -> None:
    # SMTP-1: smtplib's default context would accept any certificate.
    with transport_for(smtp_tls, ca_file="") as transport:
        error = send_expecting_error(transport, make_mail())
    assert "certificate is not trusted" in str(error)
    assert smtp_tls.messages == []


def test_smtp_urls_never_fall_back_to_plain_text(smtp: RecordingSMTP) -> None:
    url = smtp.url.removesuffix("?tls=none")
    with transport_for(smtp, url=url) as transport:
        error = send_expecting_error(transport, make_mail())
    assert not error.permanent
    assert "does not offer STARTTLS" in str(error)
    assert smtp.messages == []


def test_a_refused_login_is_temporary_and_never_shows_the_password(
    smtp_tls: RecordingSMTP, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wrong-" + TEST_PASSWORD
    with (
        caplog.at_level(logging.DEBUG, logger="intake"),
        transport_for(smtp_tls, wrong, username=TEST_USER) as transport,
    ):
        error = send_expecting_error(transport, make_mail())
    assert not error.permanent
    assert f"login as {TEST_USER} refused: 535" in str(error)
    for text in (str(error), repr(error), caplog.text):
        assert wrong not in text
        assert TEST_PASSWORD not in text


def test_the_password_never_shows_in_transaction_errors(smtp_tls: RecordingSMTP) -> None:
    smtp_tls.fail_next("DATA", 554, text=f"5.6.0 echoing {TEST_PASSWORD}")
    with transport_for(smtp_tls, TEST_PASSWORD, username=TEST_USER) as transport:
        error = send_expecting_error(transport, make_mail())
    assert TEST_PASSWORD not in str(error)
    assert "***" in str(error)


# -- pacing ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_lets_the_limit_through_then_waits_for_the_oldest_to_age_out() -> None:
    clock = FakeClock()
    pacer = Pacer(3, clock=clock, sleep=clock.sleep)
    assert [pacer.wait() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 10
    assert pacer.wait() == pytest.approx(50.0)  # the first started at 1000, ages out at 1060
    assert clock.now == pytest.approx(1060.0)


def test_pacer_window_rolls_rather_than_resets_each_minute() -> None:
    clock = FakeClock()
    pacer = Pacer(2, clock=clock, sleep=clock.sleep)
    pacer.wait()
    clock.now += 59
    pacer.wait()
    clock.now += 2  # 61 s after the first, 2 s after the second
    assert pacer.wait() == 0.0
    assert pacer.wait() == pytest.approx(58.0)  # until the second is 60 s old


def test_pacer_limit_zero_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(0, clock=clock, sleep=clock.sleep)
    assert sum(pacer.wait() for _ in range(1000)) == 0.0
    assert clock.slept == []


def test_smtp_sends_are_paced_to_max_per_minute(smtp: RecordingSMTP) -> None:
    clock = FakeClock()
    settings = smtp.outgoing(max_per_minute=2)
    pacer = Pacer(settings.max_per_minute, clock=clock, sleep=clock.sleep)
    with SmtpTransport(parse_smtp_url(settings.url), settings, pacer=pacer) as transport:
        for number in range(5):
            transport.send(make_mail(number))
    assert len(smtp.messages) == 5
    assert clock.slept == [60.0, 60.0]


def test_a_relay_that_is_down_costs_no_pacing(smtp: RecordingSMTP) -> None:
    clock = FakeClock()
    settings = smtp.outgoing(max_per_minute=1)
    pacer = Pacer(settings.max_per_minute, clock=clock, sleep=clock.sleep)
    smtp.refuse_connections()
    with SmtpTransport(parse_smtp_url(settings.url), settings, pacer=pacer) as transport:
        for number in range(3):
            send_expecting_error(transport, make_mail(number))
        smtp.accept_connections()
        transport.send(make_mail(4))
    assert clock.slept == []


def test_open_transport_paces_by_default(smtp: RecordingSMTP) -> None:
    transport = open_transport(Outgoing(url=smtp.url))
    assert isinstance(transport, SmtpTransport)
    assert transport._pacer.limit == 20  # Exchange Online allows 30 a minute


# -- file pickup folder ---------------------------------------------------------------------


def read_eml(path: Path) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_file_transport_creates_the_folder_and_writes_a_parseable_eml(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "outbox"
    with open_transport(Outgoing(url=f"file:{folder}")) as transport:
        answer = transport.send(make_mail(recipients=(RESIDENT, "archive@example.org")))
    [path] = folder.iterdir()
    assert answer == f"written to {path}"
    assert path.name.endswith("-ack-1@example.org.eml")
    assert path.name[:8].isdigit()
    parsed = read_eml(path)
    assert parsed["Message-ID"] == "<ack-1@example.org>"
    assert parsed["Return-Path"] == f"<{SENDER}>"
    assert parsed["X-Envelope-To"] == f"{RESIDENT}, archive@example.org"
    assert parsed.get_content() == "Dank voor uw suggestie.\n"


def test_file_transport_keeps_one_file_per_message_id(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    transport.send(make_mail(1, body="eerste\n"))
    transport.send(make_mail(2))
    [first_name] = [p.name for p in tmp_path.glob("*-ack-1@*")]
    transport.send(make_mail(1, body="nogmaals\n"))
    assert sorted(p.name for p in tmp_path.iterdir())[0] == first_name
    assert len(list(tmp_path.iterdir())) == 2
    assert read_eml(tmp_path / first_name).get_content() == "nogmaals\n"


def test_file_transport_leaves_no_partial_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(source: str, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    error = send_expecting_error(FileTransport(tmp_path), make_mail())
    assert not error.permanent
    assert "No space left on device" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_file_transport_into_an_unwritable_place_is_temporary(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    error = send_expecting_error(FileTransport(blocker / "outbox"), make_mail())
    assert not error.permanent


@pytest.mark.parametrize(
    "message_id",
    ["<../../etc/passwd@x>", "<a/b\\c:d*e?f@example.org>", "<" + "x" * 400 + "@example.org>"],
)
def test_message_ids_become_safe_file_names(message_id: str) -> None:
    name = safe_id(message_id)
    assert "/" not in name
    assert "\\" not in name
    assert not name.startswith(".")
    assert len(name) <= 140
    assert safe_id(message_id) == name


def test_ids_that_differ_only_in_unsafe_characters_get_different_names() -> None:
    assert safe_id("<a/b@example.org>") != safe_id("<a:b@example.org>")
    assert safe_id("<" + "x" * 400 + "1@e.org>") != safe_id("<" + "x" * 400 + "2@e.org>")
    assert safe_id("<plain.id-1@example.org>") == "plain.id-1@example.org"
