"""Find the line of a key in TOML source, since tomllib reports lines only for syntax errors."""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = Sequence[str | int]  # ("rules", 12, "weight"): the 12th [[rules]] table (from 1), key weight

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = r'^\s*(?:"{0}"|\'{0}\'|{0})\s*[=.]'


def _header_parts(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in raw.split("."))


def line_of(text: str, path: Path) -> int | None:
    """The 1-based line where `path` is defined in `text`, or its table's header; None if unknown.

    Best effort for the layouts an admin writes by hand: `[table]`, `[[array]]` tables and
    `key = value` lines, including inline tables (the line of the key that holds them).
    """
    lines = text.splitlines()
    counts: dict[tuple[str, ...], int] = {}
    tables: list[tuple[tuple[str | int, ...], int]] = []  # (table path, header line index)
    for number, line in enumerate(lines):
        match = _HEADER.match(line)
        if not match:
            continue
        parts = _header_parts(match.group(2))
        if match.group(1) == "[[":
            counts[parts] = counts.get(parts, 0) + 1
            tables.append(((*parts, counts[parts]), number))
        else:
            tables.append((parts, number))

    best: tuple[tuple[str | int, ...], int] | None = None
    for table_path, number in tables:
        size = len(table_path)
        if tuple(path[:size]) == table_path and (best is None or size > len(best[0])):
            best = (table_path, number)
    if best is None:
        start, rest = -1, list(path)
    else:
        start, rest = best[1], list(path[len(best[0]) :])
    end = next((n for _, n in tables if n > start), len(lines))
    if rest and isinstance(rest[0], str):
        pattern = re.compile(_KEY.format(re.escape(rest[0])))
        for number in range(start + 1, end):
            if pattern.match(lines[number]):
                return number + 1
    return start + 1 if best is not None else None
