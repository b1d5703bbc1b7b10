"""Digest content: every suggestion once under its primary theme with the right figures,
hostile mail shown as text, texts trimmed or complete, the chart as a related inline part."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine, select

from intake.config import Settings
from intake.digests import preview_digest, send_due_digests
from intake.digests.content import TRIM_CHARS, clean_block, trim
from intake.store.db import open_database, session_factory
from intake.store.models import OutboxMail
from intake.triage.rules import load_rules
from tests.test_digest_fixtures import engine, local, make_settings, parse, settings, store

__all__ = ["engine", "settings"]  # fixtures

AFTER_DEADLINE = local(2019, 2, 6, 0, 30)
MORNING = local(2019, 2, 5, 8, 0)
BIDI = "\u202e\u2066\u200b\u200f"


def final_mail(settings: Settings, engine: Engine) -> EmailMessage:
    assert send_due_digests(settings, engine, AFTER_DEADLINE) == ["final"]
    with session_factory(engine)() as session:
        data = session.scalars(select(OutboxMail.data)).one()
    return parse(data)


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    # The mail is sent with CRLF line ends; compare with what people read.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def groups_in_text(text: str) -> dict[str, list[int]]:
    """Theme name → suggestion ids, read back from the text part's sections."""
    found: dict[str, list[int]] = {}
    sections = re.split(r"^={72}\n(.+) \(\d+\)\n={72}$", text, flags=re.MULTILINE)
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        found[name] = [int(i) for i in re.findall(r"^#(\d+)  ", body, flags=re.MULTILINE)]
    return found


def test_every_suggestion_appears_once_under_its_primary_theme(
    settings: Settings, engine: Engine
) -> None:
    rules = load_rules(settings.rules_path)
    slugs = [theme.slug for theme in rules.themes]
    rng = random.Random(7)
    expected: dict[str, list[int]] = {}
    for n in range(60):
        slug = rng.choice(slugs)
        secondary = [s for s in rng.sample(slugs, 2) if s != slug]
        pk = store(
            engine,
            stored_at=local(2019, 2, 1, 9, 0) + timedelta(minutes=n),
            theme=slug,
            secondary=secondary,
            late=n % 10 == 0,
            subject=f"Idee {n}",
        )
        expected.setdefault(rules.theme(slug).name("nl"), []).append(pk)  # type: ignore[union-attr]
    for kind in ("auto_reply", "bounce", "bounce", "unparseable"):
        store(engine, stored_at=local(2019, 2, 2, 9, 0), kind=kind)
    text, html = parts(final_mail(settings, engine))

    found = groups_in_text(text)
    assert found == expected
    order = [theme.name("nl") for theme in rules.themes]
    assert list(found) == [name for name in order if name in expected]  # the rules' order
    for ids in expected.values():
        for pk in ids:
            assert len(re.findall(rf">#{pk} ·", html)) == 1
    assert "- Suggesties in totaal: 60" in text
    assert "- Te laat binnengekomen: 6" in text
    assert "- Uitgefilterd (geen suggestie): 3 (onbestelbaar 2, automatisch antwoord 1)" in text
    assert "- Onleesbaar, graag zelf bekijken: 1" in text
    per_theme = Counter({name: len(ids) for name, ids in expected.items()})
    for name in order:
        assert re.search(rf"^{re.escape(name)} +\d+ +{per_theme[name]}$", text, re.MULTILINE)


def test_a_daily_digest_lists_only_its_own_period(settings: Settings, engine: Engine) -> None:
    old = store(engine, stored_at=local(2019, 2, 3, 9, 0), subject="Oud")
    new = store(engine, stored_at=local(2019, 2, 4, 9, 0), subject="Nieuw")
    rendered = preview_digest(
        settings, engine, final=False, since=local(2019, 2, 4, 8, 0), now=local(2019, 2, 5, 8, 0)
    )
    assert f"#{new}  Nieuw" in rendered.text
    assert f"#{old}  " not in rendered.text
    assert rendered.figures.listed == 1
    assert rendered.figures.total == 2


