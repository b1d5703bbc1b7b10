"""Inline forwards: the original author and text behind the forward markers."""

from __future__ import annotations

import pytest

from intake.parsing import parse
from intake.parsing.forwards import find_inline_forward, is_forward_subject
from intake.parsing.parsed import Address

ORIGINAL = "Graag een hondenuitlaatplek in het Westpark."


@pytest.mark.parametrize(
    ("marker", "from_line"),
    [
        ("---------- Forwarded message ---------", "From: Eva Kok <eva@example.nl>"),
        ("---------- Doorgestuurd bericht ---------", "Van: Eva Kok <eva@example.nl>"),
        ("Begin forwarded message:", "From: Eva Kok <eva@example.nl>"),
        ("Begin doorgestuurd bericht:", "Van: Eva Kok <eva@example.nl>"),
        ("-----Doorgestuurd bericht-----", "Van: Eva Kok [mailto:eva@example.nl]"),
    ],
)
def test_forward_markers_give_author_and_original_text(marker: str, from_line: str) -> None:
    body = f"\n{marker}\n{from_line}\nDatum: 1 feb 2020\nOnderwerp: Honden\n\n{ORIGINAL}\n"
    forward = find_inline_forward(body, "Honden")
    assert forward is not None
    assert forward.author == Address("eva@example.nl", "Eva Kok")
    assert forward.text == ORIGINAL
    assert forward.note == ""


def test_outlook_block_after_a_forward_subject_is_a_forward() -> None:
    body = (
        "Zie hieronder.\n\n________________________________\nVan: Eva Kok <eva@example.nl>\n"
        f"Verzonden: zaterdag 1 februari 2020 10:00\nAan: Raad\nOnderwerp: Honden\n\n{ORIGINAL}"
    )
    forward = find_inline_forward(body, "Doorst: Honden")
    assert forward is not None
    assert forward.note == "Zie hieronder."
    assert forward.text == ORIGINAL


def test_outlook_block_in_a_reply_is_a_quote_not_a_forward() -> None:
    body = f"Eens.\n\nVan: Eva\nVerzonden: vandaag\nAan: Raad\nOnderwerp: Honden\n\n{ORIGINAL}"
    assert find_inline_forward(body, "RE: Honden") is None


@pytest.mark.parametrize("subject", ["Fw: x", "FWD: x", "Doorst: x", "WG: x", "Fwd: Fw: x"])
def test_forward_subjects_are_recognised(subject: str) -> None:
    assert is_forward_subject(subject)


def test_forward_with_a_note_keeps_the_note_as_text_and_the_forward_as_quoted() -> None:
    data = (
        "From: Raadslid <raad@gemeente-voorbeeld.nl>\nSubject: Fwd: Honden\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Dit lijkt me een goed idee voor de visie.\n\n"
        "---------- Forwarded message ---------\nFrom: Eva Kok <eva@example.nl>\n"
        f"Subject: Honden\n\n{ORIGINAL}\n"
    ).encode()
    mail = parse(data)
    assert mail.text == "Dit lijkt me een goed idee voor de visie."
    assert mail.forwarded_from is None
    assert ORIGINAL in mail.quoted


def test_an_attached_forward_names_its_author_by_address_not_by_an_encoded_display_name() -> None:
    # The encoded word decodes to "Eva Kok <burgemeester@maastricht.nl>,": read after the
    # split (RFC 2047 §5), it is a display name, and the author is the address after it.
    inner = (
        "From: =?utf-8?q?Eva_Kok_=3Cburgemeester@maastricht.nl=3E=2C?= <eva@example.nl>\r\n"
        f"Subject: Honden\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{ORIGINAL}\r\n"
    )
    data = (
        "From: Raadslid <raad@example.nl>\r\nSubject: Fwd: Honden\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n\r\n--b\r\n"
        f"Content-Type: message/rfc822\r\n\r\n{inner}--b--\r\n"
    ).encode()
    mail = parse(data)
    assert mail.forwarded_from is not None
    assert mail.forwarded_from.addr == "eva@example.nl"
    assert mail.text == ORIGINAL
