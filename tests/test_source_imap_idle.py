"""IDLE reports mail that arrived between a fetch and IDLE, and waits through the server's
keepalives for mail that comes later (IMAP-11, issue 6)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from intake.sources import Position
from intake.sources.imap import ImapSource
from tests.servers.dovecot import Dovecot, running_dovecot
from tests.test_source_imap import message, open_imap, position_after

__all__ = ["open_imap"]  # the fixture used below


def test_mail_that_arrives_after_a_fetch_and_before_idle_wakes_idle_at_once(
    imap_mailbox: Dovecot, open_imap: Any
) -> None:
    source = open_imap()
    imap_mailbox.append(message(1))
    first = list(source.fetch_new(Position()))
    imap_mailbox.append(message(2))  # before IDLE starts: IDLE itself never reports it
    started = time.monotonic()
    assert source.idle_wait(10) is True
    assert time.monotonic() - started < 2
    assert len(list(source.fetch_new(position_after(first)))) == 1


def test_idle_waits_when_nothing_arrived_since_the_last_fetch(
    imap_mailbox: Dovecot, open_imap: Any
) -> None:
    source = open_imap()
    imap_mailbox.append(message(1))
    mails = list(source.fetch_new(Position()))
    assert list(source.fetch_new(position_after(mails))) == []
    assert source.idle_wait(0.5) is False


@pytest.fixture(scope="module")
def chatty_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that says "* OK Still here" every second of IDLE (Dovecot's default: 2 min)."""
    with running_dovecot("imap_idle_notify_interval = 1 secs\n") as server:
        yield server


def chatty_source(server: Dovecot) -> ImapSource:
    server.reset()
    return ImapSource(server.url(tls="implicit"), server.mailbox(), server.password)


def test_keepalives_during_idle_neither_end_the_wait_nor_count_as_mail(
    chatty_dovecot: Dovecot,
) -> None:
    source = chatty_source(chatty_dovecot)
    try:
        assert list(source.fetch_new(Position())) == []
        started = time.monotonic()
        assert source.idle_wait(3.5) is False
        assert time.monotonic() - started >= 3.4
    finally:
        source.close()


def test_mail_after_keepalives_still_wakes_idle_at_once(chatty_dovecot: Dovecot) -> None:
    source = chatty_source(chatty_dovecot)
    later = threading.Timer(2.5, chatty_dovecot.append, args=(message(1),))
    try:
        assert list(source.fetch_new(Position())) == []
        later.start()
        started = time.monotonic()
        assert source.idle_wait(30) is True
        assert 2.4 <= time.monotonic() - started < 6
    finally:
        later.cancel()
        source.close()


def test_a_connection_dropped_during_idle_ends_the_wait_at_once(
    imap_mailbox: Dovecot, open_imap: Any
) -> None:
    source = open_imap()
    assert list(source.fetch_new(Position())) == []
    kick = threading.Timer(1.0, imap_mailbox.kick)
    kick.start()
    started = time.monotonic()
    try:
        assert source.idle_wait(30) is True  # the caller polls, and reconnects there
    finally:
        kick.cancel()
    assert time.monotonic() - started < 5
    assert list(source.fetch_new(Position())) == []  # connected again
