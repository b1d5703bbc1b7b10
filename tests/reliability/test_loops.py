"""Mail loops end to end: intake's acknowledgements travel through real SMTP servers (aiosmtpd)
that deliver them into real IMAP mailboxes (Dovecot), where something answers them.

(a) Two intake installations acknowledge each other: each one's SMTP server delivers into the
    other's consultation mailbox. (b) An out-of-office responder is pointed at intake: its SMTP
    server answers every mail it receives (the acknowledgement too, as careless responders do)
    and delivers the answer into intake's mailbox. The Dovecot here has no Sieve (pigeonhole),
    so the responder is written below, in the shapes Exchange, RFC 3834 responders and bare
    scripts answer in. Each exchange must stop after one round, however many polls follow.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine, select

from intake import outbox
from intake.config import Settings
from intake.store.db import open_database, session_factory
from intake.store.models import Message, OutboxMail
from tests.pipeline_fixtures import mail, poll, settings_in
from tests.servers import free_port
from tests.servers.dovecot import Dovecot

pytestmark = pytest.mark.imap

CYCLES = 5  # poll + send rounds after the first mail; one round would do, the rest prove "stops"
Deliver = Callable[[str, tuple[str, ...], bytes], None]


@dataclass
class DeliveringSMTP:
    """An SMTP server on 127.0.0.1 that hands every accepted mail to `deliver` (an MTA)."""

    deliver: Deliver
    port: int = field(default_factory=free_port)
    received: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?tls=none"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        with self._lock:
            self.received.append(data)
        self.deliver(envelope.mail_from or "", tuple(envelope.rcpt_tos), data)
        return "250 2.0.0 OK delivered"

    def __enter__(self) -> DeliveringSMTP:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._controller is not None:
            self._controller.stop()


def into_folder(dovecot: Dovecot, folder: str) -> Deliver:
    """Local delivery into `folder`, with the Return-Path an MTA adds (RFC 5321 §4.4)."""

    def deliver(envelope_from: str, _rcpts: tuple[str, ...], data: bytes) -> None:
        dovecot.append(f"Return-Path: <{envelope_from}>\r\n".encode() + data, folder=folder)

    return deliver


def intake_for(
    folder: Path, dovecot: Dovecot, mailbox: str, address: str, smtp_url: str
) -> tuple[Settings, Engine]:
    settings = settings_in(
        folder,
        consultation={"addresses": [address]},
        mailbox={"url": dovecot.url(mailbox, tls="implicit"), "ca_file": dovecot.ca_path},
        outgoing={
            "url": smtp_url,
            "from_address": address,
            "message_id_domain": address.partition("@")[2],
            "timeout_seconds": 5,
        },
    ).model_copy(update={"mailbox_password": dovecot.password})
    return settings, open_database(settings.database.url)


def cycle(settings: Settings, engine: Engine) -> None:
    poll(settings, engine)
    outbox.deliver_due(settings, engine)


def kinds(engine: Engine) -> Counter[str]:
    with session_factory(engine)() as session:
        return Counter(session.scalars(select(Message.kind)))


def sent(engine: Engine) -> int:
    with session_factory(engine)() as session:
        return len(list(session.scalars(select(OutboxMail.id))))


# -- (a) two intakes --------------------------------------------------------------------------

ALPHA, BETA = "alpha@alpha.example", "beta@beta.example"


@pytest.fixture
def folders(imap_mailbox: Dovecot) -> Dovecot:
    for folder in ("Alpha", "Beta", "Intake"):
        with imap_mailbox.client() as client:
            client.create_folder(folder)
    return imap_mailbox


def test_two_intakes_whose_mail_reaches_each_other_exchange_one_acknowledgement_each(
    folders: Dovecot, tmp_path: Path
) -> None:
    # Alpha's relay delivers into Beta's mailbox and the other way round.
    with (
        DeliveringSMTP(into_folder(folders, "Beta")) as to_beta,
        DeliveringSMTP(into_folder(folders, "Alpha")) as to_alpha,
    ):
        alpha = intake_for(tmp_path / "alpha", folders, "Alpha", ALPHA, to_beta.url)
        beta = intake_for(tmp_path / "beta", folders, "Beta", BETA, to_alpha.url)
        # A person at each organisation writes to the other consultation from the address the
        # other intake acknowledges with: each acknowledgement lands in a consultation mailbox.
        folders.append(mail(sender=f"Beta <{BETA}>", to=ALPHA), folder="Alpha")
        folders.append(mail(sender=f"Alpha <{ALPHA}>", to=BETA), folder="Beta")
        for _ in range(CYCLES):
            for settings, engine in (alpha, beta):
                cycle(settings, engine)
        exchanged = (len(to_beta.received), len(to_alpha.received))
    print(
        f"\nloop (a): acknowledgements alpha→beta, beta→alpha = {exchanged} after {CYCLES} cycles"
    )
    assert exchanged == (1, 1)
    for _, engine in (alpha, beta):
        assert sent(engine) == 1
        assert kinds(engine) == {"suggestion": 1, "auto_reply": 1}
        engine.dispose()


# -- (b) an out-of-office responder -----------------------------------------------------------

PIET = "piet.jansen@example.nl"
OUR = "smartcity@maastricht.nl"


def exchange_oof(original: EmailMessage) -> EmailMessage:
    """Exchange/Outlook's OOF: no Auto-Submitted, its own loop and suppress headers."""
    reply = _reply(original, f"Automatisch antwoord: {original['Subject']}")
    reply["X-Auto-Response-Suppress"] = "All"
    reply["X-MS-Exchange-Inbox-Rules-Loop"] = PIET
    reply["X-MS-Exchange-Generated-Message-Source"] = "Mailbox Rules Agent"
    return reply


