"""Hostile and broken mail through the real pipeline (Maildir in, SQLite, outbox, digest):
no header injection into what intake sends, nothing active or bidi-spoofed in a digest, no
file written from an attachment name, large and many attachments within the limits and in
bounded memory, compressed attachments never unpacked, no input that stalls the parser."""

from __future__ import annotations

import base64
import gzip
import io
import logging
import random
import re
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import undefer

from intake.config import Settings
from intake.digests import send_due_digests
from intake.ingest import PollSummary
from intake.parsing import parse
from intake.store.db import open_database, session_factory
from intake.store.models import AttachmentRecord, OutboxMail
from intake.store.models import Message as StoredMessage
from intake.store.outbox_rows import ACK, DIGEST
from tests.pipeline_fixtures import OUR_ADDRESS, deliver, mail, poll, settings_in

ARRIVED = datetime(2019, 1, 28, 10, 0, tzinfo=UTC)
STAFF = "projectteam@maastricht.nl"
MB = 1_000_000
BIDI = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# Every header an acknowledgement or digest may carry, in any MIME part.
OUR_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "precedence",
    "x-intake-loop",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-language",
    "content-disposition",
    "content-id",
}


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    settings = settings_in(
        tmp_path / "intake",
        digest={"recipients": [STAFF]},
        ack={"max_per_sender_per_day": 1000},
    )
    engine = open_database(settings.database.url)
    yield settings, engine
    engine.dispose()


def deliver_and_poll(settings: Settings, engine: Engine, *mails: bytes) -> PollSummary:
    for data in mails:
        deliver(settings, data, ARRIVED)
    return poll(settings, engine)


def outgoing(engine: Engine, purpose: str) -> list[bytes]:
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(OutboxMail)
            .where(OutboxMail.purpose == purpose)
            .order_by(OutboxMail.id)
            .options(undefer(OutboxMail.data))
        )
        return [row.data for row in rows]


def final_digest(settings: Settings, engine: Engine) -> EmailMessage:
    now = datetime.now(UTC) + timedelta(minutes=1)
    assert send_due_digests(settings, engine, now, force_final=True) == ["final"]
    (data,) = outgoing(engine, DIGEST)
    assert_only_our_headers(data)
    return BytesParser(policy=policy.default).parsebytes(data)  # type: ignore[return-value]


def assert_only_our_headers(data: bytes) -> None:
    """Every part's header block holds only headers intake writes, one line each once unfolded."""
    message = BytesParser(policy=policy.compat32).parsebytes(data)
    for part in message.walk():
        names = {name.lower() for name in part}
        assert names <= OUR_HEADERS, names - OUR_HEADERS
        assert not part.defects, part.defects
    head = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data else data.split(b"\n\n", 1)[0]
    for line in re.sub(rb"\r?\n[ \t]", b" ", head).splitlines():
        assert re.match(rb"^[A-Za-z-]+: ", line), line
        assert b"\r" not in line


