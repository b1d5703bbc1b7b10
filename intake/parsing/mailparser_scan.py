"""The address headers and the date, as mail-parser's scanners read them.

intake calls mail-parser's address and date scanners, not its whole pass over a message: that
pass also decodes every text part and re-encodes every attachment as a base64 string, none of
which intake reads (`body.extract_body` decodes what it needs), and it cost a fifth of the time
spent analysing a message.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

from intake.parsing.headers import to_addresses
from intake.parsing.parsed import Address

log = logging.getLogger(__name__)

ADDRESS_DEFECT = "AddressHeaderDefect"  # the scanner recovered or dropped part of an address
DATE_DEFECT = "DateHeaderDefect"  # the Date header breaks RFC 5322 §3.3 (maybe recovered)
MAILPARSER_DEFECT = "MailParserFailed"  # mail-parser raised; the stdlib reading is used instead
SCANNED_HEADERS = ("from", "to", "cc", "reply-to")

# The plainest address lists, as Outlook writes them ("Anne Janssen" <a.janssen@example.nl>,
# Smart City <smartcity@example.nl>): one line of ASCII, quoted names without escapes, plain
# names of letters, digits, dots, apostrophes and hyphens. The scanner reads these exactly as
# this pattern does (a property test holds them to it) at a twentieth of the cost; anything
# else goes to the scanner.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDR = rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+"
_PLAIN_MAILBOX = re.compile(
    rf"""[ \t]*(?:
        (?:"(?P<quoted>[ !#-\[\]-~]*)"|(?P<phrase>[A-Za-z0-9][A-Za-z0-9 .'-]*?))?
        [ \t]*<(?P<angled>{_ADDR})>
        |(?P<bare>{_ADDR})
    )[ \t]*(?P<end>,|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Scanned:
    addresses: dict[str, tuple[Address, ...]] = field(default_factory=dict)
    date: datetime | None = None  # aware
    defects: frozenset[str] = frozenset()


def scan_headers(msg: Message) -> Scanned:
    """The first From, To, Cc and Reply-To, and the first Date, by mail-parser; never raises."""
    defects: set[str] = set()
    try:
        addresses = {
            name: _addresses(value, defects)
            for name in SCANNED_HEADERS
            if (value := msg.get(name)) is not None
        }
        date = _date(msg, defects)
    except Exception:  # a scanner bug on odd input; the stdlib reading of the headers stands
        log.debug("mail-parser's scanners failed", exc_info=True)
        return Scanned(defects=frozenset({MAILPARSER_DEFECT}))
    return Scanned(addresses, date, frozenset(defects))


def _addresses(value: Any, defects: set[str]) -> tuple[Address, ...]:
    plain = plain_addresses(value) if isinstance(value, str) else None
    if plain is not None:
        return to_addresses(plain)
    # The structural scanner copes with "To: \"" and "a@x <b@y>", where the stdlib guesses.
    diagnostics: list[dict[str, Any]] = []
    pairs = get_addresses(value, defects=diagnostics, decode_names=True)
    if diagnostics:
        defects.add(ADDRESS_DEFECT)
    return to_addresses((str(name), str(addr)) for name, addr in pairs if addr)


def plain_addresses(value: str) -> list[tuple[str, str]] | None:
    """(name, address) pairs of a plain address list, as mail-parser's scanner gives them;
    None for anything else."""
    if not value.isascii() or "\r" in value or "\n" in value:
        return None
    pairs: list[tuple[str, str]] = []
    position = 0
    while True:
        found = _PLAIN_MAILBOX.match(value, position)
        if found is None:
            return None
        if found["bare"]:
            pairs.append(("", found["bare"]))
        elif found["quoted"] is not None:
            pairs.append((found["quoted"], found["angled"]))
        else:
            pairs.append((" ".join((found["phrase"] or "").split()), found["angled"]))
        position = found.end()
        if not found["end"]:
            return pairs
        if position == len(value):
            return None  # a trailing comma: the scanner's business


def _date(msg: Message, defects: set[str]) -> datetime | None:
    # mail-parser reads some dates the stdlib rejects, in UTC (PARSE-7).
    raw = next((value for name, value in msg.raw_items() if name.lower() == "date"), None)
    if raw is None:
        return None
    result = parse_mail_date(str(raw))
    if result.reasons:
        defects.add(DATE_DEFECT)
    value = result.value
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
