"""Split quoted replies, signatures and disclaimers (nl/en patterns) off the new text.

Conservative by design: a pattern only moves text into `quoted`, `signature` or `disclaimer`
(nothing is dropped), and a split that would leave no new text keeps the sender's own lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "Op 3 feb. 2019 om 10:12 schreef Jan <jan@x.nl>:" (Gmail nl), "Op 3 feb. 2019, om 10:12 heeft
# Jan <jan@x.nl> het volgende geschreven:" (Apple Mail nl), "On Mon, 3 Feb 2019 … wrote:".
# Gmail wraps long ones over two or three lines, so these are matched on joined windows. A
# digit is required (date or time) so that ordinary prose starting with "Op" never matches.
_ATTRIBUTION = re.compile(
    r"^\s*(?:op|on|am|le)\s(?=[^\n]*\d)[^\n]{0,250}?"
    r"(?:schreef|wrote|geschreven|schrieb|a écrit)[^\n:]{0,80}:\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:oorspronkelijk bericht|origineel bericht|original message|"
    r"ursprüngliche nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
# Outlook's quoted header block: "Van: … / Verzonden: … / Aan: … / Onderwerp: …".
_BLOCK_FROM = re.compile(r"^\s*\*?(?:van|from)\s*:\*?\s*\S", re.IGNORECASE)
_BLOCK_DATE = re.compile(r"^\s*\*?(?:verzonden|sent|datum|date)\s*:", re.IGNORECASE)
_BLOCK_REST = re.compile(r"^\s*\*?(?:aan|to|onderwerp|subject|cc)\s*:", re.IGNORECASE)
_UNDERSCORES = re.compile(r"^\s*_{8,}\s*$")
_QUOTED_LINE = re.compile(r"^\s*>")

_CLOSING = (
    r"(?:met\s+)?(?:(?:vriendelijke|hartelijke|beste|lieve|warme)\s+)?groet(?:en|jes)?"
    r"|mvg|m\.v\.g\.?|(?:kind|best|warm|many)\s+regards|regards|best wishes|cheers"
    r"|(?:yours\s+)?sincerely"
)
# Only the closing on its own line, or "Groet, Jan": "Groeten uit Utrecht" is prose.
_CLOSING_LINE = re.compile(
    rf"^\s*(?:{_CLOSING})\s*(?:[,.!]\s*|,\s*[\w .'-]{{1,40}})?$", re.IGNORECASE
)
_MOBILE_LINE = re.compile(
    r"^\s*(?:verstuurd|verzonden|sent|get outlook)\s+(?:vanaf|van|met|from|via|for)\b.{0,40}$",
    re.IGNORECASE,
)
_DASHES = re.compile(r"^--\s*$")
MAX_SIGNATURE_LINES = 12  # non-blank lines after a closing; more means it is not a signature
MAX_DASH_SIGNATURE_LINES = 20  # RFC 3676 §4.3 "-- " blocks are often longer (addresses)

_DISCLAIMER = re.compile(
    r"dit (?:e-?mail)?bericht is uitsluitend bestemd|uitsluitend bestemd voor de geadresseerde"
    r"|aan dit (?:e-?mail)?bericht kunnen geen rechten worden ontleend"
    r"|de informatie (?:verzonden )?in dit e-?mail(?:bericht)? is uitsluitend"
    r"|^\s*disclaimer\s*:?"
    r"|this e-?mail(?: message)? and any attach|this message and any attach"
    r"|this (?:e-?mail|message) (?:is|may contain) (?:intended|confidential)"
    r"|denk aan het milieu|please consider the environment|think before you print",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    quoted: str = ""
    signature: str = ""
    disclaimer: str = ""


def split_reply(text: str) -> Reply:
    """The new text of a message, with quotes, signature and disclaimer split off."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    own, quoted = _split_quotes(lines)
    # Above a quote, a disclaimer may be all there is: Outlook puts it at the top of a reply
    # sent without new text. Elsewhere the first paragraph is kept as the sender's own.
    own, disclaimer = _split_tail(own, _disclaimer_start(own, from_first=bool(quoted)))
    own, signature = _split_tail(own, _signature_start(own))
    return Reply(_join(own), _join(quoted), _join(signature), _join(disclaimer))


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip()


def _split_tail(lines: list[str], start: int | None) -> tuple[list[str], list[str]]:
    if start is None:
        return lines, []
    return lines[:start], lines[start:]


def quote_start(lines: list[str]) -> int | None:
    """The index of the first line of quoted earlier messages, if any."""
    last_own = _last_unquoted(lines)
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if _SEPARATOR.match(line) or is_outlook_block(lines, index):
            return _include_rule_above(lines, index)
        if line.lstrip()[:3].lower() in ("op ", "on ", "am ", "le ") and any(
            _ATTRIBUTION.match(" ".join(p.strip() for p in lines[index : index + n]))
            for n in (1, 2, 3)
        ):
            return index
        if _QUOTED_LINE.match(line) and index > last_own:  # only quotes follow
            return index
    return None


def is_outlook_block(lines: list[str], index: int) -> bool:
    """True when lines[index] opens an Outlook "Van:/Verzonden:/Aan:" header block."""
    if not _BLOCK_FROM.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 8] if line.strip()][:5]
    has_date = any(_BLOCK_DATE.match(line) for line in following)
    has_rest = any(_BLOCK_REST.match(line) for line in following)
    return has_date and has_rest


def _include_rule_above(lines: list[str], index: int) -> int:
    # Outlook draws a line of underscores above the header block; it belongs to the quote.
    above = index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    return above if above >= 0 and _UNDERSCORES.match(lines[above]) else index


def _last_unquoted(lines: list[str]) -> int:
    """The index of the last non-blank line that is not quoted (-1 when there is none)."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip() and not _QUOTED_LINE.match(lines[index]):
            return index
    return -1


def _split_quotes(lines: list[str]) -> tuple[list[str], list[str]]:
    start = quote_start(lines)
    if start is None:
        return lines, []
    head, rest = lines[:start], lines[start:]
    if any(line.strip() for line in head):
        return head, rest
    # Nothing above the quote: the sender answered below or between the quoted lines.
    own = [line for line in rest[1:] if not _QUOTED_LINE.match(line)]
    if any(line.strip() for line in own) and any(_QUOTED_LINE.match(line) for line in rest):
        quoted = [rest[0], *(line for line in rest[1:] if _QUOTED_LINE.match(line))]
        return own, quoted
    return [], rest


def _disclaimer_start(lines: list[str], *, from_first: bool = False) -> int | None:
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None
    floor = first if from_first else first + 1
    for index in range(floor, len(lines)):
        window = " ".join(part.strip() for part in lines[index : index + 2])
        if lines[index].strip() and _DISCLAIMER.search(window):
            return _paragraph_start(lines, index, floor=floor)
    return None


def _paragraph_start(lines: list[str], index: int, *, floor: int) -> int:
    while index > floor and lines[index - 1].strip():
        index -= 1
    return index


def _signature_start(lines: list[str]) -> int | None:
    # Counted from the end once: recounting per line is quadratic, minutes for a mail of a
    # hundred thousand short lines.
    after = sum(1 for line in lines if line.strip())
    for index, line in enumerate(lines):
        after -= bool(line.strip())
        if _DASHES.match(line) and after <= MAX_DASH_SIGNATURE_LINES:
            return index
        if (_CLOSING_LINE.match(line) or _MOBILE_LINE.match(line)) and (
            after <= MAX_SIGNATURE_LINES
        ):
            return index
    return None
