"""The final digest's export: one row per suggestion as CSV and XLSX, formula-safe cells.

The columns and the cell rule are the export's (mirrored in cells.py), so a text starting with
`=` is never run by a spreadsheet. Rows are read in batches; the XLSX is written row by row in
xlsxwriter's constant-memory mode, with every value written as a string (no formulas, URLs or
numbers guessed from text).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter  # type: ignore[import-untyped]  # ships no type information
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from intake.digests.cells import COLUMNS, row_for, safe_cell
from intake.digests.figures import SUGGESTION, Span
from intake.store import queries
from intake.store.models import Message

BATCH = 500
XLSX_CELL_CHARS = 32_767  # Excel's limit for one cell; longer texts are cut with a note
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def suggestion_rows(session: Session, span: Span, tz: ZoneInfo) -> Iterator[list[str]]:
    """One list of safe cells per suggestion in the span, in `COLUMNS` order, by stored id."""
    last = 0
    while True:
        messages = session.scalars(
            select(Message)
            .where(Message.kind == SUGGESTION, span.where(), Message.id > last)
            .order_by(Message.id)
            .limit(BATCH)
            .options(
                selectinload(Message.themes),
                selectinload(Message.attachments),
                selectinload(Message.ack),
            )
        ).all()
        if not messages:
            return
        linked = [pk for m in messages for pk in (m.duplicate_of_id, m.thread_of_id) if pk]
        ids = queries.message_ids_for(session, linked)
        for message in messages:
            row: dict[str, Any] = row_for(message, tz, ids)
            yield [safe_cell(row[column]) for column in COLUMNS]
        last = messages[-1].id
        for message in messages:
            session.expunge(message)


def csv_bytes(rows: Iterator[list[str]]) -> bytes:
    """RFC 4180 CSV in UTF-8 with a byte-order mark (Excel reads UTF-8 only with one)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(rows: Iterator[list[str]], sheet: str = "suggestions") -> bytes:
    """An XLSX workbook with a header row and the rows, every cell a string."""
    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,  # rows are flushed to a temporary file as they are written
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    worksheet = workbook.add_worksheet(sheet)
    bold = workbook.add_format({"bold": True})
    for column, name in enumerate(COLUMNS):
        worksheet.write_string(0, column, name, bold)
    worksheet.freeze_panes(1, 0)
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row):
            worksheet.write_string(number, column, _fit(value))
    workbook.close()
    return out.getvalue()


def _fit(value: str) -> str:
    if len(value) <= XLSX_CELL_CHARS:
        return value
    note = " … (cut at Excel's cell limit; the CSV has the complete text)"
    return value[: XLSX_CELL_CHARS - len(note)] + note
