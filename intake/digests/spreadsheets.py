"""The final digest's export: one row per suggestion as CSV and XLSX, formula-safe cells.

The columns and the cell rule are the export's (mirrored in cells.py), so a text starting with
`=` is never run by a spreadsheet. Rows are read in batches; the XLSX is written row by row in
xlsxwriter's constant-memory mode, with every value written as a string (no formulas, URLs or
numbers guessed from text).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import xlsxwriter  # type: ignore[import-untyped]  # ships no type information
from sqlalchemy import and_
from sqlalchemy.orm import Session

from intake.digests.cells import COLUMNS, export_rows, safe_cell
from intake.digests.figures import SUGGESTION, Span
from intake.store.models import Message

XLSX_CELL_CHARS = 32_767  # Excel's limit for one cell; longer texts are cut with a note
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def suggestion_rows(session: Session, span: Span, tz: ZoneInfo) -> Iterator[list[str]]:
    """One list of safe cells per suggestion in the span, in `COLUMNS` order, by stored id."""
    for row in export_rows(session, and_(Message.kind == SUGGESTION, span.where()), tz):
        yield [safe_cell(row[column]) for column in COLUMNS]


def export_files(
    rows: Iterable[list[str]], folder: Path, stem: str = "suggestions", sheet: str = "suggestions"
) -> tuple[Path, Path]:
    """The rows written as `<stem>.csv` and `<stem>.xlsx` in `folder`, in one pass; both paths.

    CSV: RFC 4180 in UTF-8 with a byte-order mark (Excel reads UTF-8 only with one).
    XLSX: a header row, then every non-empty cell as a string; constant-memory mode flushes
    each row to a temporary file as it is written. Memory holds one row, whatever the count.
    """
    csv_path, xlsx_path = folder / f"{stem}.csv", folder / f"{stem}.xlsx"
    workbook = xlsxwriter.Workbook(
        str(xlsx_path),
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "tmpdir": str(folder),
        },
    )
    worksheet = workbook.add_worksheet(sheet)
    bold = workbook.add_format({"bold": True})
    for column, name in enumerate(COLUMNS):
        worksheet.write_string(0, column, name, bold)
    worksheet.freeze_panes(1, 0)
    with csv_path.open("w", encoding="utf-8-sig", newline="") as text:
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for number, row in enumerate(rows, start=1):
            writer.writerow(row)
            for column, value in enumerate(row):
                if value:
                    worksheet.write_string(number, column, _fit(value))
    workbook.close()
    return csv_path, xlsx_path


def _fit(value: str) -> str:
    if len(value) <= XLSX_CELL_CHARS:
        return value
    note = " … (cut at Excel's cell limit; the CSV has the complete text)"
    return value[: XLSX_CELL_CHARS - len(note)] + note
