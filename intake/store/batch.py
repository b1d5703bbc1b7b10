"""The store as one batch of incoming mail sees it: read in a handful of queries, written at once.

Storing a message asks the store a dozen questions (is this mailbox key known, is the message
stored under another key, which stored messages does it reply to, how many acknowledgements
went to its sender today, ...). Asked message by message through the ORM they cost about ten
milliseconds each, more than parsing (issue 6). A `BatchStore` asks each question once for the
whole batch, answers the rest from what the batch itself added, and inserts the rows together
at the end. Message ids are reserved up front, so that later messages of the batch can refer to
earlier ones before any row is written.

It lives inside one transaction: on SQLite the batch holds the write lock, so nothing else
changes what it read; the worker lock keeps a second ingest away on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update

from intake.store.models import (
    AttachmentRecord,
    Base,
    Message,
    OutboxMail,
    RawMessage,
    SourceItem,
    ThemeMatch,
    utcnow,
)
from intake.store.outbox_rows import ACK, QUEUED


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)  # a declarative class maps a Table
    return table


MESSAGES = _table(Message)
OUTBOX = _table(OutboxMail)
# The newest suggestions of a sender that a new one is compared with, as resend candidates.
EARLIER_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the batch's lookups are keyed on, for one message about to be stored."""

    key: str
    sha256: str
    message_id: str
    body_sha256: str
    from_addr: str
    subject: str
    refs: Sequence[str]  # the Message-IDs it refers to (In-Reply-To, References, quoted ones)
    ack_recipient: str | None


@dataclass(frozen=True, slots=True)
class EarlierRow:
    """A stored suggestion of the sender, newest first: a resend candidate."""

    id: int
    subject: str
    text: str
    duplicate_of_id: int | None


@dataclass(slots=True)
class AckRow:
    """One of our acknowledgements, as a reply or a bounce refers to it."""

    id: int
    message_id: str
    message_pk: int | None
    status: str


@dataclass(frozen=True, slots=True)
class _Identity:
    message_id: str
    body_sha256: str
    from_addr: str
    subject: str


