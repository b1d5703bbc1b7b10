"""Source protocol, RawMail and open_source(url): where mail comes from."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from intake.config import Mailbox
from intake.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RawMail:
    """One message as the mailbox holds it, before any parsing."""

    key: str  # stable within the source: "<uidvalidity>:<uid>" (IMAP) or the Maildir key
    data: bytes = field(repr=False)
    arrived_at: datetime  # aware; IMAP INTERNALDATE or Maildir delivery time (IMAP-15)
    size: int  # the size in the mailbox; larger than len(data) when cut at the size limit
    truncated: bool = False  # only the headers were fetched (over mailbox.max_message_bytes)
    folder: str = ""


@dataclass(frozen=True, slots=True)
class Position:
    """How far a source has been read; only advanced past committed messages (IMAP-10)."""

    uidvalidity: int = 0
    last_uid: int = 0
    # Keys already stored, for sources without UIDs (Maildir) that must skip them by name.
    known_keys: Container[str] = frozenset()


class Source(Protocol):
    """A mailbox that yields messages after a position, in arrival order."""

    name: str  # the mailbox URL without credentials: the key of its stored position

    def fetch_new(self, position: Position) -> Iterator[RawMail]:
        """Messages after `position`; for a changed UIDVALIDITY, every message of the folder."""
        ...

    def current_validity(self) -> int:
        """The folder's UIDVALIDITY (0 for sources without one)."""
        ...

    def mark_processed(self, keys: list[str]) -> None:
        """Move committed messages to the processed folder, when one is configured (IMAP-13)."""
        ...

    def close(self) -> None: ...


def open_source(settings: Mailbox, password: str = "") -> Source:
    """The Source for `settings.url`: `maildir:PATH`, `imaps://…` or `imap://…`."""
    url = settings.url
    if url.startswith("maildir:"):
        # Imported here: the implementations import RawMail and Position from this module.
        from intake.sources.maildir import MaildirSource  # noqa: PLC0415

        return MaildirSource(url.removeprefix("maildir:"), settings)
    if url.startswith(("imap://", "imaps://")):
        from intake.sources.imap import ImapSource  # noqa: PLC0415

        return ImapSource(url, settings, password)
    raise ConfigError(
        f"mailbox.url: unsupported mailbox {url!r}; use maildir:PATH, imaps://user@host/FOLDER "
        "or imap://user@host/FOLDER"
    )
