"""A final digest too large to mail whole: texts cut to their share of the text part, the CSV
zipped, and the complete texts still in the attachments (issue 6)."""

from __future__ import annotations

import io
import zipfile
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.digests import content, sending
from intake.store.db import open_database, session_factory
from intake.store.models import OutboxMail
from tests.test_digest_scale import build_final


def final_mail(tmp_path: Path, suggestions: int) -> tuple[EmailMessage, str]:
    """The final digest of that many suggestions, and its text part."""
    build_final(tmp_path, suggestions)
    engine = open_database(f"sqlite:///{tmp_path / 'intake.db'}")
    with session_factory(engine)() as session:
        data = session.scalars(select(OutboxMail.data).where(OutboxMail.purpose == "digest")).one()
    engine.dispose()
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return parsed, body.get_content()


def test_a_final_digest_over_the_budgets_cuts_texts_and_zips_the_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content, "TEXT_BUDGET", 20_000)
    monkeypatch.setattr(sending, "CSV_ZIP_BYTES", 10_000)
    mail, text = final_mail(tmp_path, 200)
    assert "tekens meer)" in text  # each text cut to about 20,000 / 200 = 100 characters
    assert len(text) < 200 * 600
    files = {part.get_filename(): part for part in mail.iter_attachments()}
    zipped = next(name for name in files if name and name.endswith(".csv.zip"))
    assert any(name and name.endswith(".xlsx") for name in files)
    archive = zipfile.ZipFile(io.BytesIO(files[zipped].get_content()))
    (inner,) = archive.namelist()
    assert inner == zipped.removesuffix(".zip")
    rows = archive.read(inner).decode("utf-8-sig").splitlines()
    assert len(rows) > 200  # a header and every suggestion, with its complete text


def test_a_small_final_digest_keeps_complete_texts_and_a_plain_csv(tmp_path: Path) -> None:
    mail, text = final_mail(tmp_path, 20)
    assert "tekens meer)" not in text
    names = [part.get_filename() or "" for part in mail.iter_attachments()]
    assert any(name.endswith(".csv") for name in names)


def test_a_digest_over_the_listing_cap_lists_each_themes_share_and_says_how_many_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content, "MAIL_LISTED", 60)
    monkeypatch.setattr(content, "MIN_LISTED_PER_THEME", 5)
    mail, text = final_mail(tmp_path, 300)
    listed = sum(1 for line in text.splitlines() if line.startswith("#"))
    assert 60 <= listed < 90  # each of six themes its share of 60, rounded up
    more = [int(line.split()[2]) for line in text.splitlines() if line.startswith("En nog ")]
    assert listed + sum(more) == 300
    html = mail.get_body(preferencelist=("html",))
    assert html is not None
    assert "de bijlagen bevatten ze allemaal" in html.get_content()
