"""The parser against the shared public corpus: nothing raises, sender and subject agree.

The expectations come from the projects the fixtures were taken from (see the corpus README):
Zammad's `.yml` (`from_email`, `subject`), mail-parser's own asserts (`from` as [name, address]
pairs, `from_email`, `subject`), django-helpdesk (`subject`, `subject_startswith`) and flanker
(`subject`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from intake.parsing import ParsedMail, parse

AGREEMENT = 0.95


def _norm(value: object) -> str:
    return " ".join(str(value).split()).casefold()


def _expected_sender(expected: dict[str, Any]) -> str | None:
    if "from_email" in expected:
        return str(expected["from_email"])
    pairs = expected.get("from")
    if isinstance(pairs, list) and pairs and isinstance(pairs[0], list):
        return str(pairs[0][1])  # mail-parser's [name, address]
    return None


def _checks(expected: dict[str, Any], mail: ParsedMail) -> list[tuple[str, str, str]]:
    """(field, expected, got) for every expectation this entry has."""
    checks: list[tuple[str, str, str]] = []
    sender = _expected_sender(expected)
    if sender is not None:
        checks.append(("sender", sender, mail.sender.addr if mail.sender else ""))
    if expected.get("subject") is not None:  # zammad mail023 has none to compare
        checks.append(("subject", str(expected["subject"]), mail.subject))
    if "subject_startswith" in expected:
        prefix = _norm(expected["subject_startswith"])
        got = mail.subject if _norm(mail.subject).startswith(prefix) else f"!{mail.subject}"
        checks.append(("subject", str(expected["subject_startswith"]), got[: len(prefix)]))
    return checks


@functools.cache
def _load(root: Path) -> list[tuple[dict[str, Any], bytes]]:
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    return [(entry, (root / entry["path"]).read_bytes()) for entry in index]


@functools.cache
def _parse_all(root: Path) -> list[tuple[dict[str, Any], ParsedMail]]:
    # Parsed once per session: the corpus is 18 MB and three tests read the results.
    return [(entry, parse(data)) for entry, data in _load(root)]


@pytest.fixture
def corpus(public_mail: Path) -> list[tuple[dict[str, Any], bytes]]:
    return _load(public_mail)


@pytest.fixture
def parsed(public_mail: Path) -> list[tuple[dict[str, Any], ParsedMail]]:
    return _parse_all(public_mail)


def test_every_corpus_message_parses_without_raising(
    corpus: list[tuple[dict[str, Any], bytes]],
) -> None:
    assert len(corpus) == 836
    for entry, data in corpus:
        mail = parse(data)  # parse() must return, whatever the bytes
        assert mail.message_id, entry["path"]


def test_corpus_messages_parse_without_error(
    parsed: list[tuple[dict[str, Any], ParsedMail]],
) -> None:
    failed = [(entry["path"], mail.error) for entry, mail in parsed if mail.error]
    assert failed == []


def test_sender_and_subject_agree_with_upstream_expectations(
    parsed: list[tuple[dict[str, Any], ParsedMail]],
) -> None:
    messages = agreed = 0
    disagreements: list[str] = []
    for entry, mail in parsed:
        checks = _checks(entry["expected"], mail)
        if not checks:
            continue
        messages += 1
        wrong = [c for c in checks if _norm(c[1]) != _norm(c[2])]
        if wrong:
            disagreements.extend(
                f"{entry['path']} {f}: want {w[:80]!r} got {g[:80]!r}" for f, w, g in wrong
            )
        else:
            agreed += 1
    print(f"\nsender+subject agree for {agreed}/{messages} messages ({agreed / messages:.1%})")
    print("\n".join(disagreements))
    assert messages > 100
    assert agreed / messages >= AGREEMENT, "\n".join(disagreements)
