"""The consultation mail corpus is consistent: sidecars, links, lateness and parseability."""

from __future__ import annotations

import email
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).resolve().parent / "mail" / "consultation"
# 6 February 2019 00:00 Europe/Amsterdam (CET, UTC+1), from the council letter
DEADLINE = datetime(2019, 2, 6, 0, 0, tzinfo=timezone(timedelta(hours=1)))
KINDS = {"suggestion", "auto_reply", "bounce", "bulk", "receipt", "spam", "empty", "unparseable"}
THEMES = {
    "privacy",
    "technology",
    "best-practices",
    "mobility",
    "liveability",
    "visitors",
    "sustainability",
    "participation",
    "process",
    "other",
}
LANGUAGES = {"nl", "en"}
REQUIRED = {"kind", "late", "arrived_at", "note"}
OPTIONAL = {"themes", "language", "duplicate_of", "thread_of"}

MESSAGES = sorted(CORPUS.glob("*.eml"))
SIDECARS = sorted(CORPUS.glob("*.expect.toml"))


def load_expect(message: Path) -> dict[str, Any]:
    with message.with_suffix(".expect.toml").open("rb") as handle:
        return tomllib.load(handle)


def arrived_at(expect: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(expect["arrived_at"])


def test_corpus_is_present() -> None:
    assert len(MESSAGES) >= 100


def test_every_sidecar_belongs_to_a_message() -> None:
    messages = {m.name for m in MESSAGES}
    orphans = [s.name for s in SIDECARS if s.name.replace(".expect.toml", ".eml") not in messages]
    assert orphans == []


@pytest.mark.parametrize("message", MESSAGES, ids=lambda p: p.name)
def test_message_has_a_valid_sidecar(message: Path) -> None:
    assert message.with_suffix(".expect.toml").exists(), "missing sidecar"
    expect = load_expect(message)
    keys = set(expect)
    assert keys >= REQUIRED, f"missing keys: {REQUIRED - keys}"
    assert keys <= REQUIRED | OPTIONAL, f"unknown keys: {keys - REQUIRED - OPTIONAL}"
    assert expect["kind"] in KINDS
    assert isinstance(expect["late"], bool)
    assert isinstance(expect["note"], str)
    assert expect["note"].strip()
    if expect["kind"] == "suggestion":
        themes = expect.get("themes")
        assert isinstance(themes, list)
        assert themes, "a suggestion names at least one theme"
        assert set(themes) <= THEMES, f"unknown themes: {set(themes) - THEMES}"
        assert len(themes) == len(set(themes)), "a theme is listed twice"
        assert "other" not in themes or themes == ["other"], "other excludes every other theme"
    else:
        assert not expect.get("themes"), "only suggestions carry themes"
        assert "duplicate_of" not in expect, "only suggestions are resent"
    if expect["kind"] == "unparseable":
        assert expect.get("language") in LANGUAGES | {None}
    elif expect["kind"] != "empty":
        assert expect.get("language") in LANGUAGES
    else:
        assert expect.get("language", "nl") in LANGUAGES


@pytest.mark.parametrize("message", MESSAGES, ids=lambda p: p.name)
def test_arrival_time_is_aware_and_matches_the_late_flag(message: Path) -> None:
    expect = load_expect(message)
    arrived = arrived_at(expect)
    assert arrived.utcoffset() is not None, "arrived_at must carry an offset"
    assert datetime(2019, 1, 1, tzinfo=UTC) < arrived < datetime(2019, 3, 1, tzinfo=UTC)
    assert expect["late"] is (arrived >= DEADLINE)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda p: p.name)
def test_links_point_to_earlier_messages_in_the_corpus(message: Path) -> None:
    expect = load_expect(message)
    for key in ("duplicate_of", "thread_of"):
        target_name = expect.get(key)
        if target_name is None:
            continue
        target = CORPUS / target_name
        assert target.exists(), f"{key} names a missing file: {target_name}"
        assert target != message, f"{key} points to itself"
        target_expect = load_expect(target)
        assert target_expect["kind"] == "suggestion", f"{key} must point to a suggestion"
        assert arrived_at(target_expect) < arrived_at(expect), f"{key}: not an earlier message"
        assert "duplicate_of" not in target_expect, f"{key}: points to a resend, not the first"


@pytest.mark.parametrize("message", MESSAGES, ids=lambda p: p.name)
def test_message_parses_with_the_stdlib_without_raising(message: Path) -> None:
    data = message.read_bytes()
    parsed = email.message_from_bytes(data)  # compat32: defects are recorded, not raised
    for part in parsed.walk():
        part.get_payload(decode=True)
        part.get_content_charset()
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        parsed.get_all(name)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda p: p.name)
def test_delivered_message_carries_a_return_path(message: Path) -> None:
    head = message.read_bytes().split(b"\n", 1)[0]
    assert head.startswith(b"Return-Path: <"), "every delivered message starts with Return-Path"
    if load_expect(message)["kind"] == "bounce":
        assert head.rstrip() == b"Return-Path: <>", "bounces come from the null sender"


def test_corpus_covers_every_kind_and_theme() -> None:
    expects = [load_expect(m) for m in MESSAGES]
    assert {e["kind"] for e in expects} == KINDS
    themes = {t for e in expects for t in e.get("themes", [])}
    assert themes == THEMES
    assert {e.get("language") for e in expects if e["kind"] == "suggestion"} == LANGUAGES
    assert any(e["late"] for e in expects if e["kind"] == "suggestion")
    assert any("duplicate_of" in e for e in expects)
    assert any("thread_of" in e for e in expects)


SAMPLES = Path(__file__).resolve().parent.parent / "intake" / "samples"


def test_every_sample_has_exactly_one_arrival_time() -> None:
    with (SAMPLES / "arrivals.toml").open("rb") as handle:
        arrivals = tomllib.load(handle)
    assert set(arrivals) == {p.name for p in SAMPLES.glob("*.eml")}
    assert all(isinstance(v, datetime) and v.utcoffset() is not None for v in arrivals.values())
    assert any(value >= DEADLINE for value in arrivals.values())
    assert any(value < DEADLINE for value in arrivals.values())


@pytest.mark.parametrize("message", sorted(SAMPLES.glob("*.eml")), ids=lambda p: p.name)
def test_sample_parses_with_the_stdlib(message: Path) -> None:
    parsed = email.message_from_bytes(message.read_bytes())
    assert parsed["From"]
    assert parsed["Subject"]
    assert message.read_bytes().startswith(b"Return-Path: <")
