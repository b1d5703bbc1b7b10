"""Header fields and a multipart/alternative body, written straight to text.

The acknowledgement's values reach this module already safe: one line without control
characters (`clean_text`), a checked address, a checked Message-ID. What `EmailMessage` with
`policy.default` adds on top (parse every value, then refold the parse tree) costs ten times
what the rest of an acknowledgement does; writing the few forms needed here directly is cheap:

- RFC 5322 §2.2.3 folding at the spaces between words, at 78 characters where a word allows;
  no value is long enough to reach the 998-character limit (they are capped before).
- RFC 2047 encoded words (UTF-8, base64) for non-ASCII words when the mail must be 7-bit, and
  for any word that would read as an encoded word ("=?"), so every value decodes to itself.
- RFC 6532 raw UTF-8 instead when the mail goes out with SMTPUTF8 (`utf8=True`).
- Quoted-printable text parts, which keep the body 7-bit in both cases.
"""

from __future__ import annotations

import binascii
import random
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from email.headerregistry import Address as HeaderAddress

MAX_LINE = 78  # RFC 5322 §2.1.1
CRLF = "\r\n"
_EW_BYTES = 45  # "=?utf-8?b?" + 60 base64 characters + "?=": 72, within RFC 2047's 75
# A display name made of atoms (RFC 5322 atext) and spaces needs no quoting; with SMTPUTF8,
# non-ASCII characters are atext too (RFC 6532 §3.2).
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")
_ATOMS_UTF8 = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ \x80-\U0010ffff]+")
# The stdlib's width for a boundary token (email.generator): 19 digits on 64-bit builds.
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def field(name: str, words: Iterable[str], *, fold_first: bool = False) -> str:
    """`name: words`, folded at the spaces between words into lines of at most 78 characters
    where the words allow; a word longer than a line gets a line of its own.

    `fold_first` lets the first word go to a line of its own too: right for structured fields
    (Message-ID), where the blank before it is not part of the value, but not for text, where
    readers such as the stdlib keep it.
    """
    lines: list[str] = []
    line = name + ":"
    bare = not fold_first
    for word in words:
        if len(line) + 1 + len(word) > MAX_LINE and not bare:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
        bare = False
    lines.append(line)
    return CRLF.join(lines)


def text_field(name: str, value: str, *, utf8: bool) -> str:
    """An unstructured field (Subject): `value` as it reads, encoded where it must be."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: a header value may not contain a line break")
    return field(name, _words(value, lambda word: not _needs_encoding(word, utf8=utf8)))


def mailbox_field(name: str, display_name: str, address: str, *, utf8: bool) -> str:
    """An address field with one mailbox: `display name <address>`, or the bare address.

    `display_name` must be one clean line (`clean_text`), `address` pass `is_valid_address`.
    Raises ValueError where the stdlib's address parser refuses the address.
    """
    check_addr_spec(address)
    if not display_name:
        return field(name, [address])
    return field(name, [*phrase(display_name, utf8=utf8), f"<{address}>"])


def phrase(name: str, *, utf8: bool) -> list[str]:
    """The words of a display name: atoms, else one quoted string; with words that must be
    encoded, those as encoded words and the atoms among them as they are."""
    atoms = _ATOMS_UTF8 if utf8 else _ATOMS
    if not _needs_encoding(name, utf8=utf8):
        if atoms.fullmatch(name):
            return name.split()
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _words(name, lambda word: "=?" not in word and bool(atoms.fullmatch(word)))


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 encoded words of at most 72 characters each.

    Readers join adjacent encoded words without the whitespace between them (RFC 2047 §6.2),
    so the text's own spaces are inside the encoded words. A long text is split after a space
    where one is near, else between two characters.
    """
    data = text.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + _EW_BYTES, len(data))
        if end < len(data):
            space = data.rfind(b" ", start, end)
            if space > start:
                end = space + 1
            while 0x80 <= data[end] < 0xC0:  # a UTF-8 continuation byte: inside a character
                end -= 1
        encoded = binascii.b2a_base64(data[start:end], newline=False).decode("ascii")
        words.append(f"=?utf-8?b?{encoded}?=")
        start = end
    return words


def check_addr_spec(address: str) -> None:
    """Refuse, with ValueError, what `email.headerregistry.Address` refuses of an address that
    passes `is_valid_address`: a non-ASCII local part (RFC 6532 allows it, the stdlib does not),
    a local part that is not a dot-atom (a dot first, last or doubled), or text that reads as
    an encoded word where it cannot be one (zammad mail118: "=?utf-8?Q?agent?=@example.com")."""
    local = address.rpartition("@")[0]
    if not local.isascii():
        raise ValueError("local-part contains non-ASCII characters")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError("local-part is not a dot-atom")
    if "=?" in address:
        # Rare enough to leave to the stdlib's parser, which fails on these in more ways than
        # ValueError (CharsetError, IndexError): every failure is a refusal here.
        try:
            HeaderAddress(addr_spec=address)
        except Exception as exc:
            raise ValueError(f"not an address the stdlib can write: {exc!r}") from exc


def alternative(parts: Sequence[tuple[str, str]]) -> tuple[str, bytes]:
    """(Content-Type field, body) of a multipart/alternative of (subtype, text) text parts,
    least preferred first, each UTF-8 in quoted-printable; lines end in CRLF."""
    # Quoted-printable writes "=" as "=3D" and never two in a row, so no part can contain this
    # boundary (RFC 2045 §6.7, RFC 2046 §5.1.1) and it needs no check against the text.
    boundary = "=" * 15 + f"{random.randrange(sys.maxsize):0{_BOUNDARY_WIDTH}d}" + "=="
    delimiter = f"--{boundary}".encode("ascii")
    chunks = []
    for subtype, text in parts:
        chunks += [
            delimiter,
            b"\r\nContent-Type: text/",
            subtype.encode("ascii"),
            b'; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
            quoted_printable(text),
            b"\r\n",
        ]
    chunks += [delimiter, b"--\r\n"]
    header = f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"'
    return header, b"".join(chunks)


def quoted_printable(text: str) -> bytes:
    """`text` in UTF-8, quoted-printable, with CRLF line ends and a final line end."""
    # As email.contentmanager does: every line break is one line end, and the text ends in one.
    data = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _words(value: str, raw: Callable[[str], bool]) -> list[str]:
    """The words of `value`, each that is not `raw` in encoded words: consecutive ones
    together, so that the spaces between them survive."""
    words: list[str] = []
    run: list[str] = []
    for word in value.split():
        if raw(word):
            if run:
                words += encoded_words(" ".join(run))
                run = []
            words.append(word)
        else:
            run.append(word)
    if run:
        words += encoded_words(" ".join(run))
    return words


def _needs_encoding(word: str, *, utf8: bool) -> bool:
    # "=?" would start an encoded word for a reader (the stdlib decodes them even in the middle
    # of a word and inside quoted strings), so such a word is encoded to be read as written.
    return "=?" in word or not (utf8 or word.isascii())
