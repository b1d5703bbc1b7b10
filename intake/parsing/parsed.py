"""ParsedMail, Address, Attachment: what the parser makes of a message's bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    addr: str  # as written, without angle brackets; compare with `.key`
    name: str = ""

    @property
    def key(self) -> str:
        """The address lower-cased, for comparisons and counting."""
        return self.addr.strip().lower()

    @property
    def domain(self) -> str:
        return self.key.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.key.rpartition("@")[0]


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # safe for display: no path, no control characters; never used as a path
    content_type: str
    size: int
    sha256: str
    is_inline: bool = False


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """Everything intake reads from one message. Built by `parsing.parse`, which never raises."""

    message_id: str  # without angle brackets; derived from the content when missing
    message_id_derived: bool
    sender: Address | None  # From
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    return_path: str | None  # None: no Return-Path header; "": the null sender <>
    subject: str
    date: datetime | None  # the sender's claim, aware; arrival time comes from the source
    in_reply_to: str | None
    references: tuple[str, ...]
    content_language: str | None
    # Lower-cased header name → every value, decoded (RFC 2047) and unfolded.
    headers: Mapping[str, tuple[str, ...]] = field(repr=False)
    content_type: str  # top-level, lower case, without parameters
    part_types: tuple[str, ...]  # every MIME type in the tree, lower case, in order
    text: str  # the new text of the message: quotes, signature, disclaimer split off
    report_type: str | None = None  # multipart/report's report-type (RFC 6522), lower case
    # The Action of every recipient in a delivery-status part (RFC 3464 §2.3.3), lower case.
    dsn_actions: tuple[str, ...] = ()
    quoted: str = ""
    signature: str = ""
    disclaimer: str = ""
    forwarded_from: Address | None = None  # original author when the mail is only a forward
    html_only: bool = False
    attachments: tuple[Attachment, ...] = ()
    language: str = ""  # "nl", "en" or "" when it cannot be told
    defects: tuple[str, ...] = ()
    error: str | None = None  # why the message could not be parsed; the rest is best effort

    def header(self, name: str) -> str:
        """The first value of header `name` ("" when absent)."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""

    def header_all(self, name: str) -> tuple[str, ...]:
        return self.headers.get(name.lower(), ())

    def has_header(self, name: str) -> bool:
        """True when the header is present, even empty (X-MS-Exchange-Message-Is-Ndr)."""
        return name.lower() in self.headers
