"""Score every theme rule, keep every match, pick the primary theme, else `other`."""

from __future__ import annotations

import re

from intake.parsing.parsed import ParsedMail
from intake.triage.matching import fold, normalise
from intake.triage.rules import OTHER, Rules
from intake.triage.verdict import Match, ThemeScore

# A cover note this short ("Zie hieronder", "Now with the attachment") says nothing itself.
SHORT_NOTE = 400
FORWARDED_LIMIT = 8000  # characters of a forwarded message that are scored
NOTE_SAYS_LITTLE = 3.0  # a note whose own words score less than one word that settles it
_FORWARD_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|antw)\s*:\s*)*(?:fwd?|wg|tr|doorgestuurd)\s*:", re.I
)
_QUOTE_HEAD_LINES = 6


def forwarded_text(mail: ParsedMail) -> str:
    """The quoted message that is the real suggestion, or "".

    Two cases, both behind a short cover note: a forward (FW:, Doorgestuurd:), where the
    forwarded mail is what someone wrote to the consultation; and a resend that quotes the
    sender's own earlier mail ("forgot the attachment"). A reply quoting someone else's mail,
    such as the council letter, never counts.
    """
    if not mail.quoted or len(mail.text.strip()) > SHORT_NOTE:
        return ""
    head = "\n".join(mail.quoted.splitlines()[:_QUOTE_HEAD_LINES]).lower()
    own = mail.sender is not None and "@" in mail.sender.key and mail.sender.key in head
    if own or _FORWARD_SUBJECT.match(mail.subject):
        return mail.quoted[:FORWARDED_LIMIT]
    return ""


def find_matches(mail: ParsedMail, rules: Rules) -> list[Match]:
    """Every rule hit in subject, new text and sender; each distinct term once per field.

    Only `mail.text` is read from the body: quoted replies, signatures and disclaimers never
    count, so a long thread or a footer full of keywords cannot steer the theme. The one
    exception is a forward or resend behind a short note (`forwarded_text`).
    """
    matches: list[Match] = []
    seen: set[tuple[str, str, str]] = set()
    _match_text(rules, "subject", mail.subject, matches, seen)
    _match_text(rules, "body", mail.text, matches, seen)
    if sum(m.weight for m in matches if m.field == "body") < NOTE_SAYS_LITTLE:
        forwarded = forwarded_text(mail)
        if forwarded:
            _match_text(rules, "forwarded", forwarded, matches, seen)
    if mail.sender is not None:
        for rule in rules.rules:
            if rule.senders is not None and rule.senders.match(mail.sender.key):
                matches.append(Match(rule.id, "sender", mail.sender.addr, rule.weight))
    return matches


def _match_text(
    rules: Rules, field: str, text: str, matches: list[Match], seen: set[tuple[str, str, str]]
) -> None:
    """Append the rule hits in `text` as matches in `field` (forwarded text reads as body)."""
    index = rules.index["subject" if field == "subject" else "body"]
    folded = normalise(text)
    factor = rules.scoring.subject_factor if field == "subject" else 1.0
    for hit in index.matcher.find(folded.text):
        for number in index.owners.get((hit.source, hit.term), ()):  # neutral terms own none
            rule = rules.rules[number]
            key = (rule.id, field, hit.term)
            if key in seen:
                continue
            seen.add(key)
            matched = folded.original_word(hit.start, hit.end)
            matches.append(Match(rule.id, field, matched, rule.weight * factor))


def score_themes(mail: ParsedMail, rules: Rules) -> tuple[ThemeScore, ...]:
    """The themes of a suggestion, primary first, each with its matches; `other` when none match.

    The primary theme has the highest score (ties go to the theme listed first in the rules
    file). A secondary theme is kept when it reaches `secondary_min_share` of the primary's score
    or has `secondary_min_terms` distinct words of weight 1 or more, so a stray word or a
    few faint hints do not add a theme.
    """
    theme_of = {rule.id: rule.theme for rule in rules.rules}
    by_theme: dict[str, list[Match]] = {}
    for match in find_matches(mail, rules):
        by_theme.setdefault(theme_of[match.rule], []).append(match)
    if not by_theme:
        return (ThemeScore(OTHER, 0.0),)
    order = {theme.slug: position for position, theme in enumerate(rules.themes)}
    scored = sorted(
        (
            ThemeScore(slug, round(sum(m.weight for m in found), 3), tuple(found))
            for slug, found in by_theme.items()
        ),
        key=lambda theme: (-theme.score, order[theme.theme]),
    )
    primary, *rest = scored
    floor = primary.score * rules.scoring.secondary_min_share
    kept = [
        theme
        for theme in rest
        if theme.score >= floor or _distinct_terms(theme) >= rules.scoring.secondary_min_terms
    ]
    return (primary, *kept)


def _distinct_terms(theme: ThemeScore) -> int:
    """Distinct words behind a theme's score, leaving out faint hints (weight below 1)."""
    return len({fold(match.matched) for match in theme.matches if match.weight >= 1})
