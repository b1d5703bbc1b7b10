"""The whole shared real-world corpus through one poll: every message accounted for, senders and
subjects as upstream expects, and the sisimai bounces and reports never taken for suggestions."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intake import ingest
from intake.store.db import open_database, session_factory
from intake.store.models import Message, SourceItem
from tests.pipeline_fixtures import deliver, poll, settings_in
from tests.test_public_corpus_parsing import AGREEMENT, _checks, _norm

ARRIVED = datetime(2019, 1, 30, 12, 0, tzinfo=UTC)
NON_SUGGESTIONS = 0.95


@dataclass(frozen=True)
class Ingested:
    entries: dict[str, dict[str, Any]]  # Maildir key → index.json entry
    summary: ingest.PollSummary
    engine: Engine
    seconds: float

    def by_key(self) -> dict[str, Message]:
        with session_factory(self.engine)() as session:
            rows = session.execute(select(SourceItem.key, Message).join(Message))
            found = {row[0]: row[1] for row in rows}
            session.expunge_all()
        return found


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    # The fixture in conftest.py is function-scoped; this module polls the corpus once.
    root = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "public-mail"
    if not (root / "index.json").exists():
        pytest.skip("shared corpus not found at ../shared/corpora/public-mail")
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    settings = settings_in(tmp_path_factory.mktemp("public"))
    entries = {}
    for n, entry in enumerate(index):
        key = f"{n:04d}.public"
        deliver(settings, (root / entry["path"]).read_bytes(), ARRIVED, name=key)
        entries[key] = entry
    engine = open_database(settings.database.url)
    started = time.monotonic()
    summary = poll(settings, engine)  # must not raise, whatever the corpus holds
    seconds = time.monotonic() - started
    print(f"\npolled {len(index)} public messages in {seconds:.1f} s: {summary}")
    yield Ingested(entries, summary, engine, seconds)
    engine.dispose()


def test_every_public_message_is_accounted_for(ingested: Ingested) -> None:
    total = len(ingested.entries)
    assert total == 836
    summary = ingested.summary
    assert summary.fetched == total
    assert summary.stored + summary.known == total
    by_key = ingested.by_key()
    assert set(by_key) == set(ingested.entries)
    # Byte-identical copies in the corpus are one stored message; distinct ones never merge
    # unless they share Message-ID and body.
    distinct = {entry["sha256"] for entry in ingested.entries.values()}
    assert summary.stored <= len(distinct)
    merged = [
        ingested.entries[key]["path"]
        for key, message in by_key.items()
        if message.sha256 != ingested.entries[key]["sha256"]
    ]
    print(f"\n{len(merged)} messages merged into another with the same Message-ID and body")
    assert len(merged) <= summary.known


def test_sender_and_subject_agree_with_upstream_expectations_after_storing(
    ingested: Ingested,
) -> None:
    messages = agreed = 0
    disagreements = []
    for key, message in ingested.by_key().items():
        entry = ingested.entries[key]
        stored = SimpleNamespace(
            sender=SimpleNamespace(addr=message.from_addr) if message.from_addr else None,
            subject=message.subject,
        )
        checks = _checks(entry["expected"], stored)  # type: ignore[arg-type]
        if not checks:
            continue
        messages += 1
        wrong = [c for c in checks if _norm(c[1]) != _norm(c[2])]
        if wrong:
            disagreements += [f"{entry['path']} {f}: want {w!r} got {g!r}" for f, w, g in wrong]
        else:
            agreed += 1
    print(f"\nstored sender+subject agree for {agreed}/{messages} ({agreed / messages:.1%})")
    print("\n".join(disagreements))
    assert messages > 100
    assert agreed / messages >= AGREEMENT, "\n".join(disagreements)


def test_sisimai_bounces_and_reports_are_not_suggestions(ingested: Ingested) -> None:
    rows = [
        (ingested.entries[key], message)
        for key, message in ingested.by_key().items()
        if ingested.entries[key]["source"] == "sisimai"
    ]
    misses = [(entry, m) for entry, m in rows if m.kind == "suggestion"]
    rate = 1 - len(misses) / len(rows)
    print(
        f"\nsisimai non-suggestions: {rate:.1%} ({len(rows) - len(misses)}/{len(rows)}); "
        f"kinds {dict(Counter(m.kind for _, m in rows))}"
    )
    listing = [
        f"  {entry['path']} (upstream {entry['expected'].get('kind')}): {m.subject[:60]!r}"
        for entry, m in misses
    ]
    print("\n".join(listing))
    assert rate >= NON_SUGGESTIONS, "\n".join(listing)
    # None of them may be acknowledged: that is how mail loops start.
    assert all(m.ack_status != "queued" for _, m in rows if m.kind != "suggestion")


def test_public_corpus_polls_in_reasonable_time(ingested: Ingested) -> None:
    assert ingested.seconds < 90
