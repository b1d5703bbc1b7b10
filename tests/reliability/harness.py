"""A real `intake run` against the test Dovecot and SMTP server, and the tally of what it did.

`IntakeHome` is an intake living in a temporary folder: its intake.toml, its SQLite database and
the environment (`INTAKE_<SECTION>_<KEY>`) that points it at the test servers. `WorkerProcess`
starts `intake run` there as a subprocess and stops it with SIGTERM or SIGKILL (by its own PID).
`Feeder` appends copies of the consultation corpus to the mailbox while the worker runs, each
with its own Message-ID, subject and sender. `tally` compares the mailbox, the database and what
the SMTP server received.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from intake import digests, ingest, outbox
from intake.config import Settings, load_settings
from intake.store.db import open_database, session_factory
from intake.store.models import DigestRun, Message, OutboxMail, SourceItem
from intake.triage.rules import load_rules
from tests.pipeline_fixtures import base_sections, consultation_corpus, write_config
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ReceivedMail, RecordingSMTP

REPO = Path(__file__).resolve().parents[2]
DIGEST_TO = "projectteam@maastricht.nl"
COPY_DOMAIN = "copies.reliability.test"


# -- mail -------------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def mail_copy(number: int) -> tuple[str, bytes]:
    """Copy `number` of the consultation corpus (cycling through it): (Message-ID, bytes).

    The copy has its own Message-ID, a subject ending in its number and a sender address tagged
    with it, so that every copy is a message of its own (and the acknowledgement limits per
    sender do not hide the acknowledgements of copies).
    """
    corpus = consultation_corpus()
    original = corpus[number % len(corpus)]
    data = original.data
    newline = b"\r\n" if b"\r\n" in data[:2000] else b"\n"
    end = _HEADER_END.search(data)
    head, body = (data[: end.start()], data[end.start() :]) if end else (data, b"")
    lines = head.split(newline)
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"message-id:")
        if not skipping:
            kept.append(line)
    message_id = f"copy-{number}.{original.name.removesuffix('.eml')}@{COPY_DOMAIN}"
    headers = _retag(newline.join(kept), number)
    data = b"Message-ID: <" + message_id.encode() + b">" + newline + headers + body
    return message_id, data


def _retag(head: bytes, number: int) -> bytes:
    """The header block with the subject's last line ending in `(#number)` and the first
    address of From tagged `+cNUMBER`."""

    def subject(match: re.Match[bytes]) -> bytes:
        return match.group(1) + f" (#{number})".encode() + match.group(2)

    head = re.sub(
        rb"(?im)^(subject:.*(?:\r?\n[ \t].*)*?)(\r?$)(?![\r\n]?[ \t])", subject, head, count=1
    )

    def sender(match: re.Match[bytes]) -> bytes:
        line = match.group(0)
        return re.sub(rb"([\w.%-]+)@", rb"\1+c" + str(number).encode() + rb"@", line, count=1)

    return re.sub(rb"(?im)^from:.*(?:\r?\n[ \t].*)*", sender, head, count=1)


class Feeder(threading.Thread):
    """Appends mail copies to the mailbox in bursts until `total` are in; `appended` lists
    their Message-IDs in order."""

    def __init__(
        self,
        dovecot: Dovecot,
        total: int,
        *,
        pick: Callable[[], tuple[int, float]],
        folder: str = "INBOX",
        first: int = 0,
    ) -> None:
        super().__init__(name="mail-feeder", daemon=True)
        self.dovecot = dovecot
        self.total = total
        self.pick = pick  # the next burst: (how many, then how long to wait)
        self.folder = folder
        self.next_number = first
        self.appended: list[str] = []
        self.failed: BaseException | None = None
        self.stop = threading.Event()

    def append(self, count: int) -> None:
        with self.dovecot.client() as client:
            if not client.folder_exists(self.folder):
                client.create_folder(self.folder)
            for _ in range(min(count, self.total - len(self.appended))):
                message_id, data = mail_copy(self.next_number)
                client.append(self.folder, data)
                self.appended.append(message_id)
                self.next_number += 1

    def run(self) -> None:
        try:
            while len(self.appended) < self.total and not self.stop.is_set():
                count, pause = self.pick()
                self.append(count)
                self.stop.wait(pause)
        except BaseException as exc:  # reported by the test, which joins the thread
            self.failed = exc

    def finish(self) -> None:
        """Append whatever is left at once and wait for the thread."""
        self.stop.set()
        self.join(timeout=60)
        if self.failed:
            raise self.failed
        self.append(self.total - len(self.appended))


# -- an intake in a folder --------------------------------------------------------------------


@dataclass
class IntakeHome:
    """An intake in `folder`, reading `mailbox` on Dovecot and sending through `smtp`."""

    folder: Path
    dovecot: Dovecot
    smtp: RecordingSMTP
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, folder: Path, dovecot: Dovecot, smtp: RecordingSMTP, **env: str) -> IntakeHome:
        """The folder with its intake.toml; `env` adds INTAKE_* overrides (KEY=value)."""
        folder.mkdir(parents=True, exist_ok=True)
        sections = base_sections(folder)
        sections["logging"] = {"level": "INFO"}
        # Mail arrives before the deadline (a crash test moves it into the run).
        deadline = (datetime.now(UTC) + timedelta(days=7)).isoformat(timespec="seconds")
        sections["consultation"]["deadline"] = deadline
        sections["digest"] = {"recipients": [DIGEST_TO]}
        sections["worker"] = {"poll_interval_seconds": 1, "stale_poll_seconds": 900}
        write_config(folder, sections)
        overrides = {
            "INTAKE_MAILBOX_URL": dovecot.url("INBOX", tls="none"),
            "INTAKE_MAILBOX_PASSWORD": dovecot.password,
            "INTAKE_MAILBOX_TIMEOUT_SECONDS": "5",
            "INTAKE_OUTGOING_URL": smtp.url,
            "INTAKE_OUTGOING_TIMEOUT_SECONDS": "3",
            **{f"INTAKE_{key.upper()}": value for key, value in env.items()},
        }
        return cls(folder, dovecot, smtp, overrides)

    @property
    def config(self) -> Path:
        return self.folder / "intake.toml"

    def environ(self) -> dict[str, str]:
        """The environment of an intake process: ours without other INTAKE_* settings."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        return {**inherited, "PYTHONPATH": str(REPO), **self.env}

    def settings(self) -> Settings:
        return load_settings(self.config, environ=self.env)

    def engine(self) -> Engine:
        return open_database(self.settings().database.url)

    def worker(self, log: Path) -> WorkerProcess:
        return WorkerProcess.start(self, log)


