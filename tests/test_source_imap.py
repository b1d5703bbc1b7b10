"""The IMAP source against a real Dovecot: UIDs, UIDVALIDITY, PEEK, size gate, TLS, reconnects."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from imapclient import IMAPClient

from intake.config import Mailbox
from intake.errors import ConfigError, SourceError
from intake.sources import Position, RawMail, open_source
from intake.sources.imap import ImapSource, parse_imap_url
from tests.servers import free_port
from tests.servers.dovecot import Dovecot

pytestmark = pytest.mark.imap


def message(number: int, body: str = "Graag meer groen in de binnenstad.") -> bytes:
    return (
        f"From: Inwoner {number} <inwoner{number}@example.org>\r\n"
        "To: smartcity@maastricht.test\r\n"
        f"Subject: Suggestie {number}\r\n"
        f"Message-ID: <suggestie-{number}@example.org>\r\n"
        "Date: Mon, 04 Feb 2019 10:00:00 +0100\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def subjects(mails: list[RawMail]) -> list[str]:
    return [
        line.split(": ", 1)[1]
        for mail in mails
        for line in mail.data.decode().splitlines()
        if line.startswith("Subject: ")
    ]


@pytest.fixture
def open_imap(imap_mailbox: Dovecot) -> Iterator[Any]:
    """Open ImapSources on the test server (implicit TLS, trusted CA); closes them afterwards."""
    opened: list[ImapSource] = []

    def _open(
        folder: str = "INBOX", tls: str = "implicit", password: str | None = None, **settings: Any
    ) -> ImapSource:
        source = ImapSource(
            imap_mailbox.url(folder, tls),
            imap_mailbox.mailbox(folder, tls, **settings),
            imap_mailbox.password if password is None else password,
            backoff_seconds=0.01,
        )
        opened.append(source)
        return source

    yield _open
    for source in opened:
        source.close()


def position_after(mails: list[RawMail]) -> Position:
    validity, _, uid = mails[-1].key.partition(":")
    return Position(uidvalidity=int(validity), last_uid=int(uid))


# -- reading by UID -------------------------------------------------------------------------------


def test_second_fetch_yields_only_mail_that_arrived_since(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))
    imap_mailbox.append(message(2))
    source = open_imap()

    first = list(source.fetch_new(Position()))
    imap_mailbox.append(message(3))
    second = list(source.fetch_new(position_after(first)))

    assert subjects(first) == ["Suggestie 1", "Suggestie 2"]
    assert subjects(second) == ["Suggestie 3"]
    validity = imap_mailbox.uidvalidity()
    assert [m.key for m in first + second] == [f"{validity}:{uid}" for uid in imap_mailbox.uids()]
    assert all(m.folder == "INBOX" and not m.truncated for m in first + second)
    assert list(source.fetch_new(position_after(second))) == []


def test_watermark_at_highest_uid_yields_nothing_although_uid_star_matches_it(
    imap_mailbox: Dovecot, open_imap: Any
):
    # RFC 3501 §9: "n:*" includes the highest UID even when it is below n (IMAP-6). Expunging the
    # newest message keeps UIDNEXT ahead, so the UIDNEXT shortcut does not hide the problem.
    kept = imap_mailbox.append(message(1))
    imap_mailbox.append(message(2))
    with imap_mailbox.client() as client:
        client.select_folder("INBOX")
        client.delete_messages([kept + 1])
        client.uid_expunge([kept + 1])
    source = open_imap()

    mails = list(source.fetch_new(Position(imap_mailbox.uidvalidity(), kept)))

    assert mails == []


def test_changed_uidvalidity_yields_every_message_again(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))
    imap_mailbox.append(message(2))
    source = open_imap()
    first = list(source.fetch_new(Position()))
    source.close()

    new_validity = imap_mailbox.recreate_folder("INBOX")
    again = list(source.fetch_new(position_after(first)))

    assert subjects(again) == ["Suggestie 1", "Suggestie 2"]
    assert all(m.key.startswith(f"{new_validity}:") for m in again)
    assert source.current_validity() == new_validity


def test_fetch_leaves_every_flag_unchanged(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))
    imap_mailbox.append(message(2), flags=[r"\Flagged"])
    before = imap_mailbox.flags()

    mails = list(open_imap().fetch_new(Position()))

    assert len(mails) == 2
    assert imap_mailbox.flags() == before
    assert all(b"\\Seen" not in flags for flags in imap_mailbox.flags().values())


def test_arrived_at_is_the_internaldate_in_utc_not_the_date_header(
    imap_mailbox: Dovecot, open_imap: Any
):
    received = datetime(2019, 2, 6, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    imap_mailbox.append(message(1), internaldate=received)

    (mail,) = open_imap().fetch_new(Position())

    assert mail.arrived_at == received
    assert mail.arrived_at.utcoffset() == timedelta(0)
    assert mail.arrived_at.tzinfo is not None


def test_message_over_the_size_limit_yields_only_its_headers(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))
    imap_mailbox.append(message(2, body="bijlage " * 1000))
    imap_mailbox.append(message(3))

    small, large, after = open_imap(max_message_bytes=1024).fetch_new(Position())

    assert not small.truncated
    assert not after.truncated
    assert b"Graag meer groen" in small.data
    assert large.truncated
    assert large.size > 8000 > len(large.data)
    assert b"Subject: Suggestie 2\r\n" in large.data
    assert b"bijlage" not in large.data
    assert b"not fetched" in large.data
    assert subjects([small, large, after]) == ["Suggestie 1", "Suggestie 2", "Suggestie 3"]


def test_batches_yield_every_message_once_in_uid_order(imap_mailbox: Dovecot, open_imap: Any):
    for number in range(1, 8):
        imap_mailbox.append(message(number))

    mails = list(open_imap(batch_size=3).fetch_new(Position()))

    assert subjects(mails) == [f"Suggestie {n}" for n in range(1, 8)]


# -- TLS and credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["implicit", "starttls", "none"])
def test_reads_mail_over_each_transport(imap_mailbox: Dovecot, open_imap: Any, tls: str):
    imap_mailbox.append(message(1))

    mails = list(open_imap(tls=tls).fetch_new(Position()))

    assert subjects(mails) == ["Suggestie 1"]


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_untrusted_certificate_is_refused_without_retrying(
    imap_mailbox: Dovecot, open_imap: Any, tls: str
):
    source = open_imap(tls=tls, ca_file="")
    started = time.monotonic()

    with pytest.raises(SourceError, match="not trusted") as raised:
        list(source.fetch_new(Position()))

    assert "mailbox.ca_file" in str(raised.value)
    assert time.monotonic() - started < 2


def test_imap_url_without_starttls_on_the_server_is_refused_before_login():
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        thread = threading.Thread(target=serve_without_starttls, args=(listener, received))
        thread.start()
        url = f"imap://smartcity%40maastricht.test@127.0.0.1:{port}/INBOX"
        source = ImapSource(url, Mailbox(url=url, timeout_seconds=5), "geheim-wachtwoord")

        with pytest.raises(SourceError, match="does not offer STARTTLS"):
            list(source.fetch_new(Position()))
        thread.join(timeout=5)

    assert not any(b"LOGIN" in line.upper() for line in received)
    assert not any(b"geheim-wachtwoord" in line for line in received)


def serve_without_starttls(listener: socket.socket, received: list[bytes]) -> None:
    """A minimal IMAP greeting and CAPABILITY answer, without STARTTLS."""
    listener.settimeout(5)
    connection, _ = listener.accept()
    with connection, connection.makefile("rb") as lines:
        connection.sendall(b"* OK IMAP4rev1 test server ready\r\n")
        for line in lines:
            received.append(line)
            tag, _, command = line.decode().strip().partition(" ")
            if command.upper() == "CAPABILITY":
                answer = f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
                connection.sendall(answer.encode())
            else:
                connection.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
                return


def test_wrong_password_fails_at_once_and_the_message_never_holds_a_password(
    imap_mailbox: Dovecot, open_imap: Any
):
    source = open_imap(password="wrong-" + imap_mailbox.password)

    with pytest.raises(
        SourceError, match=r"login as 'smartcity@maastricht\.test' refused"
    ) as raised:
        source.current_validity()

    assert imap_mailbox.password not in str(raised.value)
    assert imap_mailbox.password not in source.name
    assert "%40" in source.name


def test_password_in_the_url_is_refused_without_repeating_it():
    url = "imaps://smartcity%40maastricht.test:hunter2-secret@mail.example.org/INBOX"

    with pytest.raises(ConfigError) as raised:
        open_source(Mailbox(url=url), "")

    assert "hunter2" not in str(raised.value)
    assert "password_file" in str(raised.value)


def test_url_names_user_host_port_folder_and_tls():
    assert parse_imap_url("imaps://smartcity%40maastricht.nl@mail.example.org") == parse_imap_url(
        "imaps://smartcity%40maastricht.nl@mail.example.org:993/INBOX"
    )
    target = parse_imap_url("imap://consult@127.0.0.1:1143/Inzendingen%20Smart%20City?tls=none")
    assert (target.user, target.port, target.folder, target.tls) == (
        "consult",
        1143,
        "Inzendingen Smart City",
        "none",
    )
    assert parse_imap_url("imap://u@mail.example.org/INBOX").tls == "starttls"
    assert parse_imap_url("imaps://smartcity%40maastricht.nl@h/INBOX").user == (
        "smartcity@maastricht.nl"
    )
    for wrong in ("imaps://u@h/INBOX?tls=none", "imap://u@h/INBOX?tls=off", "imap://h/INBOX"):
        with pytest.raises(ConfigError):
            parse_imap_url(wrong)


def test_plaintext_to_a_remote_host_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture):
    url = "imap://consult@mail.example.org/INBOX?tls=none"
    with caplog.at_level(logging.WARNING, logger="intake.sources.imap"):
        ImapSource(url, Mailbox(url=url), "pw")
        ImapSource(url.replace("mail.example.org", "127.0.0.1"), Mailbox(url=url), "pw")

    assert len(caplog.records) == 1
    assert "in clear" in caplog.records[0].getMessage()


# -- connection drops -----------------------------------------------------------------------------


def test_reconnects_after_a_dropped_connection_without_loss_or_duplicates(
    imap_mailbox: Dovecot, open_imap: Any
):
    for number in range(1, 7):
        imap_mailbox.append(message(number))
    source = open_imap(batch_size=2)

    mails = []
    for mail in source.fetch_new(Position()):
        mails.append(mail)
        if len(mails) in (1, 4):
            imap_mailbox.kick()

    assert subjects(mails) == [f"Suggestie {n}" for n in range(1, 7)]
    assert len({m.key for m in mails}) == 6


def test_gives_up_after_bounded_attempts_with_a_clear_error(imap_mailbox: Dovecot):
    url = f"imaps://smartcity%40maastricht.test@127.0.0.1:{free_port()}/INBOX"
    source = ImapSource(
        url, Mailbox(url=url), imap_mailbox.password, max_attempts=3, backoff_seconds=0.01
    )

    with pytest.raises(SourceError, match="after 3 attempts") as raised:
        list(source.fetch_new(Position()))

    assert "127.0.0.1" in str(raised.value)
    assert imap_mailbox.password not in str(raised.value)


def test_survives_a_server_restart_between_polls(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))
    source = open_imap()
    first = list(source.fetch_new(Position()))

    imap_mailbox.restart()
    imap_mailbox.append(message(2))

    assert subjects(list(source.fetch_new(position_after(first)))) == ["Suggestie 2"]


@pytest.fixture
def fetch_dropping(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the server's FETCH answers leave out a UID, as Exchange Online sometimes does."""

    def _drop(uid: int, times: int) -> None:
        real_fetch = IMAPClient.fetch
        left = {"times": times}

        def fetch(self: IMAPClient, messages: Any, data: Any, modifiers: Any = None) -> Any:
            response = real_fetch(self, messages, data, modifiers)
            if uid in response and b"RFC822.SIZE" in [d.upper() for d in data] and left["times"]:
                left["times"] -= 1
                del response[uid]
            return response

        monkeypatch.setattr(IMAPClient, "fetch", fetch)

    return _drop


