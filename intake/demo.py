"""The embedded demo: sample mail delivered into the local Maildir, and an overview."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.errors import ConfigError
from intake.store.models import Message

SAMPLES = Path(__file__).resolve().parent / "samples"


def deliver_samples(mailbox_url: str) -> int:
    """Copy the sample messages into a Maildir with their arrival times; returns how many are new.

    Delivery follows the Maildir convention (write in tmp/, rename into new/) and the file's
    time is set to the sample's arrival time, which is what the Maildir source reads.
    """
    if not mailbox_url.startswith("maildir:"):
        raise ConfigError(f"mailbox.url: the demo delivers into a local Maildir, not {mailbox_url}")
    root = Path(mailbox_url.removeprefix("maildir:"))
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    arrivals = tomllib.loads((SAMPLES / "arrivals.toml").read_text(encoding="utf-8"))
    delivered = 0
    for n, sample in enumerate(sorted(SAMPLES.glob("*.eml"))):
        name = f"sample-{n:03d}.{sample.stem}.intake"
        target = root / "new" / name
        if target.exists() or any((root / "cur").glob(f"{name}:*")):
            continue
        arrived = _arrival(arrivals, sample.name)
        temporary = root / "tmp" / name
        temporary.write_bytes(sample.read_bytes())
        os.utime(temporary, (arrived.timestamp(), arrived.timestamp()))
        temporary.rename(target)
        delivered += 1
    return delivered


def _arrival(arrivals: dict[str, object], name: str) -> datetime:
    value = arrivals.get(name)
    if isinstance(value, datetime):
        return value
    if isinstance(value, dict) and isinstance(value.get("arrived_at"), datetime):
        arrived: datetime = value["arrived_at"]
        return arrived
    raise ConfigError(f"{SAMPLES / 'arrivals.toml'}: {name}: no arrival time")


def overview(session: Session, tz: ZoneInfo) -> Iterator[str]:
    """One line per stored message: arrival, kind, primary theme, late, ack, sender, subject."""
    yield (
        f"{'id':>4}  {'received':<16}  {'kind':<11} {'theme':<15} {'late':<4}  {'ack':<10}  "
        f"{'from':<32}  subject"
    )
    for message in session.scalars(select(Message).order_by(Message.received_at)):
        when = message.received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        theme = message.primary_theme or "-"
        late = "late" if message.late else ""
        ack = message.ack.status if message.ack else (message.ack_status or "-")
        yield (
            f"{message.id:>4}  {when}  {message.kind:<11} {theme:<15} {late:<4}  {ack:<10}  "
            f"{message.from_addr[:32]:<32}  {message.subject[:60]}"
        )


def written_acknowledgements(outgoing_url: str) -> Iterator[str]:
    """The .eml files in a `file:` outbox folder, with recipient and subject."""
    if not outgoing_url.startswith("file:"):
        yield f"  (sent through {outgoing_url})"
        return
    folder = Path(outgoing_url.removeprefix("file:").removeprefix("//"))
    for path in sorted(folder.glob("*.eml")):
        with path.open("rb") as handle:
            headers = BytesHeaderParser(policy=default).parse(handle)
        yield f"  {path}\n    to {headers['To']}: {headers['Subject']}"