def part_text(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def raw_mail(
    head: str, body: str = "Een voorstel over parkeersensoren in de binnenstad.\n"
) -> bytes:
    """A mail written by hand, for headers the email package would refuse to write."""
    lines = [
        "From: Anna de Vries <anna@example.nl>",
        f"To: {OUR_ADDRESS}",
        "Date: Mon, 28 Jan 2019 10:00:00 +0100",
        "MIME-Version: 1.0",
        head,
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


# -- header injection -------------------------------------------------------------------------

INJECTIONS = {
    "subject-encoded-crlf": raw_mail(
        "Subject: =?utf-8?q?Parkeren=0D=0ABcc:_victim@evil.example?=\r\n"
        "Message-ID: <inj-1@example.nl>\r\nContent-Type: text/plain; charset=utf-8"
    ),
    "subject-bare-cr": raw_mail(
        "Subject: Parkeren\rBcc: victim@evil.example\r\nMessage-ID: <inj-2@example.nl>\r\n"
        "Content-Type: text/plain; charset=utf-8"
    ),
    "subject-encoded-lf-header": raw_mail(
        # "Parkeren\nX-Injected: yes\n\n<h1>body</h1>"
        "Subject: =?utf-8?b?UGFya2VyZW4KWC1JbmplY3RlZDogeWVzCgo8aDE+Ym9keTwvaDE+?=\r\n"
        "Message-ID: <inj-3@example.nl>\r\nContent-Type: text/plain; charset=utf-8"
    ),
    "display-name-encoded-crlf": raw_mail(
        "Subject: Bomen\r\nMessage-ID: <inj-4@example.nl>\r\nContent-Type: text/plain",
    ).replace(
        b"From: Anna de Vries <anna@example.nl>",
        b"From: =?utf-8?q?Anna=0D=0ABcc:_victim@evil.example=0D=0A?= <anna2@example.nl>",
    ),
    "attachment-name-encoded-crlf": raw_mail(
        "Subject: Fietsen\r\nMessage-ID: <inj-5@example.nl>\r\n"
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\r\nContent-Type: text/plain\r\n\r\nEen voorstel over fietsenstallingen.\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; "
        "filename*=utf-8''plan%0D%0ABcc%3A%20victim%40evil.example.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="=?utf-8?q?x=0D=0AX-Injected:_yes.pdf?="\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n",
    ),
}


@pytest.mark.parametrize("name", sorted(INJECTIONS))
def test_crlf_in_subject_name_or_attachment_name_adds_no_header_to_the_acknowledgement(
    intake: tuple[Settings, Engine], name: str
) -> None:
    settings, engine = intake
    summary = deliver_and_poll(settings, engine, INJECTIONS[name])
    assert summary.stored == 1
    (ack,) = outgoing(engine, ACK)
    assert_only_our_headers(ack)
    parsed = BytesParser(policy=policy.default).parsebytes(ack)
    assert [a.addr_spec for a in parsed["To"].addresses] == [  # type: ignore[union-attr]
        "anna2@example.nl" if name.startswith("display-name") else "anna@example.nl"
    ]
    assert "\n" not in str(parsed["Subject"])
    assert parsed["Bcc"] is None
    assert parsed["X-Injected"] is None


def test_crlf_from_every_hostile_field_adds_no_header_to_the_digest(
    intake: tuple[Settings, Engine],
) -> None:
    settings, engine = intake
    assert deliver_and_poll(settings, engine, *INJECTIONS.values()).stored == len(INJECTIONS)
    digest = final_digest(settings, engine)
    assert "victim" not in str(digest["To"])
    assert digest["Bcc"] is None
    assert digest["X-Injected"] is None


# -- active content and bidi characters in the digest -----------------------------------------

HTML_ONLY = raw_mail(
    "Subject: <script>alert('subject')</script> Plan\r\nMessage-ID: <html-1@example.nl>\r\n"
    "Content-Type: text/html; charset=utf-8",
    "<html><body><p>Mijn voorstel voor <b>slimme verlichting</b>.</p>"
    "<script>alert('body')</script>"
    '<a href="javascript:alert(1)">klik hier</a> '
    '<a href="JaVaScRiPt:alert(2)">en hier</a> '
    '<img src="https://tracker.example/pixel.gif" onerror="alert(3)">'
    "<p>&lt;script&gt;escaped in the source&lt;/script&gt;</p></body></html>",
)
BIDI_MAIL = raw_mail(
    "Subject: =?utf-8?q?Factuur_=E2=80=AEfdp.exe=E2=80=AC_en_verlichting?=\r\n"
    "Message-ID: <bidi-1@example.nl>\r\n"
    'Content-Type: multipart/mixed; boundary="b"',
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "Slimme verlichting \u202egnikeeb\u202c en \u2066isolatie\u2069 voor iedereen.\r\n"
    "--b\r\nContent-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename*=utf-8''rapport%E2%80%AEcod.exe\r\n\r\nMZ\r\n"
    "--b--\r\n",
).replace(
    b"From: Anna de Vries",
    b"From: =?utf-8?q?=3Cimg_src=3Dx_onerror=3Dalert=284=29=3E_=E2=80=AEnotnA?=",
)


def test_html_scripts_javascript_links_and_bidi_characters_never_reach_a_digest_unescaped(
    intake: tuple[Settings, Engine],
) -> None:
    settings, engine = intake
    assert deliver_and_poll(settings, engine, HTML_ONLY, BIDI_MAIL).stored == 2
    digest = final_digest(settings, engine)
    html, text, subject = part_text(digest, "html"), part_text(digest, "plain"), digest["Subject"]
    lowered = html.lower()
    assert "<script" not in lowered
    assert not re.search(r"<img[^>]*onerror", lowered)
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", lowered)
    assert "tracker.example" not in lowered  # no remote image from a message (SEC-4)
    assert "&lt;script&gt;" in html  # the subject is shown, escaped
    assert "&lt;img src=x onerror=alert(4)&gt;" in html  # so is the display name
    for shown in (html, text, str(subject)):
        assert not BIDI.search(shown), BIDI.findall(shown)
    assert "gnikeeb" in text
    assert "cod.exe" in html


# -- attachment names and the file system -----------------------------------------------------

HOSTILE_NAMES = (
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\Windows\\system32\\evil.dll",
    "C:\\autoexec.bat",
    "nul\x00byte.txt",
    "CON",
    "..",
    "x" * 5000 + ".pdf",
    "~/.ssh/authorized_keys",
    "\u202etxt.exe",
)


def with_attachments(names: tuple[str, ...], payload: bytes = b"%PDF-1.4\n") -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Anna de Vries <anna@example.nl>"
    message["To"] = OUR_ADDRESS
    message["Subject"] = "Bijlagen bij mijn voorstel over verlichting"
    message["Message-ID"] = "<attachments-1@example.nl>"
    message.set_content("Zie de bijlagen voor mijn voorstel over slimme verlichting.\n")
    data = message.as_bytes()
    boundary = b"hostile-names"
    parts = [
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="' + name.encode("utf-8") + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _base64(payload)
        for name in names
    ]
    head, _, body = data.partition(b"\r\n\r\n")
    head = re.sub(
        rb"Content-Type: [^\r]*(\r\n[ \t][^\r]*)*",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
        head,
    )
    head = re.sub(rb"\r\nContent-Transfer-Encoding: [^\r]*", b"", head)
    chunks = [b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body]
    chunks += [b"--" + boundary + b"\r\n" + part for part in parts]
    return head + b"\r\n\r\n" + b"\r\n".join(chunks) + b"\r\n--" + boundary + b"--\r\n"


def _base64(payload: bytes) -> bytes:
    return base64.encodebytes(payload).replace(b"\n", b"\r\n")


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def test_attachment_names_are_display_text_and_never_become_files(
    intake: tuple[Settings, Engine], tmp_path: Path
) -> None:
    settings, engine = intake
    before = files_under(tmp_path)
    assert deliver_and_poll(settings, engine, with_attachments(HOSTILE_NAMES)).stored == 1
    created = files_under(tmp_path) - before
    # The only new files are the delivered mail and the database (attachments stay in the raw
    # bytes; no attachment store exists on disk).
    assert {p.relative_to(tmp_path).parts[1] for p in created} <= {"mail", "intake.db-wal"}, created
    assert not (tmp_path / "etc").exists()
    assert not Path("/etc/passwd").read_bytes().startswith(b"%PDF")
    with session_factory(engine)() as session:
        names = list(session.scalars(select(AttachmentRecord.filename)))
    assert len(names) == len(HOSTILE_NAMES)
    for name in names:
        assert "/" not in name
        assert "\\" not in name
        assert "\x00" not in name
        assert not BIDI.search(name)
        assert len(name) <= 120
        assert name not in ("..", ".")
    assert "passwd" in names
    assert "evil.dll" in names


def test_subjects_and_attachment_names_never_reach_the_log(
    intake: tuple[Settings, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the shipped logging level
    settings, engine = intake
    secret = base64.b64encode(b"Geheime wens van Anna").decode()
    broken_subject = raw_mail(f"Subject: =?base64?B?{secret}*?=\r\nContent-Type: text/plain")
    summary = deliver_and_poll(settings, engine, broken_subject, with_attachments(HOSTILE_NAMES))
    assert summary.stored == 2
    assert caplog.text  # intake did log, one line per stored message
    for private in (secret, "Geheime", "passwd", "evil.dll", "authorized_keys"):
        assert private not in caplog.text


# -- size: a 40 MB attachment and 2,000 attachments -------------------------------------------


def peak_memory(action: Callable[[], Any]) -> tuple[Any, int]:
    """What `action` returns and the peak of Python allocations while it ran, in bytes."""
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def big_attachment_mail(size: int) -> bytes:
    chunk = bytes(range(256)) * 3  # base64 of it has no repeats a compressor would hide
    payload = chunk * (size // len(chunk))
    return with_attachments(("metingen.csv",), payload)


def test_a_mail_with_a_40_mb_attachment_over_the_size_limit_keeps_its_headers_in_bounded_memory(
    intake: tuple[Settings, Engine],
) -> None:
    settings, engine = intake  # mailbox.max_message_bytes: 25 MB by default
    data = big_attachment_mail(40 * MB)
    assert len(data) > settings.mailbox.max_message_bytes
    deliver(settings, data, ARRIVED)
    del data
    summary, peak = peak_memory(lambda: poll(settings, engine))
    assert summary.stored == 1
    with session_factory(engine)() as session:
        (stored,) = session.scalars(select(StoredMessage))
        assert stored.truncated
        assert stored.size > 40 * MB
        assert len(stored.raw) < 10_000
        assert stored.subject == "Bijlagen bij mijn voorstel over verlichting"
    assert peak < 20 * MB, f"peak {peak / MB:.0f} MB"


# `intake poll` in a process of its own, reporting its peak resident memory (kB on Linux).
POLL_AND_REPORT = """
import resource, sys
from intake.cli import cli
try:
    cli.main(["--config", sys.argv[1], "poll"])
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


@pytest.mark.slow  # about ten seconds; the over-the-limit case above runs in CI
def test_a_mail_with_a_40_mb_attachment_within_a_raised_limit_is_stored_whole(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path / "big", mailbox={"max_message_bytes": 80 * MB})
    data = big_attachment_mail(40 * MB)
    size = len(data)
    deliver(settings, data, ARRIVED)
    del data
    done = subprocess.run(
        [sys.executable, "-c", POLL_AND_REPORT, settings.source_file],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.strip().splitlines()[-1]) * 1000
    engine = open_database(settings.database.url)
    with session_factory(engine)() as session:
        (stored,) = session.scalars(select(StoredMessage))
        assert not stored.truncated
        assert len(stored.raw) == size
        (attachment,) = stored.attachments
        assert attachment.size >= 40 * MB - 1000
    engine.dispose()
    # A generous bound: the interpreter, the raw bytes, the decoded attachment and the
    # parsers' copies of both (about eight times the mail at the moment).
    assert peak < 15 * size, f"peak {peak / MB:.0f} MB for a {size / MB:.0f} MB mail"


def test_a_mail_with_2000_attachments_is_stored_with_every_name_and_acknowledged_briefly(
    intake: tuple[Settings, Engine],
) -> None:
    settings, engine = intake
    names = tuple(f"foto-{n:04d}.jpg" for n in range(2000))
    data = with_attachments(names, b"\xff\xd8\xff\xe0 not really a jpeg")
    summary, peak = peak_memory(lambda: deliver_and_poll(settings, engine, data))
    assert summary.stored == 1
    with session_factory(engine)() as session:
        stored = list(session.scalars(select(AttachmentRecord.filename)))
    assert sorted(stored) == sorted(names)
    (ack,) = outgoing(engine, ACK)
    text = part_text(BytesParser(policy=policy.default).parsebytes(ack), "plain")  # type: ignore[arg-type]
    assert "foto-0000.jpg" in text
    assert "foto-1999.jpg" not in text
    assert len(ack) < 50_000
    assert peak < 100 * MB, f"peak {peak / MB:.0f} MB"


# -- compressed attachments -------------------------------------------------------------------

UNPACKED = 256 * MB  # what the bombs would take when unpacked


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for member in ("a.txt", "b.txt"):
            with archive.open(member, "w", force_zip64=True) as handle:
                zeros = b"\x00" * MB
                for _ in range(UNPACKED // MB // 2):
                    handle.write(zeros)
    return buffer.getvalue()


def gzip_bomb() -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as handle:
        zeros = b"\x00" * MB
        for _ in range(UNPACKED // MB):
            handle.write(zeros)
    return buffer.getvalue()


def test_zip_and_gzip_attachments_and_bombs_are_stored_packed_and_never_unpacked(
    intake: tuple[Settings, Engine], tmp_path: Path
) -> None:
    settings, engine = intake
    gz = gzip_bomb()
    archives = {"bomb.zip": zip_bomb(), "bomb.gz": gz, "cut-short.tar.gz": gz[:5000]}
    mails = []
    for number, (name, payload) in enumerate(archives.items()):
        message = EmailMessage()
        message["From"] = f"Anna de Vries <anna{number}@example.nl>"
        message["To"] = OUR_ADDRESS
        message["Subject"] = f"Mijn plannen voor de binnenstad, deel {number}"
        message.set_content("De plannen zitten in het archief.\n")
        maintype, subtype = ("application", "zip" if name.endswith(".zip") else "gzip")
        message.add_attachment(payload, maintype=maintype, subtype=subtype, filename=name)
        mails.append(message.as_bytes(policy=policy.SMTP))
    before = files_under(tmp_path)
    summary, peak = peak_memory(lambda: deliver_and_poll(settings, engine, *mails))
    assert summary.stored == len(archives)
    with session_factory(engine)() as session:
        rows = {row.filename: row for row in session.scalars(select(AttachmentRecord))}
    for name, payload in archives.items():
        assert rows[name].size == len(payload)  # the packed size: never looked inside
    assert peak < UNPACKED // 8, f"peak {peak / MB:.0f} MB"
    created = files_under(tmp_path) - before
    assert all(p.name.endswith((".test", "-wal", "-shm")) for p in created), created


# -- input that used to stall the parser ------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "body",
    [
        b"\r\n x" * 100_000,  # 100,000 short lines: the signature search recounted each time
        b"> quoted\r\n" * 50_000 + b"mijn antwoord\r\n",  # quotes above one own line
    ],
    ids=["short-lines", "quotes-then-text"],
)
def test_a_mail_of_a_hundred_thousand_short_lines_is_parsed_without_stalling(body: bytes) -> None:
    # Without a time limit this took five minutes; the time-out is a hang guard, not a benchmark.
    parsed = parse(b"From: a@example.nl\r\nSubject: lijnen\r\n\r\n" + body)
    assert parsed.error is None
    assert parsed.text


def long_text(seed: int, size: int = 60_000) -> str:
    rng = random.Random(seed)
    words = ["parkeren", "bomen", "licht", "sensor", "wijk", "plein", "fiets", "data", "groen"]
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(12))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


@pytest.mark.timeout(120)
def test_long_suggestions_from_one_sender_are_compared_for_resends_without_stalling(
    intake: tuple[Settings, Engine],
) -> None:
    # Comparing each new suggestion with the sender's earlier ones character by character took
    # many minutes per message for texts this long; the time-out is a hang guard.
    settings, engine = intake
    texts = [long_text(seed) for seed in range(4)]
    resend = texts[0].replace("parkeren", "parkeerplaatsen", 1) + "\nNog een zin erbij.\n"
    mails = [mail(subject=f"Voorstel {n}", body=text) for n, text in enumerate([*texts, resend])]
    for data in mails:  # one poll each: every earlier one is a candidate for the next
        assert deliver_and_poll(settings, engine, data).stored == 1
    with session_factory(engine)() as session:
        rows = list(session.scalars(select(StoredMessage).order_by(StoredMessage.id)))
    assert [row.duplicate_of_id for row in rows] == [None, None, None, None, rows[0].id]


def test_two_mails_with_bare_cr_line_ends_and_no_message_id_are_both_stored(
    intake: tuple[Settings, Engine],
) -> None:
    settings, engine = intake
    head = b"From: a@example.nl\rTo: smartcity@maastricht.nl\rSubject: idee\r"
    head += b"Date: Mon, 28 Jan 2019 10:00:00 +0100\r\r"
    first = head + b"Eerste voorstel: parkeersensoren in de binnenstad.\r"
    second = head + b"Tweede voorstel: meer bomen op de markt.\r"
    summary = deliver_and_poll(settings, engine, first, second)
    assert (summary.stored, summary.known) == (2, 0)


def test_mail_personas_are_unaffected_by_the_hostile_cases(
    intake: tuple[Settings, Engine],
) -> None:
    """A sanity check of the fixture: an ordinary suggestion is stored and acknowledged."""
    settings, engine = intake
    assert deliver_and_poll(settings, engine, mail()).stored == 1
    (ack,) = outgoing(engine, ACK)
    assert_only_our_headers(ack)
