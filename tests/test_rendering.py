"""render_mail: both languages, escaping, strictness and the template rules."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jinja2 import TemplateNotFound, UndefinedError

from intake.acks import AckInput, AckSettings, ack_context
from intake.rendering import RenderedMail, default_templates_dir, render_mail

AMS = ZoneInfo("Europe/Amsterdam")
TEMPLATES = default_templates_dir()
XSS = "<img src=x onerror=alert(1)>"
LANGUAGES = ["nl", "en"]


def context(**overrides: Any) -> dict[str, object]:
    values: dict[str, object] = {
        "consultation": "Smart City: onderzoeksopdracht",
        "name": "Jan Jansen",
        "subject": "Slimme lantaarnpalen",
        "received_at": datetime(2019, 2, 5, 14, 3, tzinfo=AMS),
        "attachments": ["plan.pdf", "foto.jpg"],
        "attachments_more": 0,
        "themes": ["Mobiliteit", "Privacy"],
        "late": False,
        "deadline": datetime(2019, 2, 6, tzinfo=AMS),
        "contact": "smartcity@maastricht.nl",
        "sender_name": "Gemeente Maastricht, Smart City",
    }
    values.update(overrides)
    return values


def render(lang: str, **overrides: Any) -> RenderedMail:
    return render_mail("ack", lang, context(**overrides), TEMPLATES)


VARIANTS = [
    {},
    {"late": True},
    {"subject": "", "name": "", "attachments": [], "themes": [], "contact": ""},
    {"themes": ["Privacy"], "attachments": ["a.pdf"] * 20, "attachments_more": 3},
    {"deadline": datetime(2019, 2, 6, 17, 0, tzinfo=AMS), "late": True},
]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("overrides", VARIANTS)
def test_every_variant_renders_without_template_leaks(lang: str, overrides: dict[str, Any]) -> None:
    mail = render(lang, **overrides)
    for part in mail:
        assert part.strip()
        for leak in ("{{", "}}", "{%", "%}", "{#", "None", "Undefined"):
            assert leak not in part
    assert "\n" not in mail.subject


def test_dutch_and_english_say_the_same_things() -> None:
    nl, en = render("nl"), render("en")
    assert nl.subject == "Ontvangstbevestiging: Slimme lantaarnpalen"
    assert en.subject == "Received: Slimme lantaarnpalen"
    for text, words in (
        (
            nl.text,
            ["5 februari 2019 om 14:03", "Tot 6 februari 2019", "8 februari 2019", "19 maart"],
        ),
        (en.text, ["5 February 2019 at 14:03 CET", "until 6 February 2019", "8 February 2019"]),
    ):
        for word in words:
            assert word in text
    for mail in (nl, en):
        for value in ("plan.pdf, foto.jpg", "Mobiliteit, Privacy", "smartcity@maastricht.nl"):
            assert value in mail.text
            assert value in mail.html


def test_without_a_subject_the_fallback_subject_is_used() -> None:
    assert render("nl", subject="").subject == "Ontvangstbevestiging van uw suggestie"
    assert render("en", subject="").subject == "Your suggestion has been received"


def test_a_deadline_with_a_time_shows_the_time() -> None:
    mail = render("nl", late=True, deadline=datetime(2019, 2, 6, 17, 0, tzinfo=AMS))
    assert "sluitingsdatum (6 februari 2019, 17:00 uur)" in mail.text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_html_escapes_every_value(lang: str) -> None:
    html = render(
        lang, subject=XSS, name=XSS, attachments=[XSS], themes=[XSS], contact=XSS, sender_name=XSS
    ).html
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 6


@pytest.mark.parametrize("lang", LANGUAGES)
def test_html_is_self_contained(lang: str) -> None:
    html = render(lang).html
    assert not re.search(r"(src|href)\s*=|<(link|script|img|style)\b|url\(", html, re.IGNORECASE)
    assert f'<html lang="{lang}">' in html
    assert "max-width:600px" in html


def test_bidi_and_control_characters_never_reach_the_subject() -> None:
    subject = render("nl", subject="Slim\u202emoc.live\u202c\r\nBcc: x@y.nl\x00").subject
    assert subject == "Ontvangstbevestiging: Slimmoc.live Bcc: x@y.nl"


def test_values_from_the_acks_context_are_stripped_of_bidi_characters() -> None:
    ack = AckInput(
        message_id=None,
        references=(),
        subject="Plan\u202e fdp.exe",
        received_at=datetime(2019, 2, 5, 13, 3, tzinfo=ZoneInfo("UTC")),
        attachment_names=("foto\u202egpj.exe",),
        theme_names=("Mobiliteit",),
        late=False,
        language="nl",
        recipient="jan@example.nl",
        recipient_name="Jan\u2067 Jansen",
    )
    settings = AckSettings(
        from_address="smartcity@maastricht.nl",
        from_name="Gemeente Maastricht",
        message_id_domain="maastricht.nl",
        consultation_name="Smart City",
        deadline=datetime(2019, 2, 6, tzinfo=AMS),
        timezone="Europe/Amsterdam",
        contact="",
    )
    values = ack_context(ack, settings)
    assert set(values) == set(context())  # this file's context mirrors the real one
    mail = render_mail("ack", "nl", values, TEMPLATES)
    for part in mail:
        assert not re.search("[\u202a-\u202e\u2066-\u2069\u200b-\u200f]", part)
    assert "14:03" in mail.text  # received_at shown in the consultation's time zone


def test_a_missing_variable_fails_loudly() -> None:
    values = context()
    del values["deadline"]
    with pytest.raises(UndefinedError):
        render_mail("ack", "nl", values, TEMPLATES)


def test_printing_none_fails_loudly() -> None:
    with pytest.raises(UndefinedError, match="None"):
        render("nl", sender_name=None)


def test_an_unknown_language_falls_back_to_dutch() -> None:
    assert render("de") == render("nl")
    assert render("../en") == render("nl")


def test_a_language_missing_one_template_falls_back_for_that_template(tmp_path: Path) -> None:
    for lang in ("nl", "fr"):
        (tmp_path / lang).mkdir()
    for suffix in ("subject", "txt", "html"):
        (tmp_path / "nl" / f"note.{suffix}.j2").write_text(f"nl {suffix} {{{{ x }}}}\n")
    (tmp_path / "fr" / "note.subject.j2").write_text("fr sujet {{ x }}\n")
    mail = render_mail("note", "fr", {"x": "<b>"}, tmp_path)
    assert mail == RenderedMail("fr sujet <b>", "nl txt <b>\n", "nl html &lt;b&gt;\n")


def test_bodies_lose_trailing_blanks_and_runs_of_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "nl").mkdir()
    (tmp_path / "nl" / "note.subject.j2").write_text("  Onderwerp \u202e{{ x }}\t\n")
    (tmp_path / "nl" / "note.txt.j2").write_text("\n\nEen  \n\n\n\n{{ x }}\t\n\n\nDrie\n\n")
    (tmp_path / "nl" / "note.html.j2").write_text("<p>\n\n</p>\r\n\r\n\r\n")
    mail = render_mail("note", "nl", {"x": "twee"}, tmp_path)
    assert mail == RenderedMail("Onderwerp twee", "Een\n\ntwee\n\nDrie\n", "<p>\n\n</p>\n")


def test_an_unknown_mail_name_fails_loudly() -> None:
    with pytest.raises(TemplateNotFound):
        render_mail("nonexistent", "nl", {}, TEMPLATES)


def test_the_templates_folder_is_the_repository_one() -> None:
    assert Path(__file__).resolve().parent.parent / "templates" == TEMPLATES
    for lang in LANGUAGES:
        for suffix in ("subject", "txt", "html"):
            assert (TEMPLATES / lang / f"ack.{suffix}.j2").is_file()


def test_no_template_marks_anything_safe() -> None:
    # SEC-2: message-derived values are never marked safe; nothing is allow-listed yet.
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.j2")
        if re.search(r"\|\s*safe\b|Markup|autoescape\s+false", path.read_text(), re.IGNORECASE)
    ]
    assert offenders == []


def test_every_template_variable_is_documented() -> None:
    readme = (TEMPLATES / "README.md").read_text()
    for name in context():
        assert f"`{name}`" in readme
