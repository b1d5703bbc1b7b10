"""Base64 bodies joined into one line each, before the message is parsed.

The stdlib parser (under mail-parser) reads a message line by line in Python: a 2 MB PDF is
27,000 lines of 76 characters, each checked for a MIME boundary, and those lines are most of
the time it takes to parse a mail with an attachment. Decoded, a joined body is the same bytes
(line breaks mean nothing inside base64), and the line before a boundary is kept as it was.
Only the copy that is parsed changes; the stored bytes are the mailbox's own.
"""

from __future__ import annotations

import re


def _any_case(word: bytes) -> bytes:
    # re.IGNORECASE would keep the regex engine from skipping ahead to each line's start: a
    # pattern that begins with a plain newline scans a message ten times as fast.
    return b"".join(b"[%c%c]" % (c, c ^ 0x20) if chr(c).isalpha() else bytes([c]) for c in word)


_HEADER = re.compile(
    rb"\n"
    + _any_case(b"content-transfer-encoding:")
    + rb"[ \t]*"
    + _any_case(b"base64")
    + rb"[ \t]*\r?\n"
)
# What a base64 body may hold: its alphabet and line ends. A body with anything else (spaces,
# a text that only says it is base64) is left to the parser as it is.
_BASE64_AND_EOL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
MIN_BYTES = 2048  # shorter bodies (27 lines of 76 characters) cost the parser little
# Larger bodies are parsed as they came: joining copies them, and a 20 MB scan would take the
# parser process past its memory budget (300 MB) for a gain one mail in thousands sees.
MAX_JOINED_BYTES = 4_000_000
# An attached message is described by its serialised bytes (attachments.part_payload), which a
# joined body inside it would change: a mail that may hold one is parsed as it came.
_EMBEDDED = (b"essage/", b"ESSAGE/")  # message/rfc822, Message/RFC822, MESSAGE/global...
# A part's header block is a few lines; one that runs longer is parsed as it came.
MAX_PART_HEADER = 8192


def join_base64_lines(data: bytes) -> bytes:
    """`data` with each long base64 body on one line; `data` itself when there is none.

    A joined body is read three times (the boundary search, the alphabet check, the join) and
    copied once; the searches for part headers and attached messages skip it.
    """
    pieces: list[bytes] = []  # text before a body, the joined body, its line end; and so on
    done = position = 0
    while (match := _HEADER.search(data, position)) is not None:
        position = match.end() - 1
        start = _body_start(data, position)
        if start < 0:
            continue
        # A boundary line starts with "--", which base64 never holds; the line end before it
        # belongs to the boundary (RFC 2046 §5.1.1) and stays.
        boundary = data.find(b"\n--", start, start + MAX_JOINED_BYTES + 2)
        if boundary < 0:
            continue  # a body that is too long, or runs to the end of the message
        end = boundary + 1
        body = data[start:end]
        if len(body) < MIN_BYTES or body.translate(None, _BASE64_AND_EOL):
            continue
        eol = b"\r\n" if body.endswith(b"\r\n") else b"\n"
        pieces += [data[done:start], body.translate(None, b"\r\n"), eol]
        done = position = end
    if not pieces:
        return data
    pieces.append(data[done:])
    # An attached message is announced in a part header, never inside a base64 body: only
    # the text between the joined bodies is searched.
    if any(word in text for text in pieces[::3] for word in _EMBEDDED):
        return data
    return b"".join(pieces)


def _body_start(data: bytes, eol: int) -> int:
    """Where the body begins: after the blank line that ends the header block whose line ends
    at `eol` (a newline); -1 when no blank line follows soon."""
    ends = [
        found + len(blank)
        for blank in (b"\n\r\n", b"\n\n")
        if (found := data.find(blank, eol, eol + MAX_PART_HEADER)) >= 0
    ]
    return min(ends) if ends else -1
