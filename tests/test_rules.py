"""The rules file: the shipped defaults, every kind of error with file, key and line, hot reload."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from intake.errors import ConfigError, RulesError
from intake.triage import RuleBook, load_rules, parse_rules
from intake.triage.rules import OTHER
from intake.triage.toml_lines import line_of
from tests.test_triage_kinds import RULES_FILE

VALID = """\
[themes.privacy]
name = { nl = "Privacy", en = "Privacy" }

[themes.mobility]
name = { nl = "Mobiliteit", en = "Mobility" }
description = "Verkeer en parkeren"

[[rules]]
id = "privacy-words"
theme = "privacy"
weight = 3
words = ["privacy"]

[[rules]]
id = "mobility-parking"
theme = "mobility"
weight = 2
words = ["parkeer"]

[[kind_patterns]]
id = "ooo-subject-nl"
kind = "auto_reply"
subject = ['^automatisch antwoord']
"""


def problems_of(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    return caught.value.problems


# -- the shipped file -------------------------------------------------------------------------


def test_shipped_rules_load_with_every_theme_of_the_consultation() -> None:
    rules = load_rules(RULES_FILE)
    slugs = [theme.slug for theme in rules.themes]
    assert slugs == [
        "privacy",
        "technology",
        "best-practices",
        "mobility",
        "liveability",
        "visitors",
        "sustainability",
        "participation",
        "process",
        OTHER,
    ]
    assert all(theme.name_nl and theme.name_en and theme.description for theme in rules.themes)
    assert {pattern.id for pattern in rules.kind_patterns} >= {"ooo-subject-nl", "ndr-subject-nl"}
    assert rules.partner.match("a@maastrichtuniversity.nl") == "maastrichtuniversity.nl"


def test_every_shipped_rule_has_a_comment_or_note_nearby() -> None:
    # Admins edit this file: each section starts with a comment block.
    text = RULES_FILE.read_text(encoding="utf-8")
    lines = text.splitlines()
    for header in ("[scoring]", "[neutral]", "[roles.council]", "[roles.partner]", "[allowlist]"):
        number = lines.index(header)
        nearby = [lines[number - 2], lines[number - 1], lines[number + 1]]
        assert any(line.startswith("#") for line in nearby), header


def test_rules_error_is_a_config_error() -> None:
    assert issubclass(RulesError, ConfigError)


# -- errors name file, key and line ---------------------------------------------------------

ERROR_CASES = [
    (
        "unknown-theme",
        VALID.replace('theme = "mobility"', 'theme = "mobiliteit"'),
        "rules.toml:16: rules[2].theme: unknown theme 'mobiliteit'; "
        "known themes: mobility, privacy",
    ),
    (
        "weight-not-positive",
        VALID.replace("weight = 2", "weight = -1"),
        "rules.toml:17: rules[2].weight: must be a positive number, got -1",
    ),
    (
        "weight-not-a-number",
        VALID.replace("weight = 2", 'weight = "2"'),
        "rules.toml:17: rules[2].weight: must be a positive number, got '2'",
    ),
    (
        "empty-word-list",
        VALID.replace('words = ["parkeer"]', "words = []"),
        "rules.toml:18: rules[2].words: empty list; remove the key or add at least one entry",
    ),
    (
        "duplicate-rule-id",
        VALID.replace('id = "mobility-parking"', 'id = "privacy-words"'),
        "rules.toml:15: rules[2].id: duplicate id 'privacy-words'; every rule needs its own id",
    ),
    (
        "id-not-kebab-case",
        VALID.replace('id = "mobility-parking"', 'id = "Mobility_Parking"'),
        "rules.toml:15: rules[2].id: 'Mobility_Parking' must be kebab case, "
        "like 'mobility-parking'",
    ),
    (
        "unknown-key-in-rule",
        VALID.replace("weight = 3\n", "weight = 3\nwieght = 4\n"),
        "rules.toml:12: rules[1].wieght: unknown key; expected one of fields, id, note, regex, "
        "senders, theme, weight, whole_word, words",
    ),
    (
        "unknown-top-level-table",
        VALID + "\n[themas]\nx = 1\n",
        "rules.toml:25: themas: unknown key; expected one of allowlist, kind_patterns, neutral, "
        "roles, rules, scoring, themes",
    ),
    (
        "theme-without-name",
        VALID.replace('name = { nl = "Mobiliteit", en = "Mobility" }\n', ""),
        "rules.toml:4: themes.mobility.name.nl: must be a non-empty string, got None",
    ),
    (
        "theme-name-unknown-language",
        VALID.replace('en = "Privacy" }', 'en = "Privacy", de = "Datenschutz" }'),
        "rules.toml:2: themes.privacy.name.de: unknown key; expected one of en, nl",
    ),
    (
        "bad-regex",
        VALID.replace('weight = 2\nwords = ["parkeer"]', "weight = 2\nregex = ['parkeer(']"),
        "rules.toml:18: rules[2].regex: bad regular expression 'parkeer(': "
        "missing ), unterminated subpattern at position 7",
    ),
    (
        "bad-subject-pattern",
        VALID.replace("'^automatisch antwoord'", "'^[automatisch'"),
        "rules.toml:23: kind_patterns[1].subject: bad regular expression '^[automatisch': "
        "unterminated character set at position 1",
    ),
    (
        "bad-opening-pattern",
        VALID.replace("subject = ['^automatisch antwoord']", "opening = ['^(dit is']"),
        "rules.toml:23: kind_patterns[1].opening: bad regular expression '^(dit is': "
        "missing ), unterminated subpattern at position 1",
    ),
    (
        "kind-pattern-without-patterns",
        VALID.replace("subject = ['^automatisch antwoord']\n", ""),
        "rules.toml:20: kind_patterns[1]: needs `subject` or `opening` patterns",
    ),
    (
        "unknown-kind",
        VALID.replace('kind = "auto_reply"', 'kind = "vacation"'),
        "rules.toml:22: kind_patterns[1].kind: unknown kind 'vacation'; "
        "use one of auto_reply, bounce, receipt, bulk, spam",
    ),
    (
        "rule-for-other",
        VALID.replace('theme = "privacy"', 'theme = "other"'),
        "rules.toml:10: rules[1].theme: 'other' is the fallback theme and takes no rules",
    ),
    (
        "rule-without-terms",
        VALID.replace('weight = 2\nwords = ["parkeer"]\n', "weight = 2\n"),
        "rules.toml:14: rules[2]: a rule needs words, regex or senders",
    ),
    (
        "unknown-field",
        VALID.replace("weight = 3\n", 'weight = 3\nfields = ["onderwerp"]\n'),
        "rules.toml:12: rules[1].fields: unknown field 'onderwerp'; use subject and/or body",
    ),
    (
        "domain-with-at-sign",
        VALID + '\n[roles.partner]\ndomains = ["info@zuyd.nl"]\n',
        "rules.toml:26: roles.partner.domains: 'info@zuyd.nl' is not a domain name "
        "(no @, no spaces)",
    ),
    (
        "scoring-share-out-of-range",
        "[scoring]\nsecondary_min_share = 2\n\n" + VALID,
        "rules.toml:2: scoring.secondary_min_share: must be a number from 0 to 1, got 2",
    ),
    (
        "word-listed-twice",
        VALID.replace('words = ["privacy"]', 'words = ["privé", "Prive"]'),
        "rules.toml:12: rules[1].words: 'Prive' is listed twice (case and accents are ignored)",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=case) for case, text, expected in ERROR_CASES],
)
def test_each_rules_error_names_file_key_line_and_what_is_wrong(
    text: str, expected: str, tmp_path: Path
) -> None:
    problems = problems_of(text, tmp_path)
    assert f"{tmp_path / expected}" in problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("weight = 2", "weight = 0").replace('theme = "privacy"', 'theme = "x"')
    problems = problems_of(text, tmp_path)
    assert len(problems) == 2
    assert "rules[1].theme" in problems[0]
    assert "rules[2].weight" in problems[1]


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    (problem,) = problems_of(VALID.replace("weight = 3", "weight = "), tmp_path)
    assert problem.startswith(f"{tmp_path / 'rules.toml'}:11: not valid TOML: ")


def test_a_missing_rules_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "absent.toml")


def test_words_are_stored_folded_and_other_is_added_when_absent() -> None:
    rules = parse_rules(VALID.replace('words = ["privacy"]', 'words = ["Privé Leven"]'))
    assert rules.rules[0].words == ("prive leven",)
    assert rules.themes[-1].slug == OTHER


def test_line_locator_finds_keys_in_array_tables_and_inline_tables() -> None:
    assert line_of(VALID, ("rules", 2, "weight")) == 17
    assert line_of(VALID, ("rules", 1)) == 8
    assert line_of(VALID, ("themes", "mobility", "description")) == 6
    assert line_of(VALID, ("themes", "privacy", "name", "nl")) == 2
    assert line_of(VALID, ("kind_patterns", 1, "subject")) == 23
    assert line_of(VALID, ("nowhere",)) is None


# -- hot reload -------------------------------------------------------------------------------


def _rewrite(path: Path, text: str) -> None:
    """Write `text` and move the mtime on, as an editor saving a second later would."""
    stat = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_rule_book_picks_up_a_good_edit(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(VALID, encoding="utf-8")
    book = RuleBook(path)
    assert book.rules.rules[1].words == ("parkeer",)
    _rewrite(path, VALID.replace('words = ["parkeer"]', 'words = ["parkeer", "fiets"]'))
    assert book.rules.rules[1].words == ("parkeer", "fiets")


def test_rule_book_keeps_the_last_good_rules_on_a_bad_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(VALID, encoding="utf-8")
    book = RuleBook(path)
    good = book.rules
    _rewrite(path, VALID.replace("weight = 2", "weight = -2"))
    with caplog.at_level(logging.WARNING, logger="intake.triage.rules"):
        assert book.rules is good
        assert book.rules is good  # asked again: no second warning for the same bad file
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rules[2].weight: must be a positive number" in warnings[0].getMessage()
    assert "previous rules stay in force" in warnings[0].getMessage()

    _rewrite(path, VALID.replace("weight = 2", "weight = 5"))
    assert book.rules.rules[1].weight == 5


def test_rule_book_keeps_the_rules_when_the_file_disappears(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(VALID, encoding="utf-8")
    book = RuleBook(path)
    good = book.rules
    path.unlink()
    assert book.rules is good


def test_rule_book_raises_when_the_first_load_fails(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(VALID.replace("weight = 2", "weight = 0"), encoding="utf-8")
    with pytest.raises(RulesError, match=r"rules\[2\]\.weight"):
        RuleBook(path)
