"""The final digest's CSV and XLSX: they open, hold one row per suggestion, run no formula,
and use exactly the export's columns and cell rule."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import openpyxl
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from intake import export
from intake.config import Settings
from intake.digests import cells, send_due_digests
from intake.store.db import session_factory, transaction
from intake.store.models import Message, OutboxMail
from intake.store.outbox_rows import ACK, queue_mail
from tests.test_digest_fixtures import AMS, engine, local, parse, settings, store

__all__ = ["engine", "settings"]  # fixtures

HOSTILE = ('=HYPERLINK("https://evil.example","klik")', "+31 6 1234", "-1", "@SUM(A1)")


def final_attachments(settings: Settings, engine: Engine) -> dict[str, object]:
    assert send_due_digests(settings, engine, local(2019, 2, 6, 1, 0)) == ["final"]
    with session_factory(engine)() as session:
        data = session.scalars(select(OutboxMail.data)).one()
    message = parse(data)
    return {
        str(part.get_filename()): part.get_payload(decode=True)
        for part in message.iter_attachments()
    }


def test_the_final_digest_attaches_csv_and_xlsx_with_one_row_per_suggestion(
    settings: Settings, engine: Engine
) -> None:
    ids = [
        store(engine, stored_at=local(2019, 2, 1, 9, n), subject=hostile, text=hostile)
        for n, hostile in enumerate(HOSTILE)
    ]
    ids.append(store(engine, stored_at=local(2019, 2, 2, 9, 0), from_name="=cmd|' /C calc'!A0"))
    store(engine, stored_at=local(2019, 2, 2, 9, 5), kind="auto_reply", subject="=1+1")
    files = final_attachments(settings, engine)
    assert sorted(files) == ["suggestions-2019-02-06.csv", "suggestions-2019-02-06.xlsx"]

    csv_data = files["suggestions-2019-02-06.csv"]
    assert isinstance(csv_data, bytes)
    table = list(csv.reader(io.StringIO(csv_data.decode("utf-8-sig"), newline="")))
    assert tuple(table[0]) == export.COLUMNS
    assert [int(row[0]) for row in table[1:]] == ids
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in table[1:] for cell in row)

    xlsx_data = files["suggestions-2019-02-06.xlsx"]
    assert isinstance(xlsx_data, bytes)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_data), read_only=True).active
    assert sheet is not None
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert tuple(rows[0]) == export.COLUMNS
    assert [int(row[0]) for row in rows[1:]] == ids  # type: ignore[arg-type]
    assert all(isinstance(value, str) for row in rows[1:] for value in row if value is not None)
    assert not any(str(value).startswith("=") for row in rows for value in row if value)
    assert [[value or "" for value in row] for row in rows[1:]] == table[1:]


def test_digest_rows_are_the_export_rows(settings: Settings, engine: Engine) -> None:
    first = store(engine, stored_at=local(2019, 2, 1, 9, 0), attachments=["a.pdf", "b.png"])
    second = store(
        engine,
        stored_at=local(2019, 2, 1, 9, 5),
        secondary=["technology"],
        duplicate_of=first,
        thread_of=first,
        late=True,
    )
    with transaction(engine) as session:
        message = session.get(Message, second)
        assert message is not None
        message.kind_reasons = [{"code": "ok", "field": "body", "matched": "x"}]
        message.ack_status, message.ack_reason = "queued", "ok"
        queue_mail(
            session,
            purpose=ACK,
            message_id="ack1@maastricht.nl",
            envelope_from="smartcity@maastricht.nl",
            recipients=["jan@example.nl"],
            subject="Ontvangstbevestiging",
            data=b"",
            now=local(2019, 2, 1, 9, 6),
            message_pk=second,
        )
        first_message = session.get(Message, first)
        assert first_message is not None
        first_message.ack_status, first_message.ack_reason = "suppressed", "sender-limit"
    assert cells.COLUMNS == export.COLUMNS
    with session_factory(engine)() as session:
        ours = list(cells.export_rows(session, Message.id > 0, AMS))
        theirs = list(export.export_rows(engine, AMS))
    assert ours == theirs


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.sampled_from(["=1", "+1", "-1", "@a", "\tx", "\rx", "'=1"]),
    st.just(datetime(2019, 2, 6, tzinfo=UTC)),
)


@given(values)
def test_the_cell_rule_is_the_exports(value: object) -> None:
    assert cells.safe_cell(value) == export.safe_cell(value)
