"""What marks intake's own mail and a usable address: shared by the decision and the mail."""

from __future__ import annotations

import re
import unicodedata

from intake.config import Settings

LANGUAGES = ("nl", "en")
# Our own loop header (AR-9, like RT's X-RT-Loop-Prevention); its value is our Message-ID domain.
LOOP_HEADER = "X-Intake-Loop"
# Our Message-IDs end in ".intake@<domain>": the domain alone is not enough, because mail clients
# such as Thunderbird put the sender's own domain (maastricht.nl) into the ids they make.
MESSAGE_ID_TAG = "intake"
MAX_VALUE_CHARS = 150  # SMTP-10: reused subjects and names are capped


def message_id_domain(settings: Settings) -> str:
    """Our Message-ID domain: `outgoing.message_id_domain`, else From's (never the host, SMTP-6)."""
    domain = (
        settings.outgoing.message_id_domain or settings.outgoing.from_address.rpartition("@")[2]
    )
    return domain.strip().lower()


_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")


def is_valid_address(address: str) -> bool:
    """True for one bare address: one @, no spaces, brackets, separators or control characters."""
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        return False
    # Printable ASCII holds no control or format character: the per-character look is for the rest.
    unusual = not (address.isascii() and address.isprintable())
    if unusual and any(unicodedata.category(char) in ("Cc", "Cf") for char in address):
        return False
    domain = address.rpartition("@")[2]
    return not (domain.startswith(".") or domain.endswith(".") or ".." in domain)


def printable(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii")[:MAX_VALUE_CHARS]
