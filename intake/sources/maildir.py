"""Local Maildir (the embedded default); arrival time is the delivery time of the file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from intake.config import Mailbox
from intake.errors import SourceError
from intake.sources import Position, RawMail

log = logging.getLogger(__name__)
NOTE = b"\r\n[intake: message of %d bytes is over the size limit; only its headers were kept]\r\n"


class MaildirSource:
    """Reads `new/` and `cur/` without moving, renaming or flagging anything.

    Maildir has no UIDs: messages are yielded in delivery order, skipping the keys that the
    position says are stored already (they are recorded per source in the database).
    """

    def __init__(self, path: str, settings: Mailbox) -> None:
        self.path = Path(path)
        self.name = f"maildir:{self.path}"
        self.settings = settings

    def fetch_new(self, position: Position) -> Iterator[RawMail]:
        for arrived_at, key, file in self._listing():
            if key in position.known_keys:
                continue
            try:
                size = file.stat().st_size
                if size > self.settings.max_message_bytes:
                    data, truncated = _headers_only(file, size), True
                else:
                    data, truncated = file.read_bytes(), False
            except FileNotFoundError:
                continue  # moved or deleted by someone else since the listing
            yield RawMail(key=key, data=data, arrived_at=arrived_at, size=size, truncated=truncated)

    def _listing(self) -> list[tuple[datetime, str, Path]]:
        if not self.path.is_dir():
            raise SourceError(f"mailbox {self.name}: folder does not exist")
        entries = []
        for sub in ("new", "cur"):
            folder = self.path / sub
            if not folder.is_dir():
                continue
            for file in folder.iterdir():
                if file.name.startswith(".") or not file.is_file():
                    continue
                mtime = datetime.fromtimestamp(file.stat().st_mtime, tz=UTC)
                # The key is the unique part before the ":2,FLAGS" info suffix, which mail
                # clients change when they set flags.
                entries.append((mtime, file.name.split(":", 1)[0], file))
        entries.sort()
        return entries

    def current_validity(self) -> int:
        return 0

    def mark_processed(self, keys: list[str]) -> None:
        """Nothing to do: a local Maildir is left exactly as it is."""

    def close(self) -> None:
        """Nothing to close."""


def _headers_only(file: Path, size: int) -> bytes:
    head = b""
    with file.open("rb") as handle:
        while chunk := handle.read(65536):
            head += chunk
            for separator in (b"\r\n\r\n", b"\n\n"):
                end = head.find(separator)
                if end >= 0:
                    return head[: end + len(separator)] + NOTE % size
            if len(head) > 1_000_000:
                break
    return head + b"\r\n" + NOTE % size
