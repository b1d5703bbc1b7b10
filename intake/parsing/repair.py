"""Repair the header block of mail exported or relayed by careless tools, before parsing."""

from __future__ import annotations

import re

# RFC 5322 §3.6.8: a field name is printable ASCII except ":"; a line of the header block is a
# field, or a continuation starting with a blank.
_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")
MAX_LEADING_JUNK = 3  # lines tolerated before the first header ("---- Original email ----")
# The start of the first blank line (nothing but CRs), where the header block ends.
_BLANK_LINE = re.compile(rb"(?:\A|(?<=\n))\r*(?:\n|\Z)")


def repair_header_block(data: bytes) -> tuple[bytes, list[str]]:
    """`data` with a usable header block, and the names of the repairs made.

    - an mbox "From " envelope line (Maildir exports, zammad mail054) is removed;
    - up to three non-header lines before the first header are removed (zammad mail068);
    - a non-header line between two headers becomes a continuation line, as a wrapped header
      that lost its indent (zammad mail068), instead of ending the header block there.
    """
    repairs: list[str] = []
    # Only the header block is split into lines: the body may be megabytes of attachment.
    found = _BLANK_LINE.search(data)
    cut = found.start() if found else len(data)
    lines = data[:cut].split(b"\n")
    if lines and lines[0].startswith(b"From ") and len(lines) > 1 and _FIELD.match(lines[1]):
        lines = lines[1:]
        repairs.append("MboxFromLineRemoved")
    first = next(
        (i for i, line in enumerate(lines[: MAX_LEADING_JUNK + 1]) if _FIELD.match(line)), 0
    )
    if first and all(line.strip() for line in lines[:first]):
        lines = lines[first:]
        repairs.append("LeadingJunkRemoved")
    end = next((i for i, line in enumerate(lines) if not line.strip(b"\r")), len(lines))
    fields = [i for i in range(end) if _FIELD.match(lines[i])]
    if fields:
        last_field = fields[-1]
        for index in range(end):
            line = lines[index]
            if index < last_field and not _FIELD.match(line) and line[:1] not in (b" ", b"\t"):
                lines[index] = b" " + line
                if "HeaderLineUnfolded" not in repairs:
                    repairs.append("HeaderLineUnfolded")
    return (b"\n".join(lines) + data[cut:], repairs) if repairs else (data, repairs)
