"""file: pickup folder (embedded default), one .eml per message."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from intake.errors import TransportError
from intake.transports import OutgoingMail, Transport

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
_MAX_ID_CHARS = 120  # keeps names well under the 255-byte limit of common file systems


class FileTransport(Transport):
    """Writes each message as `<timestamp>-<message-id>.eml` into a folder, like Django's
    file e-mail backend; the embedded default, and what the tests parse back.

    Each file is complete or absent (written under a temporary name, synced, renamed), and
    sending the same Message-ID again replaces its file rather than adding one (idempotent).
    The envelope is kept as `Return-Path` and `X-Envelope-To` trace headers in front, as a
    delivering MTA adds them (RFC 5321 §4.4).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.name = f"file:{self.folder}"

    def send(self, mail: OutgoingMail) -> str:
        """'written to <path>'; raises TransportError (temporary) when the folder is unusable."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self._existing(mail) or self.folder / self._new_name(mail)
            self._write_atomically(path, _with_envelope(mail))
        except OSError as exc:
            raise TransportError(
                f"{self.name}: cannot write {mail.message_id}: {exc.strerror or exc}",
                permanent=False,
            ) from exc
        log.debug("wrote %s to %s", mail.message_id, path)
        return f"written to {path}"

    def close(self) -> None:
        """Nothing to release: every send opens and closes its own file."""

    def _existing(self, mail: OutgoingMail) -> Path | None:
        # The safe id holds no glob characters, so the pattern matches it literally.
        return next(iter(sorted(self.folder.glob(f"*-{safe_id(mail.message_id)}.eml"))), None)

    def _new_name(self, mail: OutgoingMail) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{stamp}-{safe_id(mail.message_id)}.eml"

    def _write_atomically(self, path: Path, data: bytes) -> None:
        # A dot name, so that a process watching the folder never picks up a half-written file.
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _sync_folder(self.folder)


def safe_id(message_id: str) -> str:
    """The Message-ID without angle brackets, usable as part of a file name on any system.

    When characters had to be replaced or the id shortened, a hash of the original is added, so
    that two different ids never share a file.
    """
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    safe = _UNSAFE.sub("_", bare).lstrip(".")[:_MAX_ID_CHARS]
    if safe != bare:
        digest = hashlib.sha256(message_id.strip().encode("utf-8", "surrogatepass")).hexdigest()
        safe = f"{safe}-{digest[:12]}"
    return safe


def _with_envelope(mail: OutgoingMail) -> bytes:
    eol = b"\r\n" if b"\r\n" in mail.data[:1000] else b"\n"
    trace = (
        f"Return-Path: <{mail.envelope_from}>".encode()
        + eol
        + f"X-Envelope-To: {', '.join(mail.recipients)}".encode()
        + eol
    )
    return trace + mail.data


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder itself is synced (POSIX; not on Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
