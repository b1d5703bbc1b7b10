"""Named reads shared by the CLI, ingest, export and digest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
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


def known_keys(session: Session, source: str) -> frozenset[str]:
    return frozenset(session.scalars(select(SourceItem.key).where(SourceItem.source == source)))


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
