"""The digest's template context: figures, suggestions by primary theme, filtered mail.

Suggestions are read in batches of plain rows (no ORM objects kept), theme by theme, each time
a template walks them: the text and the HTML part each stream the period once, so memory holds
one batch and the rendered mail, never every stored message.

Every mail-derived string is plain text here; the HTML environment escapes it. Names, subjects
and file names are put on one line without control, bidi or invisible characters (SEC-5);
texts keep their line breaks but lose the same characters. Nothing is turned into a link
(SEC-4): a URL in a suggestion stays text.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from intake.acks import clean_text
from intake.digests.figures import (
    SUGGESTION,
    Figures,
    Span,
    primary_slug,
    theme_name,
    theme_order,
)
from intake.store.models import AttachmentRecord, Message, ThemeMatch
from intake.triage.rules import Rules

BATCH = 500  # suggestions read per query while rendering
TRIM_CHARS = 600  # a daily digest shows this much of each text ("… (N more characters)")
# The HTML part shows at most this many characters of suggestion text in all. The final digest
# shows complete texts within it, else trimmed ones; a digest whose trimmed texts would not fit
# either lists each suggestion in one compact line. Outlook's Word engine crawls through
# multi-megabyte HTML, and the text part (and the final's attached export) has the texts.
HTML_TEXT_BUDGET = 1_000_000
# The text part's budget: complete texts when they fit (the final digest), else each text cut
# to its share of it, so that 20,000 suggestions make a mail of megabytes, not of a hundred
# (issue 6); the final digest's attachments always hold the complete texts.
TEXT_BUDGET = 2_000_000
MIN_TRIM_CHARS = 80
COMPLETE, TRIMMED, COMPACT = "complete", "trimmed", "compact"
FILTERED_LISTED = 50  # non-suggestions named at the end, so staff can spot a misfiled one
# Suggestions a digest lists in its body. Beyond it each theme lists its share and says how
# many more there are: no one reads 20,000 suggestions in a mail, rendering them takes longer
# than the rest of the digest together, and the final digest's attachments hold every one.
MAIL_LISTED = 2_000
MIN_LISTED_PER_THEME = 20
NAME_CHARS = 80


@dataclass(frozen=True, slots=True)
class Shaping:
    """How texts are shown: complete or trimmed, in each part; names in which language."""

    language: str
    tz: ZoneInfo
    text_complete: bool
    html_texts: str  # COMPLETE, TRIMMED or COMPACT (no text)
    trim_chars: int = TRIM_CHARS  # where the text part cuts a text that is not complete


@dataclass(frozen=True)
class Suggestion:
    """One suggestion as the templates show it; its text is cleaned when first shown."""

    id: int
    sender_name: str
    sender_address: str
    role: str  # council | partner | public
    received_at: datetime  # local
    subject: str
    themes: tuple[str, ...]  # secondary themes, by name
    attachments: tuple[str, ...]
    late: bool
    duplicate_of: int | None  # the stored id of the suggestion this one repeats
    thread_of: int | None  # the stored id of the message this one answers
    stored_text: str = field(repr=False)
    shaping: Shaping = field(repr=False)

    @cached_property
    def _clean(self) -> str:
        return clean_block(self.stored_text)

    @cached_property
    def _for_text(self) -> tuple[str, int]:
        if self.shaping.text_complete:
            return self._clean, 0
        return trim(self._clean, self.shaping.trim_chars)

    @cached_property
    def _for_html(self) -> tuple[str, int]:
        if self.shaping.html_texts == COMPLETE:
            return self._clean, 0
        if self.shaping.html_texts == TRIMMED:
            return trim(self._clean)
        return "", 0

    @property
    def text(self) -> str:
        """For the text part: complete, or trimmed by `text_more` characters."""
        return self._for_text[0]

    @property
    def text_more(self) -> int:
        return self._for_text[1]

    @property
    def paragraphs(self) -> tuple[tuple[str, ...], ...]:
        """For the HTML part: paragraphs of lines (none in a compact digest)."""
        return paragraphs(self._for_html[0])

    @property
    def paragraphs_more(self) -> int:
        return self._for_html[1]


@dataclass(frozen=True, slots=True)
class Filtered:
    """A message that is not a suggestion, named so staff can spot a mistake."""

    id: int
    kind: str
    sender_name: str
    sender_address: str
    subject: str
    received_at: datetime  # local


class SuggestionStream:
    """The suggestions of one primary theme in a span, read afresh each time it is iterated."""

    def __init__(
        self,
        session: Session,
        span: Span,
        slug: str,
        rules: Rules,
        shaping: Shaping,
        *,
        limit: int | None = None,
    ) -> None:
        self._session = session
        self._span = span
        self._slug = slug
        self._rules = rules
        self._shaping = shaping
        self._limit = limit

    def __iter__(self) -> Iterator[Suggestion]:
        if self._limit is None:
            yield from self._all()
        else:
            yield from itertools.islice(self._all(), self._limit)

    def _all(self) -> Iterator[Suggestion]:
        last = 0
        while True:
            rows = self._session.execute(
                select(*_COLUMNS)
                .where(
                    Message.kind == SUGGESTION,
                    primary_slug() == self._slug,
                    self._span.where(),
                    Message.id > last,
                )
                .order_by(Message.id)
                .limit(BATCH)
            ).all()
            if not rows:
                return
            ids = [row.id for row in rows]
            themes = self._secondary_themes(ids)
            files = self._attachment_names(ids)
            for row in rows:
                yield self._suggestion(row, themes.get(row.id, ()), files.get(row.id, ()))
            last = ids[-1]

    def _suggestion(self, row: Any, themes: tuple[str, ...], files: tuple[str, ...]) -> Suggestion:
        return Suggestion(
            id=row.id,
            sender_name=clean_text(row.from_name, NAME_CHARS),
            sender_address=clean_text(row.from_addr),
            role=row.sender_role,
            received_at=row.received_at.astimezone(self._shaping.tz),
            subject=clean_text(row.subject),
            themes=themes,
            attachments=files,
            late=bool(row.late),
            duplicate_of=row.duplicate_of_id,
            thread_of=row.thread_of_id,
            stored_text=row.text,
            shaping=self._shaping,
        )

    def _secondary_themes(self, ids: list[int]) -> dict[int, tuple[str, ...]]:
        rows = self._session.execute(
            select(ThemeMatch.message_pk, ThemeMatch.theme)
            .where(ThemeMatch.message_pk.in_(ids), ThemeMatch.rank > 0)
            .order_by(ThemeMatch.message_pk, ThemeMatch.rank)
        )
        found: dict[int, list[str]] = {}
        for pk, slug in rows:
            found.setdefault(pk, []).append(theme_name(self._rules, slug, self._shaping.language))
        return {pk: tuple(names) for pk, names in found.items()}

    def _attachment_names(self, ids: list[int]) -> dict[int, tuple[str, ...]]:
        rows = self._session.execute(
            select(AttachmentRecord.message_pk, AttachmentRecord.filename)
            .where(AttachmentRecord.message_pk.in_(ids), AttachmentRecord.is_inline.is_(False))
            .order_by(AttachmentRecord.message_pk, AttachmentRecord.position)
        )
        found: dict[int, list[str]] = {}
        for pk, name in rows:
            if cleaned := clean_text(name):
                found.setdefault(pk, []).append(cleaned)
        return {pk: tuple(names) for pk, names in found.items()}


_COLUMNS = (
    Message.id,
    Message.from_name,
    Message.from_addr,
    Message.sender_role,
    Message.received_at,
    Message.subject,
    Message.text,
    Message.late,
    Message.duplicate_of_id,
    Message.thread_of_id,
)


@dataclass(frozen=True, slots=True)
class ThemeGroup:
    slug: str
    name: str
    count: int
    suggestions: SuggestionStream
    more: int = 0  # suggestions of the theme the digest does not list (over MAIL_LISTED)


def theme_groups(
    session: Session, span: Span, rules: Rules, figures: Figures, shaping: Shaping
) -> list[ThemeGroup]:
    """One group per primary theme with listed suggestions, in the rules' theme order."""
    counts = {figure.slug: figure.listed for figure in figures.themes if figure.listed}
    groups = []
    for slug in theme_order(rules, list(counts)):
        shown = counts[slug]
        if figures.listed > MAIL_LISTED:
            share = math.ceil(counts[slug] * MAIL_LISTED / figures.listed)
            shown = min(counts[slug], max(MIN_LISTED_PER_THEME, share))
        groups.append(
            ThemeGroup(
                slug=slug,
                name=theme_name(rules, slug, shaping.language),
                count=counts[slug],
                suggestions=SuggestionStream(session, span, slug, rules, shaping, limit=shown),
                more=counts[slug] - shown,
            )
        )
    return groups


