"""SQLAlchemy 2 mapped classes: what intake keeps about every message and its mailbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

# Named constraints so that Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; SQLite would otherwise hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # SQLAlchemy reads this mapping once at class creation; it is never mutated.
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Message(Base):
    """Any stored mail: its raw bytes, what the parser read and what triage decided."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    message_id_derived: Mapped[bool] = mapped_column(Boolean, default=False)
    # The raw bytes' digest makes a second copy of the same message (two folders, a re-poll
    # after a crash) one row; body_sha256 catches one message delivered through two aliases.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    body_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(500))
    source_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(index=True)
    date_header: Mapped[datetime | None]
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)

    from_addr: Mapped[str] = mapped_column(String(320), index=True, default="")
    from_name: Mapped[str] = mapped_column(Text, default="")
    return_path: Mapped[str | None] = mapped_column(String(320))
    to_addrs: Mapped[list[Any]] = mapped_column(default=list)
    cc_addrs: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[Any]] = mapped_column(default=list)
    content_language: Mapped[str | None] = mapped_column(String(35))
    headers: Mapped[dict[str, Any]] = deferred(mapped_column(JSON, nullable=False, default=dict))

    language: Mapped[str] = mapped_column(String(8), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    quoted: Mapped[str] = deferred(mapped_column(Text, nullable=False, default=""))
    signature: Mapped[str] = deferred(mapped_column(Text, nullable=False, default=""))
    disclaimer: Mapped[str] = deferred(mapped_column(Text, nullable=False, default=""))
    forwarded_from: Mapped[str | None] = mapped_column(String(320))
    forwarded_from_name: Mapped[str | None] = mapped_column(Text)
    html_only: Mapped[bool] = mapped_column(Boolean, default=False)
    parse_error: Mapped[str | None] = mapped_column(Text)
    defects: Mapped[list[Any]] = mapped_column(default=list)
    # When staff looked at a quarantined (unparseable) message (`intake quarantine release`);
    # until then `status --check` reports it as waiting.
    reviewed_at: Mapped[datetime | None]

    kind: Mapped[str] = mapped_column(String(20), index=True)
    kind_reasons: Mapped[list[Any]] = mapped_column(default=list)
    primary_theme: Mapped[str | None] = mapped_column(String(64), index=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    sender_role: Mapped[str] = mapped_column(String(16), default="public")
    role_reason: Mapped[str] = mapped_column(Text, default="")

    # The acknowledgement decision (AR-*): "suppressed" with its reason, or "queued" with the
    # outbox mail (OutboxMail.message_pk) whose status then tells sent, failed or bounced.
    ack_status: Mapped[str | None] = mapped_column(String(16), index=True)
    ack_reason: Mapped[str] = mapped_column(Text, default="")

    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    thread_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    link_reason: Mapped[str] = mapped_column(Text, default="")

    themes: Mapped[list[ThemeMatch]] = relationship(
        back_populates="message", order_by="ThemeMatch.rank", cascade="all, delete-orphan"
    )
    attachments: Mapped[list[AttachmentRecord]] = relationship(
        back_populates="message", order_by="AttachmentRecord.position", cascade="all, delete-orphan"
    )
    duplicate_of: Mapped[Message | None] = relationship(
        remote_side=[id], foreign_keys=[duplicate_of_id]
    )
    thread_of: Mapped[Message | None] = relationship(remote_side=[id], foreign_keys=[thread_of_id])
    # The bytes live in a table of their own: inside this row they would sit between the
    # columns, and SQLite reads past a large value's overflow pages to reach the columns after
    # it, so every list of messages (digest, export) would read the whole mailbox (issue 6).
    raw_row: Mapped[RawMessage] = relationship(cascade="all, delete-orphan", uselist=False)
    raw: AssociationProxy[bytes] = association_proxy(
        "raw_row", "data", creator=lambda data: RawMessage(data=data)
    )
    ack: Mapped[OutboxMail | None] = relationship(
        primaryjoin="and_(OutboxMail.message_pk == Message.id, OutboxMail.purpose == 'ack')",
        viewonly=True,
        uselist=False,
    )


class RawMessage(Base):
    """A stored message's bytes exactly as the mailbox delivered them."""

    __tablename__ = "raw_messages"

    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ThemeMatch(Base):
    """One theme of a message, with its score and every rule hit that explains it."""

    __tablename__ = "theme_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    theme: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)  # 0 is the primary theme
    matches: Mapped[list[Any]] = mapped_column(default=list)

    message: Mapped[Message] = relationship(back_populates="themes")


class AttachmentRecord(Base):
    """An attachment's metadata; its bytes stay inside the stored raw message."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)

    message: Mapped[Message] = relationship(back_populates="attachments")


class SourceItem(Base):
    """Where a stored message was found: one row per (mailbox, key); a key is never read twice."""

    __tablename__ = "source_items"
    __table_args__ = (UniqueConstraint("source", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    key: Mapped[str] = mapped_column(String(200))
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailboxState(Base):
    """The mailbox position (IMAP-5: UIDVALIDITY + last committed UID) and the last poll."""

    __tablename__ = "mailbox_state"

    source: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_poll_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboxMail(Base):
    """A mail to send, rendered and given its Message-ID when queued, so a retry or a crash
    between sending and recording repeats the identical message, never a different one."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), index=True)  # "ack" or "digest"
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    # For acknowledgements: the suggestion it answers, the sender and thread it counts against.
    message_pk: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    recipient_key: Mapped[str] = mapped_column(String(320), index=True, default="")
    thread_root_pk: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(
        String(16), index=True
    )  # queued|sending|sent|failed|bounced
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    server_answer: Mapped[str | None] = mapped_column(Text)


class DigestRun(Base):
    """One digest for one period, recorded before it is queued so that no period is sent twice."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("kind", "period_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "daily" or "final"
    period_key: Mapped[str] = mapped_column(String(64))  # local date of a daily one; "final"
    period_start: Mapped[datetime | None]  # None: from the first message on
    period_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="recorded")  # recorded|queued|sent
    outbox_message_id: Mapped[str | None] = mapped_column(String(998))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class WorkerLock(Base):
    """The one worker allowed per database: who holds it and when it last said so."""

    __tablename__ = "worker_lock"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))  # host, pid and a random token
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