def test_uid_left_out_of_one_fetch_is_asked_for_again(
    imap_mailbox: Dovecot, open_imap: Any, fetch_dropping: Any
):
    uids = [imap_mailbox.append(message(n)) for n in range(1, 4)]
    fetch_dropping(uids[1], times=1)

    mails = list(open_imap().fetch_new(Position()))

    assert subjects(mails) == ["Suggestie 1", "Suggestie 2", "Suggestie 3"]


def test_uid_the_server_keeps_leaving_out_stops_the_iteration_before_it(
    imap_mailbox: Dovecot, open_imap: Any, fetch_dropping: Any, caplog: pytest.LogCaptureFixture
):
    uids = [imap_mailbox.append(message(n)) for n in range(1, 4)]
    fetch_dropping(uids[1], times=2)
    source = open_imap()

    with caplog.at_level(logging.WARNING, logger="intake.sources.imap"):
        mails = list(source.fetch_new(Position()))
    stalled_at = source.stalled_at
    # The position can only reach the first message, so the next poll asks for the second again.
    again = list(source.fetch_new(position_after(mails)))

    assert subjects(mails) == ["Suggestie 1"]
    assert stalled_at == uids[1]
    assert f"UID {uids[1]}" in caplog.text
    assert subjects(again) == ["Suggestie 2", "Suggestie 3"]
    assert source.stalled_at is None


