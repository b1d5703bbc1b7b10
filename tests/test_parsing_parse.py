"""parse(): realistic fixtures from tests/mail/parsing/, and the never-raises contract."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake.parsing import ParsedMail, mailparser_scan, parse
from intake.parsing.charsets import _is_noise, _noise_finder, is_unreadable
from intake.parsing.parsed import Address
from intake.parsing.repair import repair_header_block

FIXTURES = Path(__file__).parent / "mail" / "parsing"


def load(name: str) -> ParsedMail:
    return parse((FIXTURES / name).read_bytes())


def nested(depth: int) -> bytes:
    """A message with `depth` multipart levels, the shape of a nesting attack."""
    parts = [b"From: a@example.nl\nSubject: diep\nMessage-ID: <deep@example.nl>\n"]
    for level in range(depth):
        parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level))
    parts.append(b"Content-Type: text/plain\n\nonderaan\n")
    parts.extend(b"--b%d--\n" % level for level in reversed(range(depth)))
    return b"".join(parts)


def test_outlook_reply_keeps_only_the_new_text() -> None:
    mail = load("outlook-nl-thread-disclaimer.eml")
    assert mail.text.startswith("Beste collega's,")
    assert "verbreden tot 3 meter" in mail.text
    assert "Jan Jansen" not in mail.text


def test_outlook_reply_moves_the_quoted_thread_signature_and_disclaimer_aside() -> None:
    mail = load("outlook-nl-thread-disclaimer.eml")
    assert mail.quoted.startswith("____")
    assert "Kan het fietspad langs de Molenweg breder?" in mail.quoted
    assert mail.signature.startswith("Met vriendelijke groet,")
    assert "Petra de Vries" in mail.signature
    assert mail.disclaimer.startswith("Dit bericht is uitsluitend bestemd voor de geadresseerde.")
    assert "Denk aan het milieu" in mail.disclaimer


def test_outlook_reply_headers_are_decoded() -> None:
    mail = load("outlook-nl-thread-disclaimer.eml")
    assert mail.sender == Address("p.devries@gemeente-voorbeeld.nl", "Vries, Petra de")
    assert mail.cc == (Address("j.muller@gemeente-voorbeeld.nl", "Jan Müller"),)
    assert mail.subject == "RE: Omgevingsvisie: fietspad langs de Molenweg – reactie"
    assert mail.message_id == "AM0PR01MB1234ABCD5678EF90@AM0PR01MB1234.eurprd01.prod.outlook.com"
    assert not mail.message_id_derived
    assert mail.in_reply_to == "CAF=abc123@mail.gmail.com"
    assert mail.references == ("CAF=root0@mail.gmail.com", "CAF=abc123@mail.gmail.com")
    assert mail.date == datetime(2020, 2, 3, 10, 15, tzinfo=UTC)
    assert mail.content_language == "nl-NL"
    assert mail.language == "nl"
    assert mail.content_type == "multipart/alternative"
    assert mail.part_types == ("multipart/alternative", "text/plain", "text/html")
    assert mail.header_all("references") == (
        "<CAF=root0@mail.gmail.com> <CAF=abc123@mail.gmail.com>",
    )
    assert mail.has_header("X-MS-Has-Attach")
    assert mail.header("x-ms-has-attach") == ""


def test_windows_1252_declared_as_iso_8859_1_keeps_euro_and_curly_quotes() -> None:
    mail = load("cp1252-as-iso-8859-1.eml")
    assert mail.text == (
        "Het parkeertarief van € 2,50 per uur vind ik “onredelijk” – zeker voor bewoners. "
        "Café ‘De Hoek’ merkt het ook."
    )
    assert mail.subject == "Parkeren € 2,50 per uur is te duur"
    assert mail.sender == Address("renee@example.nl", "Renée Bakker")
    assert "CharsetRepaired" in mail.defects


def test_outlook_word_html_alternative_is_not_used_when_plain_text_exists() -> None:
    mail = load("outlook-nl-thread-disclaimer.eml")
    assert not mail.html_only
    assert "MsoNormal" not in mail.text
    assert "OfficeDocumentSettings" not in mail.text


def test_html_only_mail_becomes_text_without_script_style_or_link_targets() -> None:
    mail = load("html-only-script.eml")
    assert mail.html_only
    assert "Graag zou ik meer bankjes en schaduw op het plein zien." in mail.text
    assert "1. eerst de bankjes" in mail.text  # no Markdown escaping
    for leftover in ("<", "document.cookie", "alert", "font-family", "javascript:", "pixel", "**"):
        assert leftover not in mail.text
    assert "Nieuwsbrief" not in mail.text  # <title> is not body text


def test_attached_message_rfc822_with_empty_note_is_the_text_and_names_the_author() -> None:
    mail = load("forward-rfc822.eml")
    assert mail.forwarded_from == Address("sanne@example.nl", "Sanne de Boer")
    assert "speeltuin aan de Eikenlaan heeft een hek nodig" in mail.text
    assert mail.signature == "Groeten,\nSanne"
    [attached] = mail.attachments
    assert attached.content_type == "message/rfc822"
    assert attached.filename == "Suggestie speeltuin Eikenlaan.eml"


def test_outlook_inline_forward_with_empty_note_is_the_text_and_names_the_author() -> None:
    mail = load("outlook-inline-forward.eml")
    assert mail.forwarded_from == Address("anouk.visser@example.nl", "Anouk Visser")
    assert mail.text.startswith("Geachte heer Bos,")
    assert "oude linden" in mail.text
    assert "Van:" not in mail.text
    assert mail.signature.startswith("Met vriendelijke groet,")


def test_winmail_dat_is_an_attachment_not_the_body() -> None:
    mail = load("tnef-winmail.eml")
    assert mail.text == "Zie bijlage voor mijn zienswijze op het bestemmingsplan."
    [tnef] = mail.attachments
    assert (tnef.filename, tnef.content_type, tnef.is_inline) == (
        "winmail.dat",
        "application/ms-tnef",
        False,
    )
    assert tnef.size > 0
    assert len(tnef.sha256) == 64


def test_inline_cid_image_is_an_inline_attachment_and_names_are_made_safe() -> None:
    mail = load("inline-cid-image.eml")
    assert mail.html_only
    assert mail.text == "De kruising bij de school is gevaarlijk:"
    image, pdf = mail.attachments
    assert (image.filename, image.is_inline) == ("kruising.png", True)
    assert image.content_type == "image/png"
    assert image.size == 70  # decoded PNG bytes, not the base64 text
    # "../../etc/" is dropped and the right-to-left override that disguised "exe.pdf" is gone.
    assert (pdf.filename, pdf.is_inline) == ("fdp.exe", False)


def test_missing_message_id_is_derived_stably_from_the_content() -> None:
    data = (FIXTURES / "missing-message-id.eml").read_bytes()
    first, again = parse(data), parse(b"Received: from relay.example.nl\n" + data)
    assert first.message_id_derived
    assert first.message_id.startswith("derived-")
    assert first.message_id.endswith("@intake.invalid")
    assert again.message_id == first.message_id  # delivery headers do not change it
    assert parse(data.replace(b"groen", b"blauw")).message_id != first.message_id


def test_malformed_exchange_headers_parse_with_defects_instead_of_failing() -> None:
    mail = load("malformed-headers.eml")
    assert mail.error is None
    assert mail.message_id == "[b378c1d2e3f4@microsoft.com]"
    assert mail.to == ()
    assert mail.date is None
    assert mail.return_path == ""  # the null sender <>
    assert "AddressHeaderDefect" in mail.defects
    assert mail.text == "De lantaarnpaal op de hoek is al weken kapot."


def test_topmost_return_path_is_taken_and_absent_return_path_is_none() -> None:
    assert load("gmail-nl-reply.eml").return_path == "bounce-1@mailer.example.com"
    assert load("missing-message-id.eml").return_path is None


def test_gmail_dutch_reply_with_wrapped_attribution_splits_off_the_quote() -> None:
    mail = load("gmail-nl-reply.eml")
    assert mail.text == (
        "Aanvulling: het losloopgebied kan het beste aan de oostkant van het park,\n"
        "daar zijn de minste speelplekken."
    )
    assert mail.quoted.startswith("Op wo 12 feb. 2020 om 09:01 schreef Gemeente Voorbeeld <")


def test_deeply_nested_message_returns_an_error_value_with_headers() -> None:
    mail = parse(nested(5000))
    assert mail.error is not None
    assert "nesting" in mail.error.lower()
    assert mail.subject == "diep"
    assert mail.message_id == "deep@example.nl"
    assert mail.sender == Address("a@example.nl")


def test_a_hundred_levels_of_nesting_still_give_the_text() -> None:
    mail = parse(nested(120))
    assert mail.error is None
    assert mail.text == "onderaan"


def test_absurd_nesting_is_cut_off_with_a_defect_not_an_error() -> None:
    mail = parse(nested(400))
    assert mail.error is None
    assert "NestingTooDeep" in mail.defects


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"no headers at all\n\njust text",
        b"From: \xff\xfe\nSubject: =?x-unknown?Q?=FF?=\n\n\xff",
        b"Content-Type: multipart/mixed; boundary=\n\n--\n--",
        b'Content-Type: text/plain; charset="utf-7"\n\n+AGEAYgBj-+2D3eAA-',
        b"Date: Mon, 99 Foo 99999 99:99:99 +9999\nMessage-ID: <>\n\n",
    ],
)
def test_parse_never_raises_on_hostile_input(data: bytes) -> None:
    mail = parse(data)
    assert isinstance(mail, ParsedMail)
    assert mail.message_id


def test_truncated_message_parses_its_headers_and_note() -> None:
    data = (
        b"From: Groot Bestand <groot@example.nl>\nSubject: Plattegrond\n"
        b"Message-ID: <big-1@example.nl>\nContent-Type: multipart/mixed; boundary=x\n\n"
        b"[intake: bericht van 48 MB ingekort tot de headers]\n"
    )
    mail = parse(data, truncated=True)
    assert mail.error is None
    assert mail.subject == "Plattegrond"
    assert mail.message_id == "big-1@example.nl"
    assert "TruncatedMessage" in mail.defects


def test_mbox_envelope_line_and_lost_header_indents_are_repaired() -> None:
    data = (
        b"From groot@example.nl Wed Apr 19 20:56:33 2017\n"
        b"X-Spam-Status: No, hits=0.0\n"
        b"tests=BAYES_00\n"
        b"From: Kim <kim@example.nl>\n"
        b"Subject: Herstelde headers\n\nTekst.\n"
    )
    mail = parse(data)
    assert mail.sender == Address("kim@example.nl", "Kim")
    assert mail.subject == "Herstelde headers"
    assert {"MboxFromLineRemoved", "HeaderLineUnfolded"} <= set(mail.defects)


def test_missing_from_falls_back_to_reply_to_with_a_defect() -> None:
    mail = parse(b"Reply-To: <antwoord@example.nl>\nSubject: x\n\ntekst\n")
    assert mail.sender == Address("antwoord@example.nl")
    assert "FromMissing" in mail.defects


def test_binary_labelled_as_text_is_marked_unreadable() -> None:
    noise = bytes(range(256)) * 8
    data = b"From: a@example.nl\nContent-Type: text/plain; charset=x-unknown\n\n" + noise
    assert "UnreadableText" in parse(data).defects


def test_dutch_text_with_a_stray_nul_is_readable() -> None:
    text = "Graag meer groen in de binnenstad en minder verkeer op de Maasboulevard.\x00\n" * 5
    data = b"From: a@example.nl\nContent-Type: text/plain; charset=utf-8\n\n" + text.encode()
    assert "UnreadableText" not in parse(data).defects


def test_the_noise_pattern_finds_exactly_the_noise_characters_of_the_bmp() -> None:
    # is_unreadable counts with a regex built from _is_noise; beyond the BMP it asks _is_noise.
    bmp = "".join(map(chr, range(0x10000)))
    found = _noise_finder().findall(bmp)
    assert found == [char for char in bmp if _is_noise(char)]
    assert {"\ufffd", "\x00", "\ue000"} <= set(found)
    assert not {"\n", "\xa0", "\u200e"} & set(found)


@pytest.mark.parametrize(
    ("noise", "unreadable"),
    [
        ("\x01" * 5, False),  # 5 in 100: the share is not exceeded
        ("\x01" * 6, True),
        ("\ufffd" * 6, True),
        ("\U000f0000" * 6, True),  # private use, beyond the BMP
        ("\U000e0080" * 6, True),  # unassigned, beyond the BMP
        ("\U0001f600" * 6, False),  # an emoji is text
        ("\xa0\u200e\t\x0c" * 6, False),  # spaces and marks people's mail is full of
    ],
)
def test_unreadable_is_a_share_of_control_and_undecodable_characters(
    noise: str, unreadable: bool
) -> None:
    text = noise + "x" * (100 - len(noise))
    assert is_unreadable(text) is unreadable


def test_the_actions_of_a_delivery_status_part_are_read() -> None:
    data = (
        b"From: postmaster@example.nl\nContent-Type: multipart/report;"
        b' report-type=delivery-status; boundary="r"\n\n'
        b"--r\nContent-Type: text/plain\n\nBezorgd.\n"
        b"--r\nContent-Type: message/delivery-status\n\n"
        b"Reporting-MTA: dns; mx.example.nl\n\n"
        b"Final-Recipient: rfc822; a@example.nl\nAction: Delivered\nStatus: 2.0.0\n\n"
        b"Final-Recipient: rfc822; b@example.nl\nAction: failed\nStatus: 5.1.1\n"
        b"--r--\n"
    )
    assert parse(data).dsn_actions == ("delivered", "failed")


def test_a_failing_mail_parser_scanner_leaves_the_stdlib_reading_and_a_defect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise IndexError("a scanner bug")

    scanned = load("gmail-nl-reply.eml")
    monkeypatch.setattr(mailparser_scan, "parse_mail_date", broken)
    mail = load("gmail-nl-reply.eml")
    assert mail.error is None
    assert (mail.sender, mail.to, mail.text) == (scanned.sender, scanned.to, scanned.text)
    assert mailparser_scan.MAILPARSER_DEFECT in mail.defects
    assert mailparser_scan.MAILPARSER_DEFECT not in scanned.defects


def test_a_leap_second_the_stdlib_rejects_is_read_by_mail_parser_in_utc() -> None:
    data = b"From: a@example.nl\r\nDate: Tue, 4 Feb 2020 10:00:60 +0100\r\n\r\ntekst\r\n"
    mail = parse(data)
    assert mail.date == datetime(2020, 2, 4, 9, 1, tzinfo=UTC)


def test_header_repairs_leave_the_body_byte_for_byte() -> None:
    body = b"From the start:\r\nno header\r\n\r\nTo: not a header either\r\n" * 1000
    data = (
        b"From a@example.nl Mon Jan  7 09:00:00 2019\r\nSubject: x\r\nlost fold\r\nTo: b@x.nl\r\n"
    )
    repaired, repairs = repair_header_block(data + b"\r\n" + body)
    assert repairs == ["MboxFromLineRemoved", "HeaderLineUnfolded"]
    assert repaired == b"Subject: x\r\n lost fold\r\nTo: b@x.nl\r\n\r\n" + body
