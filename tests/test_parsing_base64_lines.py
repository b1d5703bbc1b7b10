"""Joining base64 bodies into one line before parsing changes nothing that parse() reads."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

import intake.parsing
import intake.parsing.base64_lines
from intake.parsing import parse
from intake.parsing.base64_lines import MIN_BYTES, join_base64_lines
from tests.conftest import MAIL, PUBLIC_MAIL, REPO

sys.path.insert(0, str(REPO / "bench"))
import mailgen  # the benchmark's mailbox: Outlook mail with PDFs

PDF = bytes(range(256)) * 100  # 25,600 bytes: 450 lines of base64


def mixed(payload: bytes, encoding: str = "base64", eol: bytes = b"\r\n") -> bytes:
    lines = [
        b"From: Anna <anna@example.nl>",
        b"Subject: Voorstel",
        b'Content-Type: multipart/mixed; boundary="b1"',
        b"",
        b"--b1",
        b"Content-Type: text/plain; charset=utf-8",
        b"",
        b"Zie de bijlage.",
        b"--b1",
        b'Content-Type: application/pdf; name="voorstel.pdf"',
        b"Content-Transfer-Encoding: " + encoding.encode(),
        b"",
        payload.rstrip(b"\n"),
        b"--b1--",
        b"",
    ]
    return b"\n".join(lines).replace(b"\n", eol)


def wrapped(data: bytes) -> bytes:
    """`data` in base64 lines of 76 characters, as mail clients send it."""
    return base64.encodebytes(data)


def parsed_both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    joined = parse(data)
    with monkeypatch.context() as patch:
        patch.setattr(intake.parsing, "join_base64_lines", lambda data: data)
        return joined, parse(data)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_long_base64_body_becomes_one_line_that_decodes_to_the_same_bytes(eol: bytes) -> None:
    data = mixed(wrapped(PDF), eol=eol)
    joined = join_base64_lines(data)
    assert (data.count(b"\n"), joined.count(b"\n")) == (463, 14)  # 450 lines of base64: 1
    body = joined.split(eol + eol)[-1].split(eol + b"--b1--")[0]
    assert base64.b64decode(body) == PDF
    assert joined.endswith(eol + b"--b1--" + eol)  # the line end before a boundary stays


def test_parse_reads_the_same_attachment_from_a_joined_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joined, as_sent = parsed_both_ways(mixed(wrapped(PDF)), monkeypatch)
    assert joined == as_sent
    (attachment,) = as_sent.attachments  # type: ignore[attr-defined]
    assert attachment.size == len(PDF)


@pytest.mark.parametrize(
    "data",
    [
        mixed(wrapped(b"kort")),  # a few lines: not worth it
        mixed(wrapped(PDF).replace(b"\n", b" \n")),  # spaces: not a clean base64 body
        mixed(b"Dit is gewoon tekst,\n" * (MIN_BYTES // 10)),  # says base64, is not
        mixed(wrapped(PDF), encoding="quoted-printable"),
        mixed(wrapped(PDF)).replace(b"application/pdf", b"message/rfc822"),  # attached mail
    ],
    ids=["short", "spaces", "text", "quoted-printable", "attached-message"],
)
def test_bodies_that_are_not_long_clean_base64_are_left_as_they_came(data: bytes) -> None:
    assert join_base64_lines(data) is data


def test_the_benchmark_mailbox_parses_the_same_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    mails = [mailgen.generate(n, big=False).data for n in range(60)]
    changed = [data for data in mails if join_base64_lines(data) != data]
    assert len(changed) >= 10
    for data in changed:
        joined, as_sent = parsed_both_ways(data, monkeypatch)
        assert joined == as_sent


def corpus_files() -> list[Path]:
    files = sorted((MAIL).rglob("*.eml"))
    if PUBLIC_MAIL.is_dir():
        files += sorted(PUBLIC_MAIL.rglob("*.eml"))
    return files


def test_every_corpus_mail_parses_the_same_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    if not PUBLIC_MAIL.is_dir():
        pytest.skip(f"shared corpus not found at {PUBLIC_MAIL}; tests/mail alone has no base64")
    changed = 0
    for path in corpus_files():
        data = path.read_bytes()
        if join_base64_lines(data) == data:
            continue
        changed += 1
        joined, as_sent = parsed_both_ways(data, monkeypatch)
        assert joined == as_sent, path.name
    assert changed >= 5


def test_a_body_over_the_size_limit_is_left_as_it_came(monkeypatch: pytest.MonkeyPatch) -> None:
    data = mixed(wrapped(PDF))
    body = len(wrapped(PDF).replace(b"\n", b"\r\n"))  # with its line end before the boundary
    monkeypatch.setattr(intake.parsing.base64_lines, "MAX_JOINED_BYTES", body - 1)
    assert join_base64_lines(data) is data
    monkeypatch.setattr(intake.parsing.base64_lines, "MAX_JOINED_BYTES", body)
    assert join_base64_lines(data) != data
