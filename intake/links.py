"""Resend (duplicate_of) and reply (thread_of) links, decided from candidates the caller found."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

# A resend is the same suggestion sent again: identical, or lightly edited (a typo fixed, a
# sentence added). Measured on the test corpus, edits stay well above 0.8 and two different
# suggestions from one sender below 0.5.
RESEND_SIMILARITY = 0.8
MAX_WORDS = 1_500  # a suggestion is rarely longer; a resend repeats its beginning
_PREFIX = re.compile(r"^\s*((re|aw|antw|fw|fwd|doorst|wg|tr)\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Earlier:
    """A stored suggestion of the same sender, as a resend candidate."""

    id: int
    subject: str
    text: str
    duplicate_of_id: int | None  # resends point at the first one, never at another resend


@dataclass(frozen=True, slots=True)
class Link:
    target_id: int
    reason: str


def find_thread(
    in_reply_to: str | None, references: Sequence[str], known: Mapping[str, int]
) -> Link | None:
    """The stored message this one replies to: In-Reply-To first, then References newest first.

    `known` maps Message-IDs (stored messages, and our own outgoing mail mapped to the message
    it answered) to message ids.
    """
    candidates = [in_reply_to] if in_reply_to else []
    candidates += list(reversed(references))
    for ref in candidates:
        if ref and ref in known:
            header = "In-Reply-To" if ref == in_reply_to else "References"
            return Link(known[ref], f"{header} <{ref}>")
    return None


def thread_refs(in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """Every Message-ID this message refers to, for one lookup."""
    return [ref for ref in [in_reply_to, *references] if ref]


def find_resend(subject: str, text: str, earlier: Iterable[Earlier]) -> Link | None:
    """The first stored suggestion that this one repeats, when the texts are nearly the same."""
    earlier = list(earlier)
    if not earlier:
        return None  # most senders send one suggestion: no text to normalise
    body = normalise(text)
    if not body:
        return None
    best: tuple[float, Earlier] | None = None
    for candidate in earlier:
        ratio = similarity(body, normalise(candidate.text))
        same_subject = strip_prefixes(subject) == strip_prefixes(candidate.subject)
        threshold = RESEND_SIMILARITY - (0.1 if same_subject else 0.0)
        if ratio >= threshold and (best is None or ratio > best[0]):
            best = (ratio, candidate)
    if best is None:
        return None
    ratio, match = best
    return Link(match.duplicate_of_id or match.id, f"same sender, text {ratio:.0%} alike")


def similarity(a: str, b: str) -> float:
    """How alike two normalised texts are (0..1), compared word by word.

    SequenceMatcher is quadratic: character by character, two texts of 5,000 characters took
    seconds and two of 300 KB stalled a poll for many minutes, once per earlier suggestion of
    the sender. Words are six times fewer, and the first `MAX_WORDS` decide.
    """
    if a == b:
        return 1.0
    matcher = SequenceMatcher(None, a.split()[:MAX_WORDS], b.split()[:MAX_WORDS], autojunk=False)
    if matcher.real_quick_ratio() < RESEND_SIMILARITY - 0.1:
        return matcher.real_quick_ratio()
    return matcher.ratio()


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(re.findall(r"\w+", letters))


def strip_prefixes(subject: str) -> str:
    return normalise(_PREFIX.sub("", subject))
