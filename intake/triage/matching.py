"""Normalise text (case, accents) and find compound, whole-word and regex terms in it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

_TOKEN = re.compile(r"\S+")


class Normalised:
    """Text folded for matching, which can point back at the original text of any folded span."""

    __slots__ = ("_starts", "original", "text")

    def __init__(self, original: str, text: str) -> None:
        self.original = original
        self.text = text  # folded tokens joined by single spaces; tokens never contain spaces
        self._starts: list[int] | None = None  # where each token starts in `original`, on first use

    def _origin(self, index: int) -> int:
        """The offset in the original text of the character that gave folded character `index`."""
        if self._starts is None:
            self._starts = [match.start() for match in _TOKEN.finditer(self.original)]
        number = self.text.count(" ", 0, index)  # tokens before this one
        start = self._starts[number]
        found = _TOKEN.match(self.original, start)
        token = found.group() if found else ""
        if self.text[index] == " ":
            return start + len(token)  # a separator: the whitespace after the token
        offset = index - (self.text.rfind(" ", 0, index) + 1)
        if token.isascii():
            return start + offset
        for position, char in enumerate(token):
            offset -= len(_fold_char(char))
            if offset < 0:
                return start + position
        return start + len(token)

    def original_span(self, start: int, end: int) -> str:
        """The original text behind folded text[start:end], with accents and case as written."""
        if start >= end:
            return ""
        return self.original[self._origin(start) : self._origin(end - 1) + 1]

    def original_word(self, start: int, end: int) -> str:
        """Like `original_span`, widened to whole words: "parkeer" shows as "parkeergarages"."""
        if start >= end:
            return ""
        first, last = self._origin(start), self._origin(end - 1) + 1
        while first > 0 and self.original[first - 1].isalnum():
            first -= 1
        while last < len(self.original) and self.original[last].isalnum():
            last += 1
        return self.original[first:last]


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return "".join(folded.split())  # "¨" decomposes to a space: keep tokens free of spaces


@lru_cache(maxsize=65536)
def _fold_token(token: str) -> str:
    if token.isascii():
        return token.lower()
    return "".join(_fold_char(char) for char in token)


def fold(text: str) -> str:
    """`text` case-folded, without accents, with runs of whitespace made one space, and stripped."""
    return " ".join(map(_fold_token, _TOKEN.findall(text)))


def normalise(text: str) -> Normalised:
    """Case-folded, accent-free, whitespace-collapsed text that maps back to the original.

    "Privé" folds to "prive", "Straße" to "strasse", "ﬁets" to "fiets"; a term found in the folded
    text is shown to people as it stands in the message via `Normalised.original_span`.
    """
    return Normalised(text, fold(text))


def strip_accents(pattern: str) -> str:
    """`pattern` without combining accents, so a regex written as "privé" matches folded text."""
    decomposed = unicodedata.normalize("NFKD", pattern)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


_Trie = dict[str, "_Trie"]


def trie_pattern(terms: Iterable[str]) -> str:
    """One regex source matching any of `terms`, preferring the longest at each position.

    A trie keeps the regex engine's work per position proportional to the term's length, not to
    the number of terms, so 2,000 keywords cost about what 20 do.
    """
    root: _Trie = {}
    for term in terms:
        node = root
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}  # a term ends here
    return _node_pattern(root) if root else r"(?!)"


def _node_pattern(node: _Trie) -> str:
    terminal = "" in node
    branches: list[str] = []
    leaves: list[str] = []
    for char in sorted(key for key in node if key):
        child = node[char]
        if list(child) == [""]:
            leaves.append(char)
        else:
            branches.append(re.escape(char) + _node_pattern(child))
    if len(leaves) == 1:
        branches.append(re.escape(leaves[0]))
    elif leaves:
        branches.append("[" + "".join(_class_escape(c) for c in leaves) + "]")
    if terminal:
        # Greedy optional: the longer continuation is tried first, the shorter term is the fallback.
        return "(?:" + "|".join(branches) + ")?" if branches else ""
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _class_escape(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char


@dataclass(frozen=True, slots=True)
class Hit:
    """A term found in folded text: which term (as configured, folded) and where."""

    term: str  # the folded term, or the regex source as configured
    start: int
    end: int
    source: str = "substring"  # "substring", "whole_word" or "regex"


@dataclass(frozen=True, slots=True)
class TermMatcher:
    """Finds every configured term in folded text; compiled once per field when rules load.

    Substring terms catch Dutch compounds ("camera" in "cameratoezicht"); whole-word terms
    ("ai", "ov") must stand alone. Where terms overlap the longest one starting first wins, so
    "cyberveiligheid" shadows the "veilig" inside it and a neutral term ("zorgen") hides the
    stem it contains ("zorg"). Regular expressions compete for the same text.
    """

    substring: re.Pattern[str]
    whole_word: re.Pattern[str]
    regexes: tuple[tuple[str, re.Pattern[str]], ...]  # (source as configured, compiled)

    @classmethod
    def build(
        cls,
        substring: Iterable[str],
        whole_word: Iterable[str],
        regexes: Sequence[tuple[str, re.Pattern[str]]] = (),
    ) -> TermMatcher:
        return cls(
            re.compile(trie_pattern(sorted(set(substring)))),
            re.compile(r"(?<!\w)(?:" + trie_pattern(sorted(set(whole_word))) + r")(?!\w)"),
            tuple(regexes),
        )

    def find(self, folded: str) -> list[Hit]:
        """Every term in `folded`, left to right, without overlaps (longest first at a position)."""
        if not folded:
            return []
        found = [
            (m.start(), m.end(), m.group(), "substring") for m in self.substring.finditer(folded)
        ]
        others = [
            (m.start(), m.end(), m.group(), "whole_word") for m in self.whole_word.finditer(folded)
        ]
        for source, compiled in self.regexes:
            others += [(m.start(), m.end(), source, "regex") for m in compiled.finditer(folded)]
        if others:  # each scan is ordered and free of overlaps on its own; together they are not
            found += others
            found.sort(key=lambda hit: (hit[0], -hit[1]))
        kept: list[Hit] = []
        reach = 0
        for start, end, term, source in found:
            if start >= reach and end > start:
                kept.append(Hit(term, start, end, source))
                reach = end
        return kept
