"""The SQLite store under concurrent writers: writers queue for the lock instead of failing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select

from intake.store.db import open_database, transaction
from intake.store.models import MailboxState


def test_a_read_then_write_transaction_waits_for_another_writer_instead_of_failing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine, other = open_database(url), open_database(url)
    with transaction(engine) as session:
        session.add(MailboxState(source="maildir:x", uidvalidity=1, last_uid=0))
    holding, released = threading.Event(), threading.Event()

    def other_writer() -> None:
        with transaction(other) as session:
            state = session.get(MailboxState, "maildir:x")
            assert state is not None
            state.last_uid += 1
            session.flush()
            holding.set()
            time.sleep(0.5)  # the first writer reads and wants to write meanwhile
        released.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    holding.wait(5)
    # A deferred transaction would read the old row here and then fail on its write with
    # "database is locked", because the other writer commits in between.
    with transaction(engine) as session:
        state = session.get(MailboxState, "maildir:x")
        assert state is not None
        assert released.is_set()  # it waited for the other writer to commit
        state.last_uid += 1
    thread.join()
    with engine.connect() as connection:
        assert connection.scalar(select(MailboxState.last_uid)) == 2


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = open_database(url)
    with transaction(engine) as session:
        session.add(MailboxState(source="maildir:x", uidvalidity=1, last_uid=7))
    with transaction(engine) as session:
        state = session.get(MailboxState, "maildir:x")
        assert state is not None
        state.last_uid = 8
        session.flush()
        # A blocked reader would fail with "database is locked" after the busy timeout.
        with open_database(url).connect() as reader:
            assert reader.scalar(select(MailboxState.last_uid)) == 7  # WAL: the last commit