# -- moving processed mail and IDLE ---------------------------------------------------------------


def test_mark_processed_moves_only_the_given_messages(imap_mailbox: Dovecot, open_imap: Any):
    for number in range(1, 4):
        imap_mailbox.append(message(number))
    source = open_imap(processed_folder="Verwerkt")
    first, second, third = source.fetch_new(Position())

    source.mark_processed([first.key, third.key])

    assert imap_mailbox.uids("INBOX") == [int(second.key.split(":")[1])]
    with imap_mailbox.client() as client:
        client.select_folder("Verwerkt", readonly=True)
        moved = client.fetch(client.search(["ALL"]), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert sorted(m[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for m in moved.values()) == [
        b"Subject: Suggestie 1",
        b"Subject: Suggestie 3",
    ]
    assert all(b"\\Deleted" not in f for f in imap_mailbox.flags("INBOX").values())


def test_mark_processed_while_iterating_keeps_reading_the_rest(
    imap_mailbox: Dovecot, open_imap: Any
):
    for number in range(1, 6):
        imap_mailbox.append(message(number))
    source = open_imap(processed_folder="Verwerkt", batch_size=2)

    mails = []
    for mail in source.fetch_new(Position()):
        mails.append(mail)
        source.mark_processed([mail.key])

    assert subjects(mails) == [f"Suggestie {n}" for n in range(1, 6)]
    assert imap_mailbox.uids("INBOX") == []
    assert len(imap_mailbox.uids("Verwerkt")) == 5


def test_without_processed_folder_mail_stays_where_it_is(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))
    source = open_imap()
    mails = list(source.fetch_new(Position()))

    source.mark_processed([m.key for m in mails])

    assert len(imap_mailbox.uids()) == 1


def test_idle_wait_returns_true_when_mail_arrives_and_false_on_timeout(
    imap_mailbox: Dovecot, open_imap: Any
):
    source = open_imap()
    assert source.idle_wait(0.3) is False

    timer = threading.Timer(0.3, imap_mailbox.append, args=(message(1),))
    timer.start()
    started = time.monotonic()
    woke = source.idle_wait(10)
    timer.join()

    assert woke is True
    assert time.monotonic() - started < 5
    assert subjects(list(source.fetch_new(Position()))) == ["Suggestie 1"]


def test_arrival_times_are_utc_for_every_message(imap_mailbox: Dovecot, open_imap: Any):
    imap_mailbox.append(message(1))

    (mail,) = open_imap().fetch_new(Position())

    assert mail.arrived_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - mail.arrived_at) < timedelta(minutes=5)


