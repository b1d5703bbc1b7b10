"""imapclient: UID + UIDVALIDITY, BODY.PEEK batches, timeouts, reconnect/backoff."""

from __future__ import annotations

import ipaddress
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from intake.config import Mailbox
from intake.errors import ConfigError, SourceError
from intake.sources import Position, RawMail

log = logging.getLogger(__name__)

T = TypeVar("T")

# Failures after which a new connection may succeed (IMAP-12): the server said BYE or the
# connection broke. A refused certificate or login is not among them: retrying cannot fix it.
RETRYABLE = (IMAPClientAbortError, OSError, EOFError)

# The total size of one BODY.PEEK[] request, so that a batch of large messages is not held in
# memory at once (one message over it is still fetched alone).
FETCH_BYTES_BUDGET = 16_000_000


@dataclass(frozen=True, slots=True)
class ImapTarget:
    """What an imap:// or imaps:// mailbox URL names."""

    host: str
    port: int
    user: str
    folder: str
    tls: str  # "implicit" (imaps), "starttls" (imap) or "none" (imap with ?tls=none)


def parse_imap_url(url: str) -> ImapTarget:
    """The target of `imaps://user@host[:port]/FOLDER` or `imap://…[?tls=none]`.

    Raises ConfigError for anything else, including a password in the URL: secrets only come
    from the environment or `mailbox.password_file`. No message repeats the URL's password.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ConfigError(f"mailbox.url: expected imap:// or imaps://, got {parts.scheme}://")
    if parts.password is not None:
        raise ConfigError(
            "mailbox.url: the URL holds a password; set INTAKE_MAILBOX_PASSWORD or "
            "mailbox.password_file instead"
        )
    if not parts.hostname or not parts.username:
        raise ConfigError(f"mailbox.url: expected {parts.scheme}://user@host/FOLDER, got {url!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"tls"}
    if unknown:
        raise ConfigError(f"mailbox.url: unknown option {sorted(unknown)[0]!r}; only tls=none")
    tls = "implicit" if parts.scheme == "imaps" else "starttls"
    if "tls" in query:
        if query["tls"] != ["none"] or parts.scheme != "imap":
            raise ConfigError("mailbox.url: tls=none is the only option, and only for imap://")
        tls = "none"
    try:
        port = parts.port or (993 if tls == "implicit" else 143)
    except ValueError as exc:
        raise ConfigError(f"mailbox.url: {exc}") from None
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapTarget(parts.hostname, port, unquote(parts.username), folder, tls)


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_key(key: str) -> tuple[int, int]:
    """(uidvalidity, uid) from a RawMail key made by this source."""
    validity, _, uid = key.partition(":")
    return int(validity), int(uid)


class ImapSource:
    """A folder on an IMAP server, read by UID without changing any flag.

    One connection, opened on first use and replaced after a drop. `fetch_new` yields messages
    in UID order. When a message the server listed is still missing after a second FETCH, the
    iteration stops before it (and `stalled_at` names its UID): everything yielded so far is
    safe to commit and the position never moves past the missing message, which the next poll
    asks for again. A message expunged in between is simply left out.
    """

    def __init__(
        self,
        url: str,
        settings: Mailbox,
        password: str,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
    ) -> None:
        self.target = parse_imap_url(url)
        self.name = url
        self.settings = settings
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.stalled_at: int | None = None
        # UIDNEXT when `fetch_new` last read the folder to its end: mail that arrives after it
        # but before IDLE starts is in the folder when IDLE's SELECT sees it, and IDLE reports
        # only what comes later; `idle_wait` compares the two instead (IMAP-11).
        self._synced_uidnext: int | None = None
        self._password = password
        self._client: Any = None  # imapclient ships no type hints
        if self.target.tls == "none" and not is_loopback(self.target.host):
            log.warning(
                "mailbox %s: tls=none sends the password in clear over the network", self.name
            )

    # -- the Source protocol -------------------------------------------------------------------

    def fetch_new(self, position: Position) -> Iterator[RawMail]:
        """Messages after `position` in UID order; every message when UIDVALIDITY changed.

        Memory holds one batch at a time. After a dropped connection it reconnects with back-off
        and resumes after the last message yielded, so nothing is yielded twice or lost.
        """
        self.stalled_at = None
        validity, last = position.uidvalidity, position.last_uid
        failures = 0
        while True:
            try:
                client = self._connected()
                current, uidnext = self._examine(client)
                if not validity:
                    validity = current  # a position saved before the validity was known
                elif current != validity:
                    log.warning(
                        "mailbox %s: UIDVALIDITY changed from %d to %d; reading all mail again",
                        self.name,
                        validity,
                        current,
                    )
                    validity, last = current, 0
                if uidnext and uidnext <= last + 1:
                    self._synced_uidnext = uidnext
                    return  # IMAP-6: nothing arrived since `last`
                for mail in self._fetch_after(client, validity, last):
                    last = parse_key(mail.key)[1]  # resume after it, whatever the consumer does
                    failures = 0
                    yield mail
                self._synced_uidnext = uidnext
                return
            except RETRYABLE as exc:
                failures += 1
                self._retry_or_give_up(exc, failures)
            except IMAPClientError as exc:
                raise self._refused(exc) from None

    def current_validity(self) -> int:
        """The folder's UIDVALIDITY."""
        return self._with_retry(lambda client: self._examine(client)[0])

    def mark_processed(self, keys: list[str]) -> None:
        """Move the messages with these keys to `processed_folder`, when one is set (IMAP-13).

        Only the given messages move. Keys of an older UIDVALIDITY are void and skipped. Without
        MOVE it copies, flags the originals \\Deleted and expunges just those UIDs
        (UIDPLUS); it never runs a plain EXPUNGE, which would remove other flagged mail too.
        """
        target = self.settings.processed_folder
        if not target or not keys:
            return
        self._with_retry(lambda client: self._move(client, keys, target))

    def idle_wait(self, timeout: float) -> bool | None:
        """True when the server signalled new mail within `timeout` seconds; False when none
        came; None, at once, when the server offers no IDLE.

        IDLE is only a hint (IMAP-11): the caller runs `fetch_new` after a signal. Whatever else
        the server says meanwhile (Dovecot's "* OK Still here", flag changes, expunges) is no
        mail and the wait goes on. A dropped connection returns True, so that the caller polls
        at once (and reconnects with back-off there).
        """
        deadline = time.monotonic() + timeout
        client, uidnext = self._with_retry(self._examined)
        if self._synced_uidnext is not None and uidnext > self._synced_uidnext:
            return True  # arrived since the last fetch, before IDLE could report it
        if b"IDLE" not in client.capabilities():
            return None
        signalled = False
        try:
            client.idle()
            try:
                while not signalled and (left := deadline - time.monotonic()) > 0:
                    signalled = _announces_mail(client.idle_check(timeout=left))
            finally:
                # IDLE must end before any other command is sent (IMAP-11).
                done = client.idle_done()
        except RETRYABLE as exc:
            log.warning("mailbox %s: connection lost during IDLE: %s", self.name, self._redact(exc))
            self._drop()
            return True
        except IMAPClientError as exc:
            raise self._refused(exc) from None
        return signalled or _announces_mail(done[1])

    def close(self) -> None:
        """Log out and close the connection; a later call opens a new one."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (*RETRYABLE, IMAPClientError):
            self._shutdown(client)

    def __enter__(self) -> ImapSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def _examine(self, client: Any) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) of the folder, selected read-only so no flag changes (IMAP-7)."""
        try:
            info = client.select_folder(self.target.folder, readonly=True)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise SourceError(
                f"mailbox {self.name}: cannot open folder {self.target.folder!r}: "
                f"{self._redact(exc)}"
            ) from None
        return int(info[b"UIDVALIDITY"]), int(info.get(b"UIDNEXT", 0))

    def _examined(self, client: Any) -> tuple[Any, int]:
        return client, self._examine(client)[1]

    def _fetch_after(self, client: Any, validity: int, last: int) -> Iterator[RawMail]:
        # IMAP-6: "last+1:*" always matches the highest UID, even when it is <= last.
        uids = sorted(uid for uid in client.search(["UID", f"{last + 1}:*"]) if uid > last)
        for start in range(0, len(uids), self.settings.batch_size):
            batch = uids[start : start + self.settings.batch_size]
            meta = self._fetch_all(client, batch, [b"RFC822.SIZE", b"INTERNALDATE"])
            gap = self._first_gap(client, batch, meta)
            readable = [uid for uid in batch if uid in meta and (gap is None or uid < gap)]
            for group in self._size_groups(readable, meta):
                headers_only = len(group) == 1 and self._is_over(meta[group[0]])
                items = [b"BODY.PEEK[HEADER]"] if headers_only else [b"BODY.PEEK[]"]
                data = self._fetch_all(client, group, items)
                group_gap = self._first_gap(client, group, data)
                for uid in group:
                    if group_gap is not None and uid >= group_gap:
                        return
                    if uid in data:
                        yield self._raw_mail(validity, uid, meta[uid], data[uid])
            if gap is not None:
                return

    def _fetch_all(self, client: Any, uids: list[int], items: list[bytes]) -> dict[int, Any]:
        """FETCH results for `uids`, asking a second time for any the server left out (IMAP-9)."""
        response = client.fetch(uids, items)
        # Unsolicited FETCH responses (flag changes of other messages) are dropped here.
        result = {uid: response[uid] for uid in uids if uid in response}
        missing = [uid for uid in uids if uid not in result]
        if missing:
            again = client.fetch(missing, items)
            result.update({uid: again[uid] for uid in missing if uid in again})
        return result

    def _first_gap(self, client: Any, uids: list[int], data: dict[int, Any]) -> int | None:
        """The first UID that still exists but was not returned: the iteration stops before it.

        Messages expunged since the SEARCH are no gap: there is nothing left to read.
        """
        missing = [uid for uid in uids if uid not in data]
        if not missing:
            return None
        existing = set(client.search(["UID", ",".join(str(uid) for uid in missing)]))
        gone = [uid for uid in missing if uid not in existing]
        if gone:
            log.info("mailbox %s: UIDs %s were expunged before they were read", self.name, gone)
        stuck = [uid for uid in missing if uid in existing]
        if not stuck:
            return None
        self.stalled_at = stuck[0]
        log.warning(
            "mailbox %s: the server returned nothing for UID %d twice; stopping before it, "
            "the next poll tries again",
            self.name,
            stuck[0],
        )
        return stuck[0]

    def _is_over(self, meta: dict[bytes, Any]) -> bool:
        return int(meta[b"RFC822.SIZE"]) > self.settings.max_message_bytes

    def _size_groups(self, uids: list[int], meta: dict[int, Any]) -> Iterator[list[int]]:
        """UIDs in order, grouped so each BODY fetch stays under the byte budget.

        A message over the size limit is a group of its own (only its header is fetched).
        """
        budget = max(FETCH_BYTES_BUDGET, self.settings.max_message_bytes)
        group: list[int] = []
        total = 0
        for uid in uids:
            size = int(meta[uid][b"RFC822.SIZE"])
            if self._is_over(meta[uid]):
                if group:
                    yield group
                group, total = [], 0
                yield [uid]
                continue
            if group and total + size > budget:
                yield group
                group, total = [], 0
            group.append(uid)
            total += size
        if group:
            yield group

    def _raw_mail(
        self, validity: int, uid: int, meta: dict[bytes, Any], data: dict[bytes, Any]
    ) -> RawMail:
        size = int(meta[b"RFC822.SIZE"])
        arrived = meta[b"INTERNALDATE"]
        if arrived.tzinfo is None:  # not expected with normalise_times off (IMAP-14)
            arrived = arrived.replace(tzinfo=UTC)
        if b"BODY[]" in data:
            body, truncated = bytes(data[b"BODY[]"]), False
        else:
            note = (
                f"[intake: the body was not fetched: the message is {size} bytes, over the "
                f"limit of {self.settings.max_message_bytes} bytes (mailbox.max_message_bytes)]"
            )
            body, truncated = bytes(data[b"BODY[HEADER]"]) + note.encode() + b"\r\n", True
            log.warning("mailbox %s: UID %d is %d bytes; read headers only", self.name, uid, size)
        return RawMail(
            key=f"{validity}:{uid}",
            data=body,
            arrived_at=arrived.astimezone(UTC),
            size=size,
            truncated=truncated,
            folder=self.target.folder,
        )

    # -- moving --------------------------------------------------------------------------------

    def _move(self, client: Any, keys: Iterable[str], target: str) -> None:
        validity = self._select_writable(client)
        uids = []
        for key in keys:
            key_validity, uid = parse_key(key)
            if key_validity == validity:
                uids.append(uid)
            else:
                log.warning(
                    "mailbox %s: not moving %s: UIDVALIDITY is now %d", self.name, key, validity
                )
        try:
            if uids:
                if not client.folder_exists(target):
                    client.create_folder(target)
                capabilities = client.capabilities()
                if b"MOVE" in capabilities:
                    client.move(uids, target)
                elif b"UIDPLUS" in capabilities:
                    client.copy(uids, target)
                    client.add_flags(uids, [b"\\Deleted"], silent=True)
                    client.uid_expunge(uids)
                else:
                    raise SourceError(
                        f"mailbox {self.name}: the server supports neither MOVE nor UIDPLUS, so "
                        "processed mail cannot be moved safely; unset mailbox.processed_folder"
                    )
                log.info("mailbox %s: moved %d messages to %s", self.name, len(uids), target)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise SourceError(
                f"mailbox {self.name}: cannot move mail to {target!r}: {self._redact(exc)}"
            ) from None
        self._examine(client)  # back to read-only, as fetch_new expects

    def _select_writable(self, client: Any) -> int:
        try:
            info = client.select_folder(self.target.folder)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise SourceError(
                f"mailbox {self.name}: cannot open folder {self.target.folder!r}: "
                f"{self._redact(exc)}"
            ) from None
        return int(info[b"UIDVALIDITY"])

    # -- connecting ----------------------------------------------------------------------------

    def _connected(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        target = self.target
        where = f"{target.host}:{target.port}"
        context = ssl.create_default_context(cafile=self.settings.ca_file or None)
        timeout = SocketTimeout(
            connect=self.settings.timeout_seconds, read=self.settings.timeout_seconds
        )
        try:
            client = IMAPClient(
                target.host,
                port=target.port,
                ssl=target.tls == "implicit",
                ssl_context=context,
                timeout=timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"mailbox {self.name}: the certificate of {where} is not trusted "
                f"({exc.verify_message}); set mailbox.ca_file for a private CA"
            ) from None
        quiet_protocol_log(client)
        try:
            if target.tls == "starttls":
                if b"STARTTLS" not in client.capabilities():
                    raise SourceError(
                        f"mailbox {self.name}: {where} does not offer STARTTLS; refusing to send "
                        "the password in clear (use imaps://, or ?tls=none for a local test server)"
                    )
                client.starttls(context)
            client.login(target.user, self._password)
        except ssl.SSLCertVerificationError as exc:
            self._shutdown(client)
            raise SourceError(
                f"mailbox {self.name}: the certificate of {where} is not trusted "
                f"({exc.verify_message}); set mailbox.ca_file for a private CA"
            ) from None
        except LoginError as exc:
            self._shutdown(client)
            raise SourceError(
                f"mailbox {self.name}: login as {target.user!r} refused: {self._redact(exc)}"
            ) from None
        except BaseException:
            self._shutdown(client)
            raise
        client.normalise_times = False  # aware INTERNALDATE, not naive local time (IMAP-14)
        log.debug("mailbox %s: connected to %s", self.name, where)
        return client

    def _with_retry(self, operation: Callable[[Any], T]) -> T:
        failures = 0
        while True:
            try:
                return operation(self._connected())
            except RETRYABLE as exc:
                failures += 1
                self._retry_or_give_up(exc, failures)
            except IMAPClientError as exc:
                raise self._refused(exc) from None

    def _refused(self, exc: IMAPClientError) -> SourceError:
        """A SourceError for a command the server answered NO or BAD; drops the connection."""
        self._drop()
        return SourceError(
            f"mailbox {self.name}: the server refused a command: {self._redact(exc)}"
        )

    def _retry_or_give_up(self, exc: BaseException, failures: int) -> None:
        """Drop the broken connection, then wait before the next attempt or raise SourceError."""
        self._drop()
        reason = self._redact(exc) or type(exc).__name__
        if failures >= self.max_attempts:
            raise SourceError(
                f"mailbox {self.name}: cannot reach {self.target.host}:{self.target.port} "
                f"after {failures} attempts: {reason}"
            ) from None
        delay = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (failures - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter, so that workers do not retry in step
        log.warning(
            "mailbox %s: connection failed (%s); attempt %d of %d in %.1f s",
            self.name,
            reason,
            failures + 1,
            self.max_attempts,
            delay,
        )
        time.sleep(delay)

    def _drop(self) -> None:
        """Forget the current connection without talking to the server: it is never reused."""
        client, self._client = self._client, None
        if client is not None:
            self._shutdown(client)

    @staticmethod
    def _shutdown(client: Any) -> None:
        try:
            client.shutdown()
        except (OSError, IMAPClientError):
            log.debug("closing a broken connection failed", exc_info=True)

    def _redact(self, exc: BaseException) -> str:
        text = str(exc)
        if self._password:
            text = text.replace(self._password, "***")
        return text


def quiet_protocol_log(client: IMAPClient) -> None:
    """Stop imaplib writing every response into imapclient's protocol log.

    imapclient sets imaplib's debug level to 5 and sends its messages to the logger
    "imapclient.imaplib": every FETCH response is formatted with repr() first, each message
    and then each batch of fifty again, before the logger drops it (about a third of the
    polling process's CPU), and at DEBUG level whole mails would reach the log (PRIV-2).
    """
    imap = getattr(client, "_imap", None)  # imapclient keeps its imaplib connection here
    if imap is not None:
        imap.debug = 0


def _announces_mail(responses: Iterable[Any]) -> bool:
    """New mail (EXISTS, RECENT), or the server ending the session (BYE): poll now."""
    for response in responses:
        if len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT"):
            return True
        if response and response[0] == b"BYE":
            return True
    return False
