"""The stdlib feedparser's line-end check, reading only the end of a part.

After each MIME part, `email.feedparser` removes the line end that belongs to the next boundary
(RFC 2046) with `NLCRE_eol.search(payload)`, a `(\\r\\n|\\r|\\n)\\Z` pattern. `search` tries every
position of the payload before the one at its end can match: for a mail with a 2 MB
attachment, that scan is half of what parsing the whole mail costs. Starting the same search
two characters before the end finds the same match, at the same positions.
"""

from __future__ import annotations

import email.feedparser
import re


class TailSearch:
    """`pattern.search(text)` for a pattern anchored at the end (`\\Z`) that matches at most
    `width` characters: the same match, found without scanning the rest of `text`."""

    def __init__(self, pattern: re.Pattern[str], width: int) -> None:
        self.pattern = pattern
        self.width = width

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text, max(0, len(text) - self.width))


def install() -> None:
    """Give the feedparser the tail search; once per process, and only where it has the
    pattern this replaces (another Python may have changed the module)."""
    current = getattr(email.feedparser, "NLCRE_eol", None)
    if isinstance(current, re.Pattern) and current.pattern == r"(\r\n|\r|\n)\Z":
        email.feedparser.NLCRE_eol = TailSearch(current, 2)  # type: ignore[attr-defined]