class BatchStore:
    """Lookups and writes for one batch, in the caller's transaction (`connection`)."""

    def __init__(
        self,
        connection: Connection,
        source: str,
        incoming: Sequence[Incoming],
        acks_since: datetime,
    ) -> None:
        self._db = connection
        self.source = source
        self._acks_since = acks_since
        self._keys = self._known_keys([item.key for item in incoming])
        self._by_sha: dict[str, int] = {}
        self._by_identity: dict[_Identity, int] = {}
        self._load_known(incoming)
        refs = {ref for item in incoming for ref in item.refs if ref}
        self._ids_by_mid = self._first_ids(refs)
        self._acks_by_mid = self._our_acks(refs)
        self._earlier = self._earlier_suggestions({i.from_addr for i in incoming if i.from_addr})
        recipients = {item.ack_recipient.lower() for item in incoming if item.ack_recipient}
        self._acks_to = self._acks_to_recipients(recipients)
        self._parents: dict[int, int | None] = {}
        self._acks_per_root: dict[int, int] = {}
        self._new_ids: set[int] = set()
        self._incoming = len(incoming)
        self._ids: Iterator[int] | None = None  # reserved on the first `add_message`
        # In the order of insertion: each table refers only to tables before it.
        self._rows: dict[Table, list[dict[str, Any]]] = {
            MESSAGES: [],
            _table(RawMessage): [],
            _table(ThemeMatch): [],
            _table(AttachmentRecord): [],
            _table(SourceItem): [],
            OUTBOX: [],
        }

    # -- reads ---------------------------------------------------------------------------------

    def has_key(self, key: str) -> bool:
        """This mailbox key has been read before (stored, or recorded as a known message)."""
        return key in self._keys

    def known(self, item: Incoming) -> int | None:
        """The stored copy of a message: the same bytes, or the same Message-ID, sender,
        subject and body (one mail delivered through two aliases differs only in its trace
        headers); the first one stored.

        A mail that reuses a Message-ID under another sender or subject is a message of its
        own: merging it would lose it (zammad's mail050 and mail059 in the shared corpus).
        """
        found = [
            self._by_sha.get(item.sha256),
            self._by_identity.get(
                _Identity(item.message_id, item.body_sha256, item.from_addr, item.subject)
            ),
        ]
        ids = [pk for pk in found if pk is not None]
        return min(ids) if ids else None

    def ids_by_message_id(self, refs: Iterable[str]) -> dict[str, int]:
        return {ref: self._ids_by_mid[ref] for ref in refs if ref in self._ids_by_mid}

    def acks_by_message_id(self, refs: Iterable[str]) -> dict[str, AckRow]:
        return {ref: self._acks_by_mid[ref] for ref in refs if ref in self._acks_by_mid}

    def earlier_suggestions(self, sender: str) -> list[EarlierRow]:
        """The sender's most recent stored suggestions, newest first."""
        return self._earlier.get(sender.lower(), [])[:EARLIER_LIMIT]

    def acks_to_recipient(self, recipient: str) -> int:
        """Acknowledgements queued for this address since `acks_since`."""
        return self._acks_to[recipient.lower()]

    def thread_root(self, message_pk: int) -> int:
        """The first message of the thread `message_pk` belongs to (itself when it starts one)."""
        seen = {message_pk}
        current = message_pk
        while (parent := self._parent(current)) is not None and parent not in seen:
            seen.add(parent)
            current = parent
        return current

    def acks_in_thread(self, root: int) -> int:
        if root not in self._acks_per_root:
            count: int | None = 0
            if root not in self._new_ids:  # nothing outside the batch refers to a new message
                count = self._db.scalar(
                    select(func.count()).where(
                        OUTBOX.c.purpose == ACK, OUTBOX.c.thread_root_pk == root
                    )
                )
            self._acks_per_root[root] = int(count or 0)
        return self._acks_per_root[root]

    # -- writes --------------------------------------------------------------------------------

    def add_message(
        self,
        row: Mapping[str, Any],
        raw: bytes,
        themes: Sequence[Mapping[str, Any]],
        attachments: Sequence[Mapping[str, Any]],
    ) -> int:
        """Add a message, its bytes, themes and attachments (inserted at `flush`); its id."""
        pk = self._next_id()
        self._rows[MESSAGES].append({**row, "id": pk})
        self._new_ids.add(pk)
        self._parents[pk] = row.get("thread_of_id")
        self._by_sha.setdefault(row["sha256"], pk)
        identity = _Identity(
            row["message_id"], row["body_sha256"], row["from_addr"], row["subject"]
        )
        self._by_identity.setdefault(identity, pk)
        self._ids_by_mid.setdefault(row["message_id"], pk)
        if row["kind"] == "suggestion" and row["from_addr"]:
            earlier = EarlierRow(pk, row["subject"], row["text"], row.get("duplicate_of_id"))
            self._earlier.setdefault(row["from_addr"], []).insert(0, earlier)
        self._rows[_table(RawMessage)].append({"message_pk": pk, "data": raw})
        self._rows[_table(ThemeMatch)] += [{**theme, "message_pk": pk} for theme in themes]
        self._rows[_table(AttachmentRecord)] += [{**a, "message_pk": pk} for a in attachments]
        return pk

    def add_source_item(self, key: str, message_pk: int) -> None:
        self._keys.add(key)
        self._rows[_table(SourceItem)].append(
            {"source": self.source, "key": key, "message_pk": message_pk, "seen_at": utcnow()}
        )

    def queue_ack(
        self,
        *,
        message_id: str,
        envelope_from: str,
        recipient: str,
        subject: str,
        data: bytes,
        now: datetime,
        message_pk: int,
        thread_root_pk: int,
    ) -> None:
        """Queue an acknowledgement, as outbox_rows.queue_mail does, counted at once."""
        self._rows[OUTBOX].append(
            {
                "purpose": ACK,
                "message_id": message_id,
                "envelope_from": envelope_from,
                "recipients": [recipient],
                "subject": subject,
                "data": data,
                "message_pk": message_pk,
                "recipient_key": recipient.lower(),
                "thread_root_pk": thread_root_pk,
                "status": QUEUED,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
        self._acks_to[recipient.lower()] += 1
        self._acks_per_root[thread_root_pk] = self.acks_in_thread(thread_root_pk) + 1

    def set_status(self, ack: AckRow, status: str, error: str) -> None:
        """Record what became of one of our acknowledgements (a bounce came back)."""
        self._db.execute(
            update(OUTBOX).where(OUTBOX.c.id == ack.id).values(status=status, last_error=error)
        )
        ack.status = status

    def flush(self) -> None:
        """Insert the rows the batch collected, table by table."""
        for table, rows in self._rows.items():
            if rows:
                self._db.execute(insert(table), rows)
            rows.clear()

    # -- the batch's queries ---------------------------------------------------------------------

    def _next_id(self) -> int:
        # Each incoming message is added at most once: one reservation covers the batch.
        if self._ids is None:
            self._ids = iter(self._reserved_ids(self._incoming))
        return next(self._ids)

    def _reserved_ids(self, count: int) -> list[int]:
        """`count` message ids nobody else will use, in ascending order."""
        if self._db.dialect.name == "postgresql":
            # From the column's sequence, as an INSERT would take them; unused ones are gaps.
            sequence = func.pg_get_serial_sequence(MESSAGES.name, MESSAGES.c.id.name)
            numbers = select(func.nextval(sequence)).select_from(func.generate_series(1, count))
            return sorted(int(pk) for pk in self._db.scalars(numbers))
        # SQLite: the batch's transaction holds the write lock, and a rowid without
        # AUTOINCREMENT is the largest one plus one, as SQLite itself would choose.
        largest = self._db.scalar(select(func.max(MESSAGES.c.id))) or 0
        return list(range(largest + 1, largest + count + 1))

    def _known_keys(self, keys: list[str]) -> set[str]:
        table = _table(SourceItem)
        found: set[str] = set()
        for chunk in _chunks(keys):
            found.update(
                self._db.scalars(
                    select(table.c.key).where(table.c.source == self.source, table.c.key.in_(chunk))
                )
            )
        return found

    def _load_known(self, incoming: Sequence[Incoming]) -> None:
        columns = (
            MESSAGES.c.id,
            MESSAGES.c.sha256,
            MESSAGES.c.message_id,
            MESSAGES.c.body_sha256,
            MESSAGES.c.from_addr,
            MESSAGES.c.subject,
        )
        wanted = [
            (MESSAGES.c.sha256, [item.sha256 for item in incoming]),
            (MESSAGES.c.message_id, sorted({item.message_id for item in incoming})),
        ]
        rows = [
            row
            for column, values in wanted
            for chunk in _chunks(values)
            for row in self._db.execute(select(*columns).where(column.in_(chunk)))
        ]
        for pk, sha, mid, body, sender, subject in sorted(rows):
            self._by_sha.setdefault(sha, pk)
            self._by_identity.setdefault(_Identity(mid, body, sender, subject), pk)

    def _first_ids(self, refs: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(refs)):
            rows = self._db.execute(
                select(MESSAGES.c.message_id, func.min(MESSAGES.c.id))
                .where(MESSAGES.c.message_id.in_(chunk))
                .group_by(MESSAGES.c.message_id)
            )
            found.update({str(mid): int(pk) for mid, pk in rows})
        return found

    def _our_acks(self, refs: set[str]) -> dict[str, AckRow]:
        found: dict[str, AckRow] = {}
        columns = (OUTBOX.c.id, OUTBOX.c.message_id, OUTBOX.c.message_pk, OUTBOX.c.status)
        for chunk in _chunks(sorted(refs)):
            rows = self._db.execute(
                select(*columns).where(OUTBOX.c.message_id.in_(chunk), OUTBOX.c.purpose == ACK)
            )
            found.update({row.message_id: AckRow(*row) for row in rows})
        return found

    def _earlier_suggestions(self, senders: set[str]) -> dict[str, list[EarlierRow]]:
        found: dict[str, list[EarlierRow]] = {}
        for chunk in _chunks(sorted(senders)):
            newest = (
                select(
                    MESSAGES.c.id,
                    MESSAGES.c.from_addr,
                    func.row_number()
                    .over(partition_by=MESSAGES.c.from_addr, order_by=MESSAGES.c.id.desc())
                    .label("nth"),
                )
                # coalesce() keeps SQLite (no statistics) off the kind index, which matches
                # nearly every row: the sender's index finds a handful.
                .where(
                    MESSAGES.c.from_addr.in_(chunk),
                    func.coalesce(MESSAGES.c.kind, "") == "suggestion",
                )
                .subquery()
            )
            rows = self._db.execute(
                select(
                    MESSAGES.c.id,
                    MESSAGES.c.from_addr,
                    MESSAGES.c.subject,
                    MESSAGES.c.text,
                    MESSAGES.c.duplicate_of_id,
                )
                .join(newest, newest.c.id == MESSAGES.c.id)
                .where(newest.c.nth <= EARLIER_LIMIT)
                .order_by(MESSAGES.c.id.desc())
            )
            for pk, sender, subject, text, duplicate_of in rows:
                found.setdefault(sender, []).append(EarlierRow(pk, subject, text, duplicate_of))
        return found

    def _acks_to_recipients(self, recipients: set[str]) -> Counter[str]:
        found: Counter[str] = Counter()
        for chunk in _chunks(sorted(recipients)):
            rows = self._db.execute(
                select(OUTBOX.c.recipient_key, func.count())
                # coalesce() keeps SQLite off the purpose index, which matches every
                # acknowledgement: the recipient's index finds a handful. Failed ones count
                # too: they were attempts at the same person.
                .where(
                    func.coalesce(OUTBOX.c.purpose, "") == ACK,
                    OUTBOX.c.recipient_key.in_(chunk),
                    OUTBOX.c.created_at >= self._acks_since,
                )
                .group_by(OUTBOX.c.recipient_key)
            )
            found.update({str(key): int(count) for key, count in rows})
        return found

    def _parent(self, message_pk: int) -> int | None:
        if message_pk not in self._parents:
            self._parents[message_pk] = self._db.scalar(
                select(MESSAGES.c.thread_of_id).where(MESSAGES.c.id == message_pk)
            )
        return self._parents[message_pk]


def _chunks(values: Sequence[str], size: int = 500) -> list[list[str]]:
    """`values` in lists of at most `size`: the number of bound parameters has a limit."""
    return [list(values[n : n + size]) for n in range(0, len(values), size)]
