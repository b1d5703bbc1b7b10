"""The plain-address shortcut reads every list it accepts exactly as mail-parser's scanner does."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from mailparser.utils import get_addresses

from intake.parsing.mailparser_scan import plain_addresses

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
atoms = st.text(ATEXT, min_size=1, max_size=8)
labels = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=8)
addresses = st.builds(
    lambda local, domain: ".".join(local) + "@" + ".".join(domain),
    st.lists(atoms, min_size=1, max_size=3),
    st.lists(labels, min_size=1, max_size=3),
)
# Pieces of display names: plain ones, and the awkward ones a shortcut could get wrong.
PLAIN = ["Anne", "J.", "van", "O'Brien", "0", "-", ".", " ", "  ", "\t"]
ODD = [",", ";", ":", "(x)", "(", ")", '"', "\\", "<", ">", "@", "[", "]", "=?", "?=", "é"]
ODD += ["=?utf-8?q?x?=", "\r\n "]
PIECES = PLAIN + ODD
names = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
    # A plain name with one awkward piece inside.
    st.builds(
        lambda head, odd, tail: "".join(head) + odd + "".join(tail),
        st.lists(st.sampled_from(PLAIN), min_size=1, max_size=3),
        st.sampled_from(ODD),
        st.lists(st.sampled_from(PLAIN), max_size=3),
    ),
    st.builds(lambda inner: f'"{inner}"', st.text(string.printable, max_size=20)),
    st.builds(lambda inner: f'"{inner}"', st.lists(st.sampled_from(PIECES)).map("".join)),
)
blanks = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def mailboxes(draw: st.DrawFn) -> str:
    address = draw(addresses)
    if draw(st.booleans()):
        return draw(blanks) + address + draw(blanks)
    return draw(blanks) + draw(names) + draw(blanks) + f"<{address}>" + draw(blanks)


def scanned(value: str) -> tuple[list[tuple[str, str]], list[Any]]:
    diagnostics: list[Any] = []
    pairs = get_addresses(value, defects=diagnostics, decode_names=True)
    return [(name, addr) for name, addr in pairs if addr], diagnostics


def assert_read_as_the_scanner_reads(value: str) -> None:
    plain = plain_addresses(value)
    if plain is None:
        return
    pairs, diagnostics = scanned(value)
    assert diagnostics == []
    # mail-parser answers "" for a name that is the address itself; intake does the same later.
    assert [("" if n == a else n, a) for n, a in plain] == [
        ("" if n == a else n, a) for n, a in pairs
    ]


@settings(max_examples=1000, deadline=None)
@given(mailboxes())
def test_plain_mailboxes_read_as_the_scanner_reads_them(box: str) -> None:
    assert_read_as_the_scanner_reads(box)


@settings(max_examples=300, deadline=None)
@given(st.lists(mailboxes(), min_size=1, max_size=4), st.sampled_from([",", ", ", " , "]))
@example(['"Chantal Janssen" <c.janssen@home.nl>', "Smart City <smartcity@maastricht.nl>"], ", ")
@example(['"Janssen, A." <a@b.nl>', "Jr. Piet  Smit <p@x.nl>"], ",")
@example(["Anne,Anne <a@b.nl>"], ",")
def test_plain_address_lists_read_as_the_scanner_reads_them(
    boxes: list[str], separator: str
) -> None:
    assert_read_as_the_scanner_reads(separator.join(boxes))


@settings(max_examples=400, deadline=None)
@given(st.text(string.printable, max_size=60))
def test_any_text_the_shortcut_accepts_reads_as_the_scanner_reads_it(value: str) -> None:
    assert_read_as_the_scanner_reads(value)


def test_outlook_lists_take_the_shortcut_and_odd_ones_do_not() -> None:
    assert plain_addresses('"Anne Janssen" <a.janssen@home.nl>, b@x.nl') == [
        ("Anne Janssen", "a.janssen@home.nl"),
        ("", "b@x.nl"),
    ]
    for odd in (
        "a@b.nl,",
        "=?utf-8?q?Ren=C3=A9e?= <r@x.nl>",
        "Anne <a@x.nl> (werk)",
        '"Anne\\" <a@x.nl>',
        "Anne Janssen <a@x.nl>\r\n <b@y.nl>",
        "Renée <r@x.nl>",
    ):
        assert plain_addresses(odd) is None, odd