def rfc3834_vacation(original: EmailMessage) -> EmailMessage:
    """A Sieve vacation or Gmail answer: Auto-Submitted: auto-replied (RFC 3834 §5)."""
    reply = _reply(original, f"Auto: {original['Subject']}")
    reply["Auto-Submitted"] = "auto-replied (vacation)"
    reply["Precedence"] = "bulk"
    return reply


def bare_script(original: EmailMessage) -> EmailMessage:
    """A home-made responder: no automatic-mail header at all, only a subject and a thread."""
    return _reply(original, f"Re: {original['Subject']}")


def bare_script_outside_the_thread(original: EmailMessage) -> EmailMessage:
    """The same without In-Reply-To and References: nothing ties it to what it answers."""
    reply = _reply(original, f"Re: {original['Subject']}")
    del reply["In-Reply-To"], reply["References"]
    return reply


def _reply(original: EmailMessage, subject: str) -> EmailMessage:
    reply = EmailMessage()
    reply["From"] = f"Piet Jansen <{PIET}>"
    reply["To"] = str(original["From"])
    reply["Subject"] = subject
    reply["Message-ID"] = make_msgid("oof", "example.nl")
    if original["Message-ID"]:
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = str(original["Message-ID"])
    reply.set_content("Ik ben afwezig tot en met 4 februari en lees mijn mail daarna.\n")
    return reply


RESPONDERS: dict[str, Callable[[EmailMessage], EmailMessage]] = {
    "exchange-without-auto-submitted": exchange_oof,
    "rfc3834-auto-submitted": rfc3834_vacation,
    "bare-script-in-the-thread": bare_script,
    "bare-script-outside-the-thread": bare_script_outside_the_thread,
}


@pytest.mark.parametrize("shape", sorted(RESPONDERS))
def test_an_out_of_office_responder_answering_every_mail_stops_after_one_exchange(
    folders: Dovecot, tmp_path: Path, shape: str
) -> None:
    answers: list[bytes] = []

    def respond(envelope_from: str, rcpts: tuple[str, ...], data: bytes) -> None:
        # Answers whatever reaches Piet, acknowledgements included, to the envelope sender.
        original: Any = BytesParser(policy=policy.default).parsebytes(data)
        reply = RESPONDERS[shape](original)
        answer = reply.as_bytes(policy=policy.SMTP)
        answers.append(answer)
        into_folder(folders, "Intake")(PIET, (envelope_from,), answer)

    with DeliveringSMTP(respond) as world:
        settings, engine = intake_for(tmp_path / "intake", folders, "Intake", OUR, world.url)
        folders.append(
            b"Return-Path: <" + PIET.encode() + b">\r\n"
            + mail(sender=f"Piet Jansen <{PIET}>", subject="Idee: slimme verlichting"),
            folder="Intake",
        )  # fmt: skip
        for _ in range(CYCLES):
            cycle(settings, engine)
        acknowledgements = len(world.received)
    print(f"\nloop (b) {shape}: acknowledgements {acknowledgements}, answers {len(answers)}")
    assert (acknowledgements, len(answers)) == (1, 1)
    stored = kinds(engine)
    assert stored["suggestion"] >= 1, stored
    assert sum(stored.values()) == 2, stored
    assert sent(engine) == 1
    engine.dispose()