@dataclass
class WorkerProcess:
    """One `intake run` subprocess and its log file (stderr)."""

    process: subprocess.Popen[bytes]
    log: Path
    started: float

    @classmethod
    def start(cls, home: IntakeHome, log: Path) -> WorkerProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "intake", "--config", str(home.config), "run"],
            cwd=home.folder,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            env=home.environ(),
        )
        return cls(process, log, time.monotonic())

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if self.process.poll() is not None:
                raise AssertionError(f"intake run exited {self.process.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is committed or released."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and the exit code (killed when it does not stop within `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(
                f"intake run ignored SIGTERM for {timeout} s:\n{self.text()}"
            ) from None

    def is_running(self) -> bool:
        return self.process.poll() is None


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(0.1)


# -- what happened ----------------------------------------------------------------------------


def drain_outbox(home: IntakeHome) -> outbox.DeliverySummary:
    """Deliver what is left once every lease ran out, as a worker does later: mail a killed
    worker left `sending` goes out again (the identical bytes), then sent digests are marked."""
    settings, engine = home.settings(), home.engine()
    try:
        later = datetime.now(UTC) + outbox.LEASE + timedelta(minutes=1)
        summary = outbox.deliver_due(settings, engine, clock=lambda: later)
        digests.mark_sent_digests(engine)
        return summary
    finally:
        engine.dispose()


def mailbox_message_ids(dovecot: Dovecot, folder: str = "INBOX") -> dict[str, str]:
    """Every message in `folder`: "<uidvalidity>:<uid>" → its Message-ID."""
    with dovecot.client() as client:
        info = client.select_folder(folder, readonly=True)
        validity = int(info[b"UIDVALIDITY"])
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
    found = {}
    for uid, data in fetched.items():
        header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode("ascii", "replace")
        match = re.search(r"<([^>]+)>", header)
        found[f"{validity}:{uid}"] = match.group(1) if match else ""
    return found


def reference_decisions(dovecot: Dovecot, folder: Path) -> dict[str, tuple[str, str | None]]:
    """Message-ID → (kind, ack status) as one uninterrupted poll of the same mailbox decides."""
    home = IntakeHome.create(folder, dovecot, RecordingSMTP())
    settings = home.settings()
    engine = open_database(settings.database.url)
    try:
        ingest.poll_once(settings, engine, load_rules(settings.rules_path))
        with session_factory(engine)() as session:
            rows = session.execute(select(Message.message_id, Message.kind, Message.ack_status))
            return {mid: (kind, ack) for mid, kind, ack in rows}
    finally:
        engine.dispose()


@dataclass
class Figures:
    """What a run left behind: the figures line and the details behind each failure."""

    kills: int = 0
    messages: int = 0
    stored: int = 0
    lost: list[str] = field(default_factory=list)
    duplicate_rows: int = 0
    unkeyed: list[str] = field(default_factory=list)  # mailbox positions without a stored row
    missing_acks: list[str] = field(default_factory=list)
    unexpected_acks: list[str] = field(default_factory=list)
    distinct_double_acks: dict[str, list[str]] = field(default_factory=dict)
    repeated_identical_acks: int = 0
    digests: dict[str, int] = field(default_factory=dict)  # period → distinct mails received
    repeated_identical_digests: int = 0
    stray_digests: list[str] = field(default_factory=list)

    def line(self) -> str:
        sent_once = sum(1 for n in self.digests.values() if n == 1)
        return (
            f"kills {self.kills}, messages {self.messages}, stored {self.stored}, "
            f"lost {len(self.lost)}, duplicate rows {self.duplicate_rows}, "
            f"distinct double acks {len(self.distinct_double_acks)}, "
            f"repeated identical acks {self.repeated_identical_acks}, "
            f"digests {sent_once} of {len(self.digests)} periods sent once "
            f"({', '.join(sorted(self.digests))}), "
            f"repeated identical digests {self.repeated_identical_digests}"
        )

    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"lost: {self.lost[:10]}")
        if self.duplicate_rows:
            found.append(f"{self.duplicate_rows} duplicate rows")
        if self.unkeyed:
            found.append(f"mailbox positions never stored: {self.unkeyed[:10]}")
        if self.missing_acks:
            found.append(f"acknowledgements that never arrived: {self.missing_acks[:10]}")
        if self.unexpected_acks:
            found.append(f"acknowledgements of unacknowledged mail: {self.unexpected_acks[:10]}")
        if self.distinct_double_acks:
            found.append(f"two different acknowledgements: {self.distinct_double_acks}")
        wrong = {period: n for period, n in self.digests.items() if n != 1}
        if wrong:
            found.append(f"digest periods not sent exactly once: {wrong}")
        if self.stray_digests:
            found.append(f"digests sent without a recorded period: {self.stray_digests}")
        return found


def tally(home: IntakeHome, received: list[ReceivedMail], kills: int = 0) -> Figures:
    """Compare the mailbox, the database and the mail the SMTP server received."""
    in_mailbox = mailbox_message_ids(home.dovecot)
    figures = Figures(kills=kills, messages=len(in_mailbox))
    engine = home.engine()
    try:
        with session_factory(engine)() as session:
            rows = session.execute(select(Message.message_id, Message.ack_status)).all()
            keys = set(session.scalars(select(SourceItem.key)))
            periods = {
                f"{run.kind} {run.period_key}": run.outbox_message_id
                for run in session.scalars(select(DigestRun))
            }
            outbox_ids = set(session.scalars(select(OutboxMail.message_id)))
    finally:
        engine.dispose()
    stored = Counter(mid for mid, _ in rows)
    figures.stored = len(rows)
    figures.duplicate_rows = sum(n - 1 for n in stored.values())
    figures.lost = sorted(set(in_mailbox.values()) - set(stored))
    figures.unkeyed = sorted(set(in_mailbox) - keys)

    acks = [m for m in received if DIGEST_TO not in m.recipients]
    by_suggestion: dict[str, set[str]] = defaultdict(set)
    for ack in acks:
        by_suggestion[(ack["In-Reply-To"] or "").strip("<> ")].add(ack["Message-ID"] or "")
    figures.distinct_double_acks = {
        mid: sorted(ids) for mid, ids in by_suggestion.items() if len(ids) > 1
    }
    figures.repeated_identical_acks = len(acks) - len({m["Message-ID"] for m in acks})
    acknowledged = {mid for mid, ack in rows if ack in ("queued", "sent")}
    figures.missing_acks = sorted(acknowledged - set(by_suggestion))
    figures.unexpected_acks = sorted(set(by_suggestion) - acknowledged)

    sent_digests = Counter(
        (m["Message-ID"] or "").strip("<>") for m in received if DIGEST_TO in m.recipients
    )
    figures.repeated_identical_digests = sum(n - 1 for n in sent_digests.values())
    figures.digests = {
        period: int(mid in sent_digests) for period, mid in periods.items() if mid is not None
    }
    figures.stray_digests = sorted(set(sent_digests) - set(periods.values()))
    assert outbox_ids >= set(sent_digests), "a digest was sent that the outbox never held"
    return figures


def iter_logs(folder: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(folder.glob("worker-*.log")):
        yield path, path.read_text(encoding="utf-8", errors="replace")


def unexpected_log_lines(text: str) -> list[str]:
    """ERROR lines and tracebacks in a worker log."""
    return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
