"""The feedparser's line-end search, started near the end, finds what the full search finds."""

from __future__ import annotations

import email.feedparser
import re

from hypothesis import given
from hypothesis import strategies as st

import intake.parsing  # noqa: F401  (installs the tail search)
from intake.parsing.feedparser_tail import TailSearch

LINE_END = re.compile(r"(\r\n|\r|\n)\Z")


@given(st.text(alphabet="a\r\n", max_size=12))
def test_the_tail_search_finds_the_same_line_end_as_a_full_search(text: str) -> None:
    full, tail = LINE_END.search(text), TailSearch(LINE_END, 2).search(text)
    assert (tail and (tail.span(), tail.group(0))) == (full and (full.span(), full.group(0)))


def test_parsing_installs_it_and_parts_lose_only_the_line_end_before_a_boundary() -> None:
    assert isinstance(email.feedparser.NLCRE_eol, TailSearch)
    data = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\none\r\n\r\n'
        b"--b\r\n\r\ntwo\n\r\n--b\r\n\r\nthree\r\r\n--b--\r\n"
    )
    parts = email.message_from_bytes(data).get_payload()
    assert [part.get_payload() for part in parts] == ["one\r\n", "two\n", "three\r"]
