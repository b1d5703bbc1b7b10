"""Named reads shared by the CLI, ingest, export and digest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from intake.errors import NotFoundError
from intake.store.models import MailboxState, Message, SourceItem, ThemeMatch


def find_message(session: Session, ref: str) -> Message:
    """The message with id `ref`, or Message-ID `ref` (angle brackets optional)."""
    ref = ref.strip()
    message = None
    if ref.isdigit():
        message = session.get(Message, int(ref))
    if message is None:
        mid = ref.strip("<>")
        message = session.scalars(
            select(Message).where(Message.message_id == mid).order_by(Message.id).limit(1)
        ).first()
    if message is None:
        raise NotFoundError(f"no stored message with id or Message-ID {ref!r}")
    return message


def find_known(
    session: Session,
    sha256: str,
    message_id: str,
    body_sha256: str,
    *,
    from_addr: str,
    subject: str,
) -> Message | None:
    """The stored copy of a message: the same bytes, or the same Message-ID, sender, subject
    and body (one mail delivered through two aliases differs only in its trace headers).

    A mail that reuses a Message-ID under another sender or subject is a message of its own:
    merging it would lose it (zammad's mail050 and mail059 in the shared corpus do this).
    """
    return session.scalars(
        select(Message)
        .where(
            or_(
                Message.sha256 == sha256,
                (Message.message_id == message_id)
                & (Message.body_sha256 == body_sha256)
                & (Message.from_addr == from_addr)
                & (Message.subject == subject),
            )
        )
        .order_by(Message.id)
        .limit(1)
    ).first()


def known_keys(session: Session, source: str) -> frozenset[str]:
    return frozenset(session.scalars(select(SourceItem.key).where(SourceItem.source == source)))


def has_source_item(session: Session, source: str, key: str) -> bool:
    return (
        session.scalar(
            select(SourceItem.id).where(SourceItem.source == source, SourceItem.key == key)
        )
        is not None
    )


def ids_by_message_id(session: Session, refs: Iterable[str]) -> dict[str, int]:
    """Stored message ids for these Message-IDs (the first stored, when one repeats)."""
    refs = [ref for ref in refs if ref]
    if not refs:
        return {}
    rows = session.execute(
        select(Message.message_id, func.min(Message.id))
        .where(Message.message_id.in_(refs))
        .group_by(Message.message_id)
    )
    return {str(mid): int(pk) for mid, pk in rows}


@dataclass(frozen=True, slots=True)
class EarlierRow:
    id: int
    subject: str
    text: str
    duplicate_of_id: int | None


def earlier_suggestions(session: Session, sender: str, limit: int = 50) -> list[EarlierRow]:
    """The sender's most recent stored suggestions, newest first."""
    rows = session.execute(
        select(Message.id, Message.subject, Message.text, Message.duplicate_of_id)
        # coalesce() keeps SQLite (no statistics) off the kind index, which matches nearly
        # every row: the sender's index finds a handful (issue 6: a scan per stored message).
        .where(Message.from_addr == sender.lower(), func.coalesce(Message.kind, "") == "suggestion")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return [EarlierRow(*row) for row in rows]


def mailbox_state(session: Session, source: str) -> MailboxState:
    state = session.get(MailboxState, source)
    if state is None:
        state = MailboxState(source=source, uidvalidity=0, last_uid=0)
        session.add(state)
    return state


def all_mailbox_states(session: Session) -> list[MailboxState]:
    return list(session.scalars(select(MailboxState).order_by(MailboxState.source)))


def iter_messages(session: Session, batch: int = 500) -> Iterator[Message]:
    """Every stored message in id order, loaded a batch at a time (bounded memory)."""
    last = 0
    while True:
        rows = session.scalars(
            select(Message)
            .where(Message.id > last)
            .order_by(Message.id)
            .limit(batch)
            .options(
                selectinload(Message.themes),
                selectinload(Message.attachments),
                selectinload(Message.ack),
            )
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        session.expunge_all()


def message_ids_for(session: Session, pks: Iterable[int]) -> dict[int, str]:
    pks = [pk for pk in pks if pk]
    if not pks:
        return {}
    return dict(
        session.execute(select(Message.id, Message.message_id).where(Message.id.in_(pks))).all()
    )


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    kinds: Counter[str]
    themes: Counter[str]  # primary themes of suggestions
    late: int
    resends: int


def counts(session: Session) -> Counts:
    kinds = Counter(
        dict(session.execute(select(Message.kind, func.count()).group_by(Message.kind)).all())
    )
    themes: Counter[str] = Counter()
    for theme, count in session.execute(
        select(Message.primary_theme, func.count())
        .where(Message.kind == "suggestion")
        .group_by(Message.primary_theme)
    ):
        themes[theme or "other"] += count
    late = session.scalar(
        select(func.count()).where(Message.kind == "suggestion", Message.late.is_(True))
    )
    resends = session.scalar(select(func.count()).where(Message.duplicate_of_id.is_not(None)))
    return Counts(sum(kinds.values()), kinds, themes, int(late or 0), int(resends or 0))


def all_themes_by_message(session: Session) -> dict[int, list[str]]:
    rows = session.execute(
        select(ThemeMatch.message_pk, ThemeMatch.theme).order_by(
            ThemeMatch.message_pk, ThemeMatch.rank
        )
    )
    result: dict[int, list[str]] = {}
    for pk, theme in rows:
        result.setdefault(pk, []).append(theme)
    return result
