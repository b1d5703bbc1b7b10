"""Transport protocol, OutgoingMail and open_transport(url): how outgoing mail leaves."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from intake.config import Outgoing
from intake.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}  # RFC 6409 submission; RFC 8314 implicit TLS


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One rendered message and its envelope, as the outbox stored it at queue time.

    `data` is the complete RFC 5322 message (LF or CRLF line ends); `recipients` are the
    envelope recipients, never derived from the To/Cc headers (SMTP-11).
    """

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes = field(repr=False)
    message_id: str

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("an outgoing mail needs at least one recipient")
        if not self.message_id.strip():
            raise ValueError("an outgoing mail needs its Message-ID")
        for address in (self.envelope_from, *self.recipients):
            # An envelope address ends up in an SMTP command line: CR/LF would inject commands.
            if any(char in address for char in "\r\n\0"):
                raise ValueError(f"control character in envelope address {address!r}")


class Transport(Protocol):
    """Hands outgoing mail to a relay or a folder; one instance may send many messages."""

    name: str  # the URL without credentials, for logs and the outbox's records

    def send(self, mail: OutgoingMail) -> str:
        """The relay's answer (or where the mail went) once it has taken responsibility.

        Raises TransportError; its `permanent` flag says whether a retry can ever succeed.
        """
        ...

    def close(self) -> None:
        """Releases the connection; sending again afterwards opens a new one."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class SmtpAddress:
    """Where and how to reach the relay, parsed from `outgoing.url`."""

    host: str
    port: int
    implicit_tls: bool  # smtps://
    starttls: bool  # False only with ?tls=none
    username: str

    @property
    def name(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        query = "" if self.implicit_tls or self.starttls else "?tls=none"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{query}"


def open_transport(settings: Outgoing, password: str = "") -> Transport:
    """The Transport for `settings.url`: `smtp://host[:port]`, `smtps://host[:port]` or `file:PATH`.

    Raises ConfigError for an unusable URL; connects lazily, at the first send.
    """
    url = settings.url
    if url.startswith("file:"):
        from intake.transports.file import FileTransport  # noqa: PLC0415 (imports this module)

        return FileTransport(file_path(url))
    if url.startswith(("smtp://", "smtps://")):
        from intake.transports.smtp import SmtpTransport  # noqa: PLC0415 (imports this module)

        address = parse_smtp_url(url, settings.username)
        if password and not address.username:
            raise ConfigError(
                "outgoing.username: a password is set but no user name; set outgoing.username "
                "or put the user in the URL (smtp://user%40example.org@host:587)"
            )
        return SmtpTransport(address, settings, password)
    raise ConfigError(
        f"outgoing.url: unsupported transport {url!r}; use smtp://host:587 (STARTTLS), "
        "smtps://host:465 (TLS) or file:PATH"
    )


def parse_smtp_url(url: str, default_username: str = "") -> SmtpAddress:
    """The relay address in `url`; raises ConfigError naming what is wrong."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"outgoing.url: invalid port in {_without_password(url)!r}") from exc
    if not parts.hostname:
        raise ConfigError(f"outgoing.url: no host in {_without_password(url)!r}")
    if parts.password is not None:
        raise ConfigError(
            "outgoing.url: passwords never go in the URL; set INTAKE_OUTGOING_PASSWORD "
            "or outgoing.password_file"
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"outgoing.url: unexpected path in {url!r}; use smtp://host:port")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"tls"})
    if unknown:
        raise ConfigError(f"outgoing.url: unknown option {unknown[0]!r}; only ?tls=none exists")
    tls = query.get("tls", ["required"])
    if len(tls) != 1 or tls[0] not in ("none", "required"):
        raise ConfigError("outgoing.url: tls must be none (plain text, loopback tests only)")
    implicit_tls = parts.scheme == "smtps"
    if implicit_tls and tls[0] == "none":
        raise ConfigError("outgoing.url: smtps:// is always TLS; use smtp://…?tls=none instead")
    address = SmtpAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        implicit_tls=implicit_tls,
        starttls=not implicit_tls and tls[0] != "none",
        username=unquote(parts.username) if parts.username else default_username,
    )
    if not address.implicit_tls and not address.starttls and not is_loopback(address.host):
        # Plain text crosses the network: the password and every resident's address readable.
        log.warning("outgoing mail to %s is sent in plain text (tls=none)", address.name)
    return address


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses such as 127.0.0.1 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def file_path(url: str) -> str:
    """The folder of a `file:PATH` (or `file:///PATH`) URL, taken literally (no %-decoding)."""
    path = url.removeprefix("file:")
    if path.startswith("//"):
        host, _, rest = path[2:].partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(f"outgoing.url: {url!r} names another host; use file:PATH")
        path = "/" + rest
    if not path:
        raise ConfigError("outgoing.url: file: needs a folder, e.g. file:var/outbox")
    return path


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
