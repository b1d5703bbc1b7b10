"""Shared helpers for the digest tests: settings in a temp folder and stored messages made on
the spot (the pipeline itself is tested elsewhere; digests only read what it stored).

Test modules import the fixtures they use by name; pytest finds fixtures imported this way.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.config import Consultation, Database, Digest, Outgoing, Settings
from intake.store.db import open_database, transaction
from intake.store.models import AttachmentRecord, Message, ThemeMatch

REPO = Path(__file__).resolve().parent.parent
AMS = ZoneInfo("Europe/Amsterdam")
STAFF = ("sanne.de.groen@maastricht.nl", "projectteam@maastricht.nl")
DEADLINE = datetime(2019, 2, 6, 0, 0)  # naive: local time, as in the config file
_numbers = itertools.count(1)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def make_settings(folder: Path, **digest: Any) -> Settings:
    """Settings for an intake in `folder`: SQLite there, file outbox there, repo rules and
    templates, digests to two staff members at 08:00."""
    values: dict[str, Any] = {
        "recipients": list(STAFF),
        "daily_at": time(8, 0),
        "language": "nl",
        "send_empty": True,
    }
    values.update(digest)
    return Settings(
        consultation=Consultation(
            deadline=DEADLINE,
            rules=str(REPO / "config" / "rules.toml"),
            templates=str(REPO / "templates"),
            addresses=["smartcity@maastricht.nl"],
        ),
        database=Database(url=f"sqlite:///{folder / 'intake.db'}"),
        outgoing=Outgoing(
            url=f"file:{folder / 'outbox'}",
            from_address="smartcity@maastricht.nl",
            message_id_domain="maastricht.nl",
            max_per_minute=0,
        ),
        digest=Digest(**values),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database.url)
    yield engine
    engine.dispose()


def add_message(
    session: Session,
    *,
    stored_at: datetime,
    kind: str = "suggestion",
    theme: str | None = "privacy",
    secondary: Sequence[str] = (),
    received_at: datetime | None = None,
    from_name: str = "Jan Jansen",
    from_addr: str = "jan.jansen@example.nl",
    role: str = "public",
    subject: str = "Slimme lantaarnpalen",
    text: str = "Zet sensoren in de lantaarnpalen om de luchtkwaliteit te meten.",
    late: bool = False,
    duplicate_of: int | None = None,
    thread_of: int | None = None,
    attachments: Sequence[str] = (),
) -> Message:
    """Store one message as ingest would have; returns it with its id."""
    number = next(_numbers)
    received = received_at or stored_at
    suggestion = kind == "suggestion"
    message = Message(
        message_id=f"m{number}@example.nl",
        sha256=hashlib.sha256(f"raw {number}".encode()).hexdigest(),
        body_sha256=hashlib.sha256(f"body {number}".encode()).hexdigest(),
        raw=b"",
        size=0,
        source="test",
        source_key=str(number),
        received_at=received,
        stored_at=stored_at,
        from_addr=from_addr,
        from_name=from_name,
        subject=subject,
        text=text,
        kind=kind,
        primary_theme=theme if suggestion else None,
        late=late,
        sender_role=role,
        duplicate_of_id=duplicate_of,
        thread_of_id=thread_of,
        parse_error="cannot parse" if kind == "unparseable" else None,
    )
    if suggestion and theme:
        message.themes = [
            ThemeMatch(theme=slug, score=1.0, rank=rank, matches=[])
            for rank, slug in enumerate([theme, *secondary])
        ]
    message.attachments = [
        AttachmentRecord(
            position=i, filename=name, content_type="application/pdf", size=1, sha256="0" * 64
        )
        for i, name in enumerate(attachments)
    ]
    session.add(message)
    session.flush()
    return message


def store(engine: Engine, **fields: Any) -> int:
    """Store one message in its own transaction; returns its id."""
    with transaction(engine) as session:
        return add_message(session, **fields).id


def parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
