"""Kind detection on the shared real-world corpus: bounces from sisimai, human mail from talon."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from intake.parsing import parse
from intake.triage import TriageContext, triage
from intake.triage.verdict import Kind
from tests.test_triage_kinds import RULES

CONTEXT = TriageContext(
    received_at=datetime(2019, 2, 1, tzinfo=UTC), deadline=datetime(2019, 2, 6, tzinfo=UTC)
)


def kinds_in(corpus: Path, source: str, folder: str = "") -> Counter[Kind]:
    index = json.loads((corpus / "index.json").read_text(encoding="utf-8"))
    found: Counter[Kind] = Counter()
    for entry in index:
        if entry["source"] == source and entry["path"].startswith(folder):
            mail = parse((corpus / entry["path"]).read_bytes())
            found[triage(mail, RULES, CONTEXT).kind] += 1
    return found


def test_sisimai_bounces_are_almost_never_taken_for_suggestions(public_mail: Path) -> None:
    kinds = kinds_in(public_mail, "sisimai", "sisimai/bsd/lhost-")
    total = sum(kinds.values())
    assert total > 400
    assert kinds[Kind.SUGGESTION] / total < 0.02, kinds


def test_sisimai_mail_that_is_not_a_bounce_stays_human(public_mail: Path) -> None:
    kinds = kinds_in(public_mail, "sisimai", "sisimai/not/is-not-bounce-")
    assert kinds == Counter({Kind.SUGGESTION: 2})


def test_a_bounce_sisimai_cannot_parse_is_still_a_bounce_here(public_mail: Path) -> None:
    # sisimai issue 368: a postmaster notice from the null sender, filed under not/ upstream.
    kinds = kinds_in(public_mail, "sisimai", "sisimai/not/rb-issue-368")
    assert kinds == Counter({Kind.BOUNCE: 1})
