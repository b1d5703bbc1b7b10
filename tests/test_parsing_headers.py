"""Header decoding: RFC 2047, raw 8-bit bytes, ids, dates, Return-Path, addresses."""

from __future__ import annotations

from datetime import UTC

import pytest

from intake.parsing import parse
from intake.parsing.charsets import decode_text
from intake.parsing.headers import all_ids, decode_words, first_id, parse_date, return_path
from intake.parsing.parsed import Address


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("=?utf-8?q?Jan_de?= =?utf-8?q?_Vries?=", "Jan de Vries"),
        ("Hallo =?utf-8?q?w=C3=A9reld?= daar", "Hallo wéreld daar"),
        ("=?us-ascii?Q?ABC / 123?=", "ABC / 123"),  # blanks inside a word (zammad mail050)
        ("=?UTF-8?B?VGVzdG92w6Fjw60gZW1haWw=?=", "Testovácí email"),
        ("=?utf-8*nl?q?caf=C3=A9?=", "café"),  # RFC 2231 language suffix
        ("=?iso-8859-1?q?=80_5?=", "€ 5"),  # cp1252 behind an iso-8859-1 label
        ("=?bogus?B?!!!?= blijft", "=?bogus?B?!!!?= blijft"),
    ],
)
def test_encoded_words_are_decoded_leniently(raw: str, decoded: str) -> None:
    assert decode_words(raw) == decoded


def test_raw_utf8_and_cp1252_header_bytes_are_both_read() -> None:
    utf8 = parse("Subject: Caf\u00e9 \u20ac\n\nx".encode())
    cp1252 = parse(b"Subject: Caf\xe9 \x80\n\nx")
    assert utf8.subject == cp1252.subject == "Café €"


def test_raw_header_bytes_follow_the_message_charset() -> None:
    subject = "整体提升"
    data = (
        b"Subject: " + subject.encode("gb2312") + b"\n"
        b"Content-Type: text/plain; charset=gb2312\n\n" + "你好".encode("gb2312")
    )
    assert parse(data).subject == subject


def test_display_names_are_decoded_and_quoted_encoded_words_too() -> None:
    mail = parse(
        b'From: "=?utf-8?q?Jos=C3=A9?=" <jose@example.nl>\n'
        b"To: =?iso-8859-1?q?M=FCller=2C_Jan?= <jan@example.nl>, b@example.nl\n\n"
    )
    assert mail.sender == Address("jose@example.nl", "José")
    assert mail.to == (Address("jan@example.nl", "Müller, Jan"), Address("b@example.nl"))


def test_unterminated_quote_in_to_gives_no_recipients_instead_of_an_error() -> None:
    mail = parse(b'From: a@example.nl\nTo: "\nMessage-ID: <[x@microsoft.com]>\n\nx')
    assert (mail.to, mail.error) == ((), None)
    assert mail.message_id == "[x@microsoft.com]"


def test_address_key_and_domain_are_lower_case() -> None:
    address = Address("Jan.Jansen@Example.NL", "Jan")
    assert (address.key, address.domain, address.local_part) == (
        "jan.jansen@example.nl",
        "example.nl",
        "jan.jansen",
    )


def test_message_ids_lose_their_angle_brackets() -> None:
    assert first_id("  <abc@example.nl> ") == "abc@example.nl"
    assert first_id("abc@example.nl") == "abc@example.nl"
    assert first_id("") is None
    assert all_ids("<a@x>\n <b@x> <c@x>") == ("a@x", "b@x", "c@x")
    assert all_ids("a@x b@x") == ("a@x", "b@x")


def test_dates_are_aware_and_minus_zero_is_utc() -> None:
    date = parse_date("Mon, 3 Feb 2020 10:15:00 -0000")
    assert date is not None
    assert date.tzinfo is UTC
    assert parse_date("gisteren") is None


def test_return_path_distinguishes_absent_from_null_sender() -> None:
    assert return_path({}) is None
    assert return_path({"return-path": ("<>",)}) == ""
    assert return_path({"return-path": ("<a@x>", "<b@y>")}) == "a@x"


def test_headers_map_keeps_every_value_decoded_and_unfolded() -> None:
    mail = parse(
        b"Received: one\nReceived: two\nX-Note: =?utf-8?q?=C3=A9?=\n folded\nSubject: s\n\n"
    )
    assert mail.header_all("RECEIVED") == ("one", "two")
    assert mail.header("x-note") == "é folded"


def test_report_type_is_read_from_multipart_report() -> None:
    data = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\n\n"
        b"--r\nContent-Type: text/plain\n\nmislukt\n--r\n"
        b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
        b"Final-Recipient: rfc822; a@x\nAction: failed\nStatus: 5.1.1\n--r--\n"
    )
    mail = parse(data)
    assert mail.report_type == "delivery-status"
    assert "message/delivery-status" in mail.part_types
    assert mail.text == "mislukt"


@pytest.mark.parametrize(
    ("data", "label", "text"),
    [
        (b"\x80 \x93x\x94", "iso-8859-1", "€ “x”"),
        (b"\x80", "us-ascii", "€"),
        ("é".encode(), "iso-8859-1", "é"),  # UTF-8 mislabelled as Latin-1
        (b"\xe9", "utf-8", "é"),  # invalid UTF-8 falls back to cp1252
        (b"\x81", "windows-1252", "\x81"),  # undefined in cp1252: kept, not an error
        ("整体".encode("gbk"), "gb2312", "整体"),
        (b"abc", "no-such-charset", "abc"),
    ],
)
def test_body_charsets_are_repaired(data: bytes, label: str, text: str) -> None:
    assert decode_text(data, label)[0] == text
