"""Fixtures and helpers for tests of the whole pipeline: settings in a temp folder, Maildir
delivery, the consultation corpus with its sidecars, and mail personas built on the spot.

Test modules register the fixtures with `from tests.pipeline_fixtures import *` style imports of
the fixture names they use (pytest finds fixtures imported into a test module).
"""

from __future__ import annotations

import email.utils
import functools
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from intake import ingest
from intake.config import Settings, load_settings
from intake.store.db import open_database, session_factory
from intake.store.models import Message, OutboxMail
from intake.triage.rules import load_rules

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "config" / "rules.toml"
TEMPLATES = REPO / "templates"
CONSULTATION = Path(__file__).resolve().parent / "mail" / "consultation"
OUR_ADDRESS = "smartcity@maastricht.nl"
OUR_DOMAIN = "maastricht.nl"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(folder: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """An intake.toml in `folder` with these sections; returns its path."""
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in keys.items()]
        lines.append("")
    path = folder / "intake.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def base_sections(folder: Path) -> dict[str, dict[str, Any]]:
    """Settings for an intake living in `folder`: Maildir, SQLite and file outbox inside it,
    the repository's rules and templates."""
    return {
        "consultation": {
            "addresses": [OUR_ADDRESS],
            "rules": str(RULES),
            "templates": str(TEMPLATES),
            "contact": OUR_ADDRESS,
        },
        "mailbox": {"url": "maildir:mail"},
        "database": {"url": "sqlite:///intake.db"},
        "outgoing": {
            "url": "file:outbox",
            "from_address": OUR_ADDRESS,
            "message_id_domain": OUR_DOMAIN,
            "max_per_minute": 0,
        },
        "logging": {"level": "WARNING"},
    }


SettingsFactory = Callable[..., Settings]


def settings_in(folder: Path, **overrides: dict[str, Any]) -> Settings:
    """Settings loaded from an intake.toml written into `folder`, with its own Maildir,
    database and outbox there; `overrides` maps sections to keys."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = base_sections(folder)
    for section, keys in overrides.items():
        sections.setdefault(section, {}).update(keys)
    settings = load_settings(write_config(folder, sections), environ={})
    if settings.mailbox.url.startswith("maildir:"):
        make_maildir(maildir_of(settings))
    return settings


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """`make_settings("b", mailbox={"url": ...})`: settings of an intake in tmp_path/"b"."""

    def make(name: str = "intake", **overrides: dict[str, Any]) -> Settings:
        return settings_in(tmp_path / name, **overrides)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database.url)
    yield engine
    engine.dispose()


def make_maildir(root: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def maildir_of(settings: Settings) -> Path:
    return Path(settings.mailbox.url.removeprefix("maildir:"))


_counter = iter(range(1, 10**9))


def deliver(
    maildir: Path | Settings, data: bytes, arrived_at: datetime, name: str | None = None
) -> Path:
    """Deliver `data` the Maildir way (write in tmp/, rename into new/), the file's time set to
    `arrived_at`, which the Maildir source reads as the arrival time; returns the new file."""
    root = make_maildir(maildir_of(maildir) if isinstance(maildir, Settings) else maildir)
    name = name or f"{int(arrived_at.timestamp())}.M{next(_counter)}P{os.getpid()}.test"
    temporary = root / "tmp" / name
    temporary.write_bytes(data)
    os.utime(temporary, (arrived_at.timestamp(), arrived_at.timestamp()))
    target = root / "new" / name
    temporary.rename(target)
    return target


def poll(settings: Settings, engine: Engine, **kwargs: Any) -> ingest.PollSummary:
    return ingest.poll_once(settings, engine, load_rules(settings.rules_path), **kwargs)


# -- the consultation corpus ------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusMail:
    name: str  # file name, as the sidecars refer to it
    data: bytes
    expect: dict[str, Any]

    @property
    def arrived_at(self) -> datetime:
        return datetime.fromisoformat(self.expect["arrived_at"])

    @property
    def message_id(self) -> str | None:
        value = BytesParser(policy=policy.compat32).parsebytes(self.data, headersonly=True)[
            "Message-ID"
        ]
        return str(value).strip().strip("<>") if value else None


@functools.cache
def consultation_corpus() -> tuple[CorpusMail, ...]:
    """Every .eml of tests/mail/consultation with its sidecar, in arrival order."""
    mails = [
        CorpusMail(
            eml.name,
            eml.read_bytes(),
            tomllib.loads(eml.with_suffix(".expect.toml").read_text(encoding="utf-8")),
        )
        for eml in sorted(CONSULTATION.glob("*.eml"))
    ]
    return tuple(sorted(mails, key=lambda m: (m.arrived_at, m.name)))


def deliver_corpus(settings: Settings) -> dict[str, Path]:
    return {m.name: deliver(settings, m.data, m.arrived_at) for m in consultation_corpus()}


def stored_by_file(
    session: Session, settings: Settings, files: dict[str, Path]
) -> dict[str, Message]:
    """Stored messages by corpus file name, found through the Maildir key they were read at."""
    by_key = {m.source_key: m for m in session.scalars(select(Message))}
    return {
        name: by_key[path.name.split(":")[0]]
        for name, path in files.items()
        if path.name.split(":")[0] in by_key
    }


def messages(engine: Engine) -> list[Message]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def outbox(engine: Engine) -> list[OutboxMail]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


# -- mail personas ----------------------------------------------------------------------------


def mail(
    *,
    sender: str = "Anna de Vries <anna.devries@example.nl>",
    to: str = OUR_ADDRESS,
    subject: str = "Suggestie: slimme parkeersensoren in het centrum",
    body: str = (
        "Beste gemeente,\n\nIk stel voor om parkeersensoren te plaatsen in het centrum, zodat "
        "bezoekers sneller een vrije plek vinden en er minder zoekverkeer is.\n\n"
        "Met vriendelijke groet,\nAnna de Vries\n"
    ),
    message_id: str | None = None,
    date: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text mail as bytes; a fresh Message-ID unless one is given."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(date or datetime(2019, 1, 28, 10, 0, tzinfo=UTC))
    message["Message-ID"] = (
        f"<{message_id}>" if message_id else email.utils.make_msgid("t", "example.nl")
    )
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes(policy=policy.SMTP)


def out_of_office(to_message_id: str | None = None) -> bytes:
    headers = {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}
    if to_message_id:
        headers["In-Reply-To"] = f"<{to_message_id}>"
    return mail(
        sender="Piet Jansen <piet.jansen@example.nl>",
        subject="Automatisch antwoord: afwezig",
        body="Ik ben afwezig tot en met 4 februari en lees mijn mail daarna.\n",
        headers=headers,
    )


BOUNCE = """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.nl>
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: Mon, 28 Jan 2019 11:05:00 +0100
Message-ID: <{bounce_id}@mx.example.nl>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0undary"

--b0undary
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered to {recipient}.

--b0undary
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.nl

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1

--b0undary
Content-Type: message/rfc822

{returned}
--b0undary--
"""


def bounce(returned: bytes, recipient: str, to: str = OUR_ADDRESS) -> bytes:
    """A delivery status notification (RFC 3464) that returns `returned` as message/rfc822."""
    text = BOUNCE.format(
        to=to,
        bounce_id=f"bounce-{next(_counter)}",
        recipient=recipient,
        returned=returned.decode("utf-8", "replace").replace("\r\n", "\n"),
    )
    return text.replace("\n", "\r\n").encode()
