"""Coverage-guided fuzzing of the parser and triage with atheris (libFuzzer).

The contract under test: `parse(data)` never raises, whatever the bytes, and `triage` of what it
returns never raises either. libFuzzer mutates its corpus towards new code paths in intake, in
mail-parser and in the standard library's email package, and stops at the first exception,
writing the input that caused it to `crash-<sha1>` in the current folder.

Install atheris (a binary wheel; building it from source needs clang) and run:

    .venv/bin/pip install -e '.[fuzz]'
    mkdir -p var/fuzz-corpus && cp tests/mail/*/*.eml var/fuzz-corpus/
    .venv/bin/python bench/fuzz_parser.py var/fuzz-corpus -max_total_time=600 -max_len=65536

Any libFuzzer option works (`-jobs=2 -workers=2`, `-runs=100000`, `-help=1`). Replay a crash with
`.venv/bin/python bench/fuzz_parser.py crash-<sha1>`. The hypothesis tests in
tests/reliability/test_fuzz_mime.py run the whole pipeline (store included) instead.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["intake", "mailparser", "email", "html2text"]):
    from intake.parsing import parse
    from intake.triage import TriageContext, triage
    from intake.triage.rules import load_rules

RULES = load_rules(Path(__file__).resolve().parent.parent / "config" / "rules.toml")
CONTEXT = TriageContext(
    received_at=datetime(2019, 1, 28, 10, 0, tzinfo=UTC),
    deadline=datetime(2019, 2, 5, 23, 0, tzinfo=UTC),
    own_addresses=("smartcity@maastricht.nl",),
)


def test_one_input(data: bytes) -> None:
    mail = parse(data)
    verdict = triage(mail, RULES, CONTEXT)
    if not (mail.message_id and verdict.kind):
        raise AssertionError(f"no Message-ID or kind: {mail.message_id!r} {verdict.kind!r}")


def main() -> None:
    logging.disable(logging.CRITICAL)  # parse() logs its fall-backs at DEBUG; keep output short
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
