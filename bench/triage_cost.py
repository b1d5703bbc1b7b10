"""Triage cost per message with the shipped rules and with 2,000 keywords across the themes.

python bench/triage_cost.py [--keywords 2000] [--messages 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mailgen

from intake.parsing import parse
from intake.parsing.parsed import ParsedMail
from intake.triage import TriageContext, load_rules, parse_rules, triage
from intake.triage.rules import Rules

RULES = Path(__file__).resolve().parent.parent / "config" / "rules.toml"
SYLLABLES = [
    "ver",
    "keer",
    "stad",
    "licht",
    "park",
    "zorg",
    "data",
    "wijk",
    "groen",
    "net",
    "plein",
    "brug",
    "markt",
    "school",
    "huis",
    "weg",
    "fiets",
    "bus",
    "lucht",
    "water",
]


def keywords_rules(base: str, keywords: int, seed: int = 6) -> str:
    """The shipped rules plus `keywords` made-up words in rules of 20 words, spread over themes."""
    rng = random.Random(seed)
    themes = [
        line.split(".", 1)[1].rstrip("]")
        for line in base.splitlines()
        if line.startswith("[themes.") and line.strip() != "[themes.other]"
    ]
    words: set[str] = set()
    while len(words) < keywords:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) + "x")
    ordered = sorted(words)
    extra = []
    for number, start in enumerate(range(0, len(ordered), 20)):
        chunk = ", ".join(f'"{word}"' for word in ordered[start : start + 20])
        extra.append(
            f'\n[[rules]]\nid = "bench-{number}"\ntheme = "{themes[number % len(themes)]}"\n'
            f"weight = 1\nwords = [{chunk}]\n"
        )
    return base + "".join(extra)


def per_message(mails: list[ParsedMail], rules: Rules, rounds: int = 5) -> float:
    """The best of `rounds` mean triage times per message, in seconds."""
    context = TriageContext(
        received_at=datetime(2019, 1, 10, tzinfo=UTC), deadline=datetime(2019, 2, 6, tzinfo=UTC)
    )
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for mail in mails:
            triage(mail, rules, context)
        best = min(best, (time.perf_counter() - began) / len(mails))
    return best


def measure(keywords: int = 2000, messages: int = 300) -> dict[str, float]:
    base = RULES.read_text(encoding="utf-8")
    shipped = load_rules(RULES)
    grown = parse_rules(keywords_rules(base, keywords), "bench-rules")
    mails = [parse(mailgen.generate(n).data) for n in range(messages)]
    return {
        "shipped_rules": len(shipped.rules),
        "grown_rules": len(grown.rules),
        "shipped_us": per_message(mails, shipped) * 1e6,
        "grown_us": per_message(mails, grown) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keywords", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    result = measure(args.keywords, args.messages)
    print(f"shipped rules ({result['shipped_rules']:.0f}): {result['shipped_us']:.0f} µs/message")
    print(
        f"+{args.keywords} keywords ({result['grown_rules']:.0f} rules): "
        f"{result['grown_us']:.0f} µs/message"
    )


if __name__ == "__main__":
    main()