def filtered_messages(
    session: Session, span: Span, tz: ZoneInfo, limit: int = FILTERED_LISTED
) -> list[Filtered]:
    """The first `limit` messages in the span that are not suggestions, in storage order."""
    rows = session.execute(
        select(
            Message.id,
            Message.kind,
            Message.from_name,
            Message.from_addr,
            Message.subject,
            Message.received_at,
        )
        .where(and_(Message.kind != SUGGESTION, span.where()))
        .order_by(Message.id)
        .limit(limit)
    )
    return [
        Filtered(
            id=row.id,
            kind=row.kind,
            sender_name=clean_text(row.from_name, NAME_CHARS),
            sender_address=clean_text(row.from_addr),
            subject=clean_text(row.subject),
            received_at=row.received_at.astimezone(tz),
        )
        for row in rows
    ]


def shaping_for(figures: Figures, *, final: bool, language: str, tz: ZoneInfo) -> Shaping:
    """Complete texts in the final digest's text part, trimmed ones in a daily's; the HTML's
    within `HTML_TEXT_BUDGET` (complete in the final when they fit, else trimmed, else none)."""
    if final and figures.text_chars <= HTML_TEXT_BUDGET:
        html_texts = COMPLETE
    elif min(figures.text_chars, figures.listed * TRIM_CHARS) <= HTML_TEXT_BUDGET:
        html_texts = TRIMMED
    else:
        html_texts = COMPACT
    trim_chars = TRIM_CHARS
    if figures.listed * TRIM_CHARS > TEXT_BUDGET:
        trim_chars = max(MIN_TRIM_CHARS, TEXT_BUDGET // figures.listed)
    return Shaping(
        language=language,
        tz=tz,
        text_complete=final and figures.text_chars <= TEXT_BUDGET,
        html_texts=html_texts,
        trim_chars=trim_chars,
    )


# -- text --------------------------------------------------------------------------------------


def clean_block(text: str) -> str:
    """A text with its line breaks, without control, bidi or invisible characters (SEC-5)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    # Fast path: str.isprintable() is False for every category removed below (and for some
    # spaces, which then take the slow path and are kept).
    if not text.replace("\n", "").isprintable():
        text = "".join(
            char
            for char in text
            if char == "\n"
            or char.isprintable()
            or unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs")
        )
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def trim(text: str, limit: int = TRIM_CHARS) -> tuple[str, int]:
    """`text` cut to about `limit` characters at a word boundary, and how many were left out."""
    if len(text) <= limit:
        return text, 0
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= limit - 100:
        cut = cut[:space]
    cut = cut.rstrip()
    return cut, len(text) - len(cut)


def paragraphs(text: str) -> tuple[tuple[str, ...], ...]:
    """Paragraphs (split at blank lines) of lines, for `<p>` and `<br>` in the HTML."""
    return tuple(tuple(block.split("\n")) for block in text.split("\n\n") if block.strip())
