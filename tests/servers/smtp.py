"""A real SMTP server for the tests (aiosmtpd) that records every mail and fails on cue.

Fixtures (session-scoped servers, function-scoped resets):

- `smtp_server` / `smtp`: plain text on 127.0.0.1 (transport URL `smtp://127.0.0.1:PORT?tls=none`);
- `smtp_tls_server` / `smtp_tls`: STARTTLS required, certificate from a test CA (`.ca_file`),
  AUTH PLAIN/LOGIN for `TEST_USER`/`TEST_PASSWORD` after STARTTLS;
- `smtps_server` / `smtps`: the same with implicit TLS (`smtps://`).

In a test: `smtp.fail_next("RCPT", 451)`, `smtp.hang_next(2)`, `smtp.refuse_connections()`,
then look at `smtp.messages` (envelope, bytes and the parsed `EmailMessage` of each mail).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from intake.config import Outgoing
from tests.servers import free_port

Stage = Literal["MAIL", "RCPT", "DATA"]
Security = Literal["none", "starttls", "implicit"]
STAGES: tuple[Stage, ...] = ("MAIL", "RCPT", "DATA")

HOST = "127.0.0.1"  # never "localhost": aiosmtpd may pick ::1 and the client 127.0.0.1
TEST_USER = "intake-relay@example.org"
TEST_PASSWORD = "Relay-Pa55word-7f3c"  # tests check it never shows in an error message

_DEFAULT_TEXT = {
    421: "4.3.2 Service shutting down (test)",
    450: "4.2.0 Mailbox busy (test)",
    451: "4.3.0 Temporary local problem, try again (test)",
    452: "4.3.1 Insufficient system storage (test)",
    550: "5.1.1 Mailbox unavailable (test)",
    552: "5.3.4 Message too big (test)",
    554: "5.6.0 Transaction failed (test)",
}


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted, with its envelope as the client sent it."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes = field(repr=False)
    login: str | None  # the authenticated user, None without AUTH
    tls: bool  # whether the session was encrypted (STARTTLS or implicit)
    message: EmailMessage = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        object.__setattr__(self, "message", parsed)

    def __getitem__(self, header: str) -> str | None:
        value = self.message[header]
        return None if value is None else str(value)


class _Handler:
    """aiosmtpd hooks: record accepted mail, answer with scripted failures, hang on cue."""

    def __init__(self, owner: RecordingSMTP) -> None:
        self._owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if answer := await self._owner._scripted("MAIL"):
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if answer := await self._owner._scripted("RCPT"):
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if answer := await self._owner._scripted("DATA"):
            return answer
        content = envelope.original_content or b""
        mail = ReceivedMail(
            envelope_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            data=content,
            login=session.auth_data if isinstance(session.auth_data, str) else None,
            tls=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
        )
        number = self._owner._record(mail)
        return f"250 2.0.0 OK queued as TEST{number:04d}"


class _Controller(Controller):
    """Counts connections (one `factory()` call each) so tests can see reuse and reconnects."""

    def __init__(self, owner: RecordingSMTP, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        self._owner._connected()
        return super().factory()  # type: ignore[no-any-return, no-untyped-call]


class RecordingSMTP:
    """An SMTP server on 127.0.0.1 that keeps every accepted mail and fails when told to."""

    def __init__(
        self,
        *,
        security: Security = "none",
        ca: trustme.CA | None = None,
        ca_file: Path | None = None,
        port: int | None = None,
    ) -> None:
        if security != "none" and (ca is None or ca_file is None):
            raise ValueError("a TLS server needs the test CA and its file")
        self.host = HOST
        self.port = port or free_port()
        self.security = security
        self.ca_file = str(ca_file) if ca_file else None
        self.messages: list[ReceivedMail] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._failures: dict[str, deque[tuple[int, str]]] = {s: deque() for s in STAGES}
        self._hangs: dict[str, deque[float]] = {s: deque() for s in STAGES}
        self._tls_context: ssl.SSLContext | None = None
        if ca is not None and security != "none":
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(HOST, "localhost").configure_cert(self._tls_context)
        self._controller: _Controller | None = None

    # -- what the tests use ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The `outgoing.url` that reaches this server."""
        if self.security == "implicit":
            return f"smtps://{self.host}:{self.port}"
        if self.security == "starttls":
            return f"smtp://{self.host}:{self.port}"
        return f"smtp://{self.host}:{self.port}?tls=none"

    def outgoing(self, **overrides: Any) -> Outgoing:
        """`[outgoing]` settings for this server: its URL and CA, no pacing, a short timeout."""
        values: dict[str, Any] = {
            "url": self.url,
            "ca_file": self.ca_file or "",
            "from_address": "inspraak@example.org",
            "message_id_domain": "example.org",
            "max_per_minute": 0,
            "timeout_seconds": 5.0,
        }
        values.update(overrides)
        return Outgoing(**values)

    def fail_next(self, stage: Stage, code: int, times: int = 1, text: str | None = None) -> None:
        """Answer the next `times` commands of `stage` (MAIL, RCPT or DATA) with `code`."""
        if stage not in self._failures:
            raise ValueError(f"stage must be MAIL, RCPT or DATA, not {stage!r}")
        if not 400 <= code < 600:
            raise ValueError("fail with a 4yz or 5yz code")
        answer = text or _DEFAULT_TEXT.get(code, f"{code // 100}.0.0 Scripted failure (test)")
        with self._lock:
            self._failures[stage].extend([(code, answer)] * times)

    def hang_next(self, seconds: float, stage: Stage = "MAIL") -> None:
        """Say nothing for `seconds` at the next `stage` command, then go on as usual."""
        with self._lock:
            self._hangs[stage].append(seconds)

    def refuse_connections(self) -> None:
        """Stop listening (and drop open sessions): the relay is down."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def accept_connections(self) -> None:
        """Listen again on the same port: the relay is back."""
        if self._controller is None:
            self.start()

    def reset(self) -> None:
        """Forget mail, scripted failures and counts; listen again if a test stopped it."""
        with self._lock:
            self.messages.clear()
            for queue in self._failures.values():
                queue.clear()
            for hangs in self._hangs.values():
                hangs.clear()
            self.connections = 0
        self.accept_connections()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port}
        if self.security != "none":
            kwargs.update(authenticator=_authenticate, auth_require_tls=True)
        if self.security == "starttls":
            kwargs.update(tls_context=self._tls_context, require_starttls=True)
        if self.security == "implicit":
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; here the whole
            # connection is TLS already.
            kwargs.update(ssl_context=self._tls_context, auth_require_tls=False)
        controller = _Controller(self, **kwargs)
        controller.start()
        with self._lock:
            self.connections = 0  # Controller.start() connects once to check the server is up
        self._controller = controller

    def stop(self) -> None:
        self.refuse_connections()

    # -- called from the server's thread ------------------------------------------------------

    async def _scripted(self, stage: str) -> str | None:
        with self._lock:
            hang = self._hangs[stage].popleft() if self._hangs[stage] else None
            failure = self._failures[stage].popleft() if self._failures[stage] else None
        if hang is not None:
            await asyncio.sleep(hang)
        if failure is not None:
            return f"{failure[0]} {failure[1]}"
        return None

    def _record(self, mail: ReceivedMail) -> int:
        with self._lock:
            self.messages.append(mail)
            return len(self.messages)

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == TEST_USER
        and auth_data.password.decode() == TEST_PASSWORD
    ):
        return AuthResult(success=True, auth_data=TEST_USER)
    return AuthResult(success=False, handled=False)


# -- fixtures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCA:
    """The CA that signs the TLS servers' certificates, and its PEM file for `ca_file`."""

    ca: trustme.CA
    ca_file: Path


