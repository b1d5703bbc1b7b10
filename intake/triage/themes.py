"""Score every theme rule, keep every match, pick the primary theme, else `other`."""

from __future__ import annotations

from intake.parsing.parsed import ParsedMail
from intake.triage.matching import fold, normalise
from intake.triage.rules import OTHER, Rules
from intake.triage.verdict import Match, ThemeScore


def find_matches(mail: ParsedMail, rules: Rules) -> list[Match]:
    """Every rule hit in subject, new text and sender; each distinct term once per field.

    Only `mail.text` is read from the body: quoted replies, signatures and disclaimers never
    count, so a long thread or a footer full of keywords cannot steer the theme.
    """
    matches: list[Match] = []
    seen: set[tuple[str, str, str]] = set()
    for field, text in (("subject", mail.subject), ("body", mail.text)):
        index = rules.index[field]
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
    if mail.sender is not None:
        for rule in rules.rules:
            if rule.senders is not None and rule.senders.match(mail.sender.key):
                matches.append(Match(rule.id, "sender", mail.sender.addr, rule.weight))
    return matches


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