def test_hostile_mail_comes_out_as_escaped_text(settings: Settings, engine: Engine) -> None:
    store(
        engine,
        stored_at=local(2019, 2, 4, 10, 0),
        from_name=f"Jan {BIDI}gnp.exe",
        subject=f"<img src=x onerror=alert(1)>{BIDI}",
        text="<script>alert(1)</script>\nKlik [hier](javascript:alert(2)) of https://evil.example/x",
        attachments=["<b>notitie</b>.pdf"],
    )
    message = final_mail(settings, engine)
    text, html = parts(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;notitie&lt;/b&gt;.pdf" in html
    assert "<a " not in html  # nothing from mail becomes a link (SEC-4)
    assert "href" not in html
    assert "javascript:alert(2)" in html  # still there, as text
    for part in (text, html, str(message["Subject"])):
        assert not set(BIDI) & set(part)
    assert "Jan gnp.exe" in text
    assert "<script>alert(1)</script>" in text  # the text part is plain text


def test_daily_texts_are_trimmed_and_the_final_ones_complete(
    settings: Settings, engine: Engine
) -> None:
    long_text = " ".join(f"woord{n}" for n in range(400))
    store(engine, stored_at=local(2019, 2, 4, 10, 0), text=long_text)
    daily = preview_digest(settings, engine, final=False, since=None, now=local(2019, 2, 5, 8, 0))
    shown, more = trim(long_text)
    assert len(shown) <= TRIM_CHARS
    assert f"{shown} … ({more} tekens meer)" in daily.text
    assert f"({more} tekens meer)" in daily.html
    final = preview_digest(settings, engine, final=True, since=None, now=AFTER_DEADLINE)
    assert long_text in final.text
    assert "tekens meer" not in final.html


def test_clean_block_keeps_lines_and_drops_invisible_characters() -> None:
    assert clean_block("a\u202eb\r\nc\u200b\x07\n\n\n\nd  \t") == "ab\nc\n\nd"


def test_the_chart_is_a_png_related_to_the_html_by_content_id(
    settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0), theme="mobility")
    message = final_mail(settings, engine)
    assert message.get_content_type() == "multipart/mixed"
    alternative = next(p for p in message.walk() if p.get_content_type() == "multipart/alternative")
    plain, related = alternative.get_payload()  # type: ignore[misc]
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    assert image.get_content_type() == "image/png"
    assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    cid = image["Content-ID"].strip("<>")
    html = html_part.get_content()
    assert re.search(rf'<img src="cid:{re.escape(cid)}"[^>]* alt="[^"]+"', html)
    # The numbers are in a table beside the picture, and in the text part.
    assert re.search(r"<td[^>]*>Mobiliteit en bereikbaarheid</td>", html)
    text = plain.get_content().replace("\r\n", "\n")
    assert re.search(r"^Mobiliteit en bereikbaarheid +1 +1$", text, re.MULTILINE)


def test_the_digest_follows_the_configured_language(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, language="en")
    engine = open_database(settings.database.url)
    store(engine, stored_at=local(2019, 2, 4, 10, 0), theme="best-practices")
    rendered = preview_digest(
        settings, engine, final=False, since=None, now=local(2019, 2, 5, 8, 0)
    )
    assert rendered.subject.startswith("Daily digest")
    assert "What other cities do (1)" in rendered.text
    assert '<html lang="en">' in rendered.html
    engine.dispose()


def test_an_empty_period_says_nothing_arrived(settings: Settings, engine: Engine) -> None:
    rendered = preview_digest(
        settings, engine, final=False, since=None, now=local(2019, 2, 5, 8, 0)
    )
    assert rendered.figures.is_empty
    assert rendered.chart_png is None
    assert "niets binnengekomen" in rendered.text
    assert "niets nieuws" in rendered.subject