@pytest.fixture(scope="session")
def smtp_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return TestCA(ca, path)


def _serve(server: RecordingSMTP) -> Iterator[RecordingSMTP]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[RecordingSMTP]:
    """Plain-text SMTP on 127.0.0.1 for the whole session; use `smtp` for a clean one."""
    yield from _serve(RecordingSMTP())


@pytest.fixture(scope="session")
def smtp_tls_server(smtp_ca: TestCA) -> Iterator[RecordingSMTP]:
    """STARTTLS-only SMTP with AUTH; `.ca_file` is the CA that signed its certificate."""
    yield from _serve(RecordingSMTP(security="starttls", ca=smtp_ca.ca, ca_file=smtp_ca.ca_file))


@pytest.fixture(scope="session")
def smtps_server(smtp_ca: TestCA) -> Iterator[RecordingSMTP]:
    """Implicit-TLS SMTP (smtps://) with AUTH; `.ca_file` as for `smtp_tls_server`."""
    yield from _serve(RecordingSMTP(security="implicit", ca=smtp_ca.ca, ca_file=smtp_ca.ca_file))


@pytest.fixture
def smtp(smtp_server: RecordingSMTP) -> RecordingSMTP:
    """The plain-text server with no mail, failures or hangs left from other tests."""
    smtp_server.reset()
    return smtp_server


@pytest.fixture
def smtp_tls(smtp_tls_server: RecordingSMTP) -> RecordingSMTP:
    smtp_tls_server.reset()
    return smtp_tls_server


@pytest.fixture
def smtps(smtps_server: RecordingSMTP) -> RecordingSMTP:
    smtps_server.reset()
    return smtps_server