def test_missing_folder_is_a_source_error_naming_it(imap_mailbox: Dovecot, open_imap: Any):
    source = open_imap(folder="Bestaat niet")

    with pytest.raises(SourceError, match="cannot open folder 'Bestaat niet'"):
        list(source.fetch_new(Position()))


def test_without_move_only_the_given_messages_are_copied_and_expunged(
    imap_mailbox: Dovecot, open_imap: Any, monkeypatch: pytest.MonkeyPatch
):
    # A server without MOVE (RFC 6851): COPY, \Deleted and UID EXPUNGE of just those UIDs.
    real_capabilities = IMAPClient.capabilities
    monkeypatch.setattr(
        IMAPClient,
        "capabilities",
        lambda self: tuple(c for c in real_capabilities(self) if c != b"MOVE"),
    )
    staff_deleted = imap_mailbox.append(message(1), flags=[r"\Deleted"])
    imap_mailbox.append(message(2))
    source = open_imap(processed_folder="Verwerkt")
    mails = list(source.fetch_new(Position()))

    source.mark_processed([mails[1].key])

    assert imap_mailbox.uids("INBOX") == [staff_deleted]
    assert len(imap_mailbox.uids("Verwerkt")) == 1


def test_open_source_reads_an_imap_url(imap_mailbox: Dovecot):
    imap_mailbox.append(message(1))
    source = open_source(imap_mailbox.mailbox(tls="starttls"), imap_mailbox.password)
    try:
        assert subjects(list(source.fetch_new(Position()))) == ["Suggestie 1"]
        assert source.name == imap_mailbox.url(tls="starttls")
    finally:
        source.close()


def test_idle_wait_says_at_once_that_the_server_has_no_idle(
    imap_mailbox: Dovecot, open_imap: Any, monkeypatch: pytest.MonkeyPatch
):
    real_capabilities = IMAPClient.capabilities
    monkeypatch.setattr(
        IMAPClient,
        "capabilities",
        lambda self: tuple(c for c in real_capabilities(self) if c != b"IDLE"),
    )
    started = time.monotonic()

    assert open_imap().idle_wait(10) is None
    assert time.monotonic() - started < 2


def test_fetched_mail_never_reaches_the_protocol_log_even_at_debug_level(
    imap_mailbox: Dovecot, open_imap: Any, caplog: pytest.LogCaptureFixture
):
    # imapclient turns imaplib's debug output on and logs it to "imapclient.imaplib": every
    # response, message text included, formatted whether or not the logger keeps it.
    imap_mailbox.append(message(1, body="Vertrouwelijk: het bankje bij de Sint-Servaasbrug."))
    source = open_imap()
    with caplog.at_level(logging.DEBUG):
        (fetched,) = list(source.fetch_new(Position()))
    assert b"Sint-Servaasbrug" in fetched.data
    assert "Sint-Servaasbrug" not in caplog.text
    assert "Suggestie 1" not in caplog.text
