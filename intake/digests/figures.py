"""A digest's headline figures, counted by the database: new, total, per theme, late, filtered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.orm import Session

from intake.store.models import Message
from intake.triage.rules import OTHER, Rules
from intake.triage.verdict import Kind

SUGGESTION = Kind.SUGGESTION.value
UNPARSEABLE = Kind.UNPARSEABLE.value


@dataclass(frozen=True, slots=True)
class Span:
    """What a digest covers: it lists [start, end) and counts as new what came after `since`."""

    start: datetime | None  # None: from the first message on
    end: datetime
    since: datetime | None  # the end of the previous digest; None before the first

    def where(self) -> ColumnElement[bool]:
        return stored_between(self.start, self.end)

    def where_new(self) -> ColumnElement[bool]:
        return stored_between(self.since, self.end)


@dataclass(frozen=True, slots=True)
class ThemeFigure:
    slug: str
    name: str  # in the digest's language
    listed: int  # suggestions the digest lists under this primary theme
    new: int  # of which stored since the previous digest
    total: int  # every suggestion with this primary theme stored before the period's end


@dataclass(frozen=True, slots=True)
class Figures:
    listed: int  # suggestions the digest lists (the period's; every one in the final)
    new: int  # suggestions stored since the previous digest
    total: int  # suggestions stored before the period's end
    late: int  # listed suggestions that arrived at or after the deadline
    resends: int  # listed suggestions that repeat an earlier one (duplicate_of)
    replies: int  # listed suggestions that continue an earlier thread (thread_of)
    filtered: tuple[tuple[str, int], ...]  # listed non-suggestions by kind, most first
    quarantined: int  # listed messages that could not be read (kind unparseable)
    quarantined_total: int  # every unreadable message stored before the period's end
    themes: tuple[ThemeFigure, ...]  # rules order; themes no longer in the rules at the end
    text_chars: int  # characters of the listed suggestions' texts together

    @property
    def filtered_total(self) -> int:
        return sum(count for _, count in self.filtered)

    @property
    def is_empty(self) -> bool:
        """Nothing at all was stored in the period: no suggestion, filtered or unreadable mail."""
        return not (self.listed or self.filtered or self.quarantined)


def stored_between(start: datetime | None, end: datetime) -> ColumnElement[bool]:
    """Messages stored in [start, end); the whole history up to `end` when start is None."""
    return and_(Message.stored_at >= start if start else true(), Message.stored_at < end)


def primary_slug() -> ColumnElement[str]:
    # A suggestion without a primary theme (stored before themes existed) counts as `other`.
    return func.coalesce(Message.primary_theme, OTHER)


def count_figures(session: Session, span: Span, rules: Rules, language: str) -> Figures:
    """Every headline figure of the digest for `span`, a handful of aggregate queries."""
    is_suggestion = Message.kind == SUGGESTION
    listed = _by_theme(session, and_(is_suggestion, span.where()))
    new = _by_theme(session, and_(is_suggestion, span.where_new()))
    total = _by_theme(session, and_(is_suggestion, stored_between(None, span.end)))
    row = session.execute(
        select(
            func.count(),
            func.count().filter(Message.late.is_(True)),
            func.count().filter(Message.duplicate_of_id.is_not(None)),
            func.count().filter(Message.thread_of_id.is_not(None)),
            func.coalesce(func.sum(func.length(Message.text)), 0),
        ).where(is_suggestion, span.where())
    ).one()
    kinds = session.execute(
        select(Message.kind, func.count())
        .where(Message.kind != SUGGESTION, span.where())
        .group_by(Message.kind)
    ).all()
    by_kind = {str(kind): int(count) for kind, count in kinds}
    quarantined = by_kind.pop(UNPARSEABLE, 0)
    quarantined_total = session.scalar(
        select(func.count()).where(Message.kind == UNPARSEABLE, stored_between(None, span.end))
    )
    return Figures(
        listed=int(row[0]),
        new=sum(new.values()),
        total=sum(total.values()),
        late=int(row[1]),
        resends=int(row[2]),
        replies=int(row[3]),
        filtered=tuple(sorted(by_kind.items(), key=lambda item: (-item[1], item[0]))),
        quarantined=quarantined,
        quarantined_total=int(quarantined_total or 0),
        themes=_theme_figures(rules, language, listed, new, total),
        text_chars=int(row[4]),
    )


def theme_order(rules: Rules, slugs: Sequence[str]) -> list[str]:
    """`slugs` in the rules' theme order; slugs the rules no longer know come last, sorted."""
    known = [theme.slug for theme in rules.themes]
    return [slug for slug in known if slug in slugs] + sorted(set(slugs) - set(known))


def theme_name(rules: Rules, slug: str, language: str) -> str:
    theme = rules.theme(slug)
    return theme.name(language) if theme else slug


def _by_theme(session: Session, where: ColumnElement[bool]) -> dict[str, int]:
    slug = primary_slug()
    rows = session.execute(select(slug, func.count()).where(where).group_by(slug)).all()
    return {str(theme): int(count) for theme, count in rows}


def _theme_figures(
    rules: Rules, language: str, listed: dict[str, int], new: dict[str, int], total: dict[str, int]
) -> tuple[ThemeFigure, ...]:
    slugs = theme_order(rules, [theme.slug for theme in rules.themes] + list(total))
    return tuple(
        ThemeFigure(
            slug=slug,
            name=theme_name(rules, slug, language),
            listed=listed.get(slug, 0),
            new=new.get(slug, 0),
            total=total.get(slug, 0),
        )
        for slug in slugs
    )
