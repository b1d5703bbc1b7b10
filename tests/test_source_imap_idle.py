"""IDLE after a fetch reports mail that arrived between the fetch and IDLE (IMAP-11, issue 6)."""

from __future__ import annotations

import time
from typing import Any

from intake.sources import Position
from tests.servers.dovecot import Dovecot
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
