"""Random MIME trees through the whole pipeline: every message is stored once, raw bytes intact,
or marked unparseable; no exception escapes a poll.

The generator writes bytes directly (not through the email package, which would refuse most of
what matters here): random and bogus charsets, RFC 2047 words with broken payloads, every
transfer encoding with broken base64 and quoted-printable, folded and enormous headers, missing
and wrong boundaries, NUL bytes, 8-bit garbage, deep nesting, CRLF, LF and bare CR.

Each case is delivered into a real Maildir and read by `ingest.poll_once`. The short version runs
in the normal suite (`SHORT_EXAMPLES`, derandomized); the long one is
`INTAKE_FUZZ_EXAMPLES=20000 .venv/bin/pytest -m slow tests/reliability/test_fuzz_mime.py -s`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from intake.config import Settings
from intake.ingest import PollSummary, poll_once
from intake.store.db import open_database, session_factory
from intake.store.models import Message, SourceItem
from intake.triage.rules import Rules, load_rules
from tests.pipeline_fixtures import deliver, settings_in

SHORT_EXAMPLES = 200
LONG_EXAMPLES = int(os.environ.get("INTAKE_FUZZ_EXAMPLES", "2000"))
# A fresh database and Maildir after this many cases: the Maildir listing and the stored keys
# grow with every case, and each poll reads both.
CASES_PER_SANDBOX = 250
# The long version polls its cases in batches of this many (one poll each), as a mailbox would
# hold them; the short one polls every case alone.
LONG_BATCH = 10
ARRIVED = datetime(2019, 1, 28, 10, 0, tzinfo=UTC)
PROGRESS_EVERY = 1000  # a figures line with -s, so a long run shows how far it got

# -- the generator ----------------------------------------------------------------------------

CHARSETS = (
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "iso-8859-15",
    "koi8-r",
    "gb2312",
    "shift_jis",
    "iso-2022-jp",
    "utf-16",
    "utf-7",
    "x-unknown",
    "utf-8'nl'",
    "",
    "\x00",
    "unicode-1-1-utf-7",
    "cp65001",
    "x-mac-roman",
    "ks_c_5601-1987",
    "base64",
    "a" * 300,
)
ENCODINGS = (
    "7bit",
    "8bit",
    "binary",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "uuencode",
    "BASE64",
    "bogus",
    "",
)
TYPES = (
    "text/plain",
    "text/html",
    "text/enriched",
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "application/ms-tnef",
    "image/png",
    "message/rfc822",
    "message/delivery-status",
    "message/disposition-notification",
    "text/rfc822-headers",
    "multipart/mixed",
    "multipart/alternative",
    "multipart/related",
    "multipart/report",
    "multipart/signed",
    "text",
    "/",
    "x/y/z",
)
HEADER_NAMES = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Return-Path",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Language",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "Precedence",
    "List-Id",
    "Sender",
    "Content-Disposition",
    "X-Random",
    "Received",
)
TEXTS = (
    "Beste gemeente, ik stel voor om parkeersensoren te plaatsen.",
    "Slimme lantaarnpalen met sensoren 🌳 — privacy eerst",
    "Анна <anna@example.nl>",
    "\u202egpj.exe\u202c",
    "<script>alert(1)</script>",
    "=?utf-8?b?",
    'Jan, de "Vries" <jan@example.nl>',
    "undisclosed-recipients:;",
    "<<<>>>@@@",
    "Mon, 28 Jan 2019 10:00:00 +0100",
    "Thu, 31 Feb 2019 25:61:61 +9999",
    "<a@b> <c@d>",
)
EOLS = (b"\r\n", b"\n", b"\r")


def _garbage(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    """A header value: text, an RFC 2047 word (perhaps broken), raw 8-bit, NULs, folds."""
    choice = draw(st.integers(0, 7))
    text = draw(st.one_of(st.sampled_from(TEXTS), st.text(max_size=60)))
    if choice == 0:
        value = text.encode("utf-8", "surrogatepass")
    elif choice == 1:
        charset = draw(st.sampled_from(CHARSETS))
        payload = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
        if draw(st.booleans()):
            payload = payload[: draw(st.integers(0, len(payload)))] + draw(st.sampled_from("=*!"))
        value = f"=?{charset}?{draw(st.sampled_from('BbQqX'))}?{payload}?=".encode(
            "utf-8", "surrogatepass"
        )
    elif choice == 2:
        # An encoded word that decodes to CR/LF and a header of its own.
        value = b"=?utf-8?q?Hallo=0D=0ABcc:_victim@example.org?="
    elif choice == 3:
        value = draw(st.binary(max_size=80))
    elif choice == 4:
        value = text.encode("utf-8", "surrogatepass") + b"\x00" + b"\xff\xfe"
    elif choice == 5:
        parts = [t.encode("utf-8", "surrogatepass") for t in draw(st.lists(st.text(), max_size=5))]
        value = draw(st.sampled_from([b"\r\n ", b"\n\t", b"\r\n", b"\n \n "])).join(parts)
    elif choice == 6:
        # Enormous: up to ~300 KB in one header, folded or not.
        size = draw(st.integers(1_000, 100_000))
        chunk = draw(st.sampled_from([b"a", b"word ", b"=?utf-8?q?x?= ", b"\xc3\xa9", b"\r\n x"]))
        value = chunk * (size // len(chunk))
    else:
        value = b""
    return value


@st.composite
def header_blocks(draw: st.DrawFn, eol: bytes) -> bytes:
    names = draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=12))
    lines = []
    for name in names:
        spelled = draw(st.sampled_from([name, name.lower(), name.upper(), name + " ", name + ":"]))
        lines.append(spelled.encode() + b": " + draw(header_values()))
    if draw(st.integers(0, 9)) == 0:
        lines.append(draw(st.binary(max_size=40)))  # a line that is no header at all
    return eol.join(lines)


@st.composite
def bodies(draw: st.DrawFn, encoding: str, eol: bytes) -> bytes:
    rng = random.Random(draw(st.integers(0, 2**32)))
    kind = draw(st.integers(0, 6))
    text = draw(st.sampled_from(TEXTS)).encode("utf-8") + b" " + draw(st.binary(max_size=64))
    if kind == 0:
        data = text
    elif kind == 1:
        data = base64.encodebytes(text)
    elif kind == 2:  # broken base64: truncated, stray characters, no padding
        encoded = base64.b64encode(_garbage(rng, draw(st.integers(0, 400))))
        data = encoded[: draw(st.integers(0, len(encoded)))] + b"!@#\x00=="
    elif kind == 3:  # broken quoted-printable: bad escapes, soft breaks at the end
        data = b"caf=E9 =ZZ =\r\n=3 = =\n" + text + b"="
    elif kind == 4:
        data = _garbage(rng, draw(st.integers(0, 4000)))
    elif kind == 5:
        data = b"begin 644 x.bin\nM" + _garbage(rng, 60) + b"\nend\n"
    else:
        data = b""
    if encoding.lower() == "base64" and kind == 0 and draw(st.booleans()):
        data = base64.encodebytes(data)
    return data.replace(b"\n", eol) if eol != b"\n" else data


@st.composite
def parts(draw: st.DrawFn, depth: int, eol: bytes) -> bytes:
    ctype = draw(st.sampled_from(TYPES))
    params = []
    if draw(st.booleans()):
        params.append(f"charset={draw(st.sampled_from(CHARSETS))}".encode(errors="replace"))
    if draw(st.integers(0, 4)) == 0:
        name = draw(
            st.sampled_from(
                ["../../etc/passwd", "/etc/passwd", "C:\\Windows\\x.dll", "CON", "a\x00b.txt"]
            )
        )
        params.append(f'name="{name}"'.encode())
    encoding = draw(st.sampled_from(ENCODINGS))
    multipart = ctype.startswith("multipart/") and depth < 8
    boundary = draw(st.sampled_from(["b1", "=_x", "a" * 80, "", "--", "b\x00"])) + str(depth)
    if multipart and draw(st.integers(0, 5)) != 0:  # sometimes no boundary parameter at all
        params.append(f'boundary="{boundary}"'.encode())
    head = [b"Content-Type: " + ctype.encode() + b"; ".join([b"", *params])]
    if encoding:
        head.append(b"Content-Transfer-Encoding: " + encoding.encode())
    if draw(st.booleans()):
        head.append(draw(header_blocks(eol)))
    head_bytes = eol.join(h for h in head if h)
    if multipart:
        children = draw(st.lists(parts(depth + 1, eol), max_size=4))
        used = boundary if draw(st.integers(0, 5)) else boundary + "-wrong"
        delimiter = b"--" + used.encode()
        body = b"preamble" + eol
        for child in children:
            body += delimiter + eol + child + eol
        if draw(st.integers(0, 3)):  # sometimes the closing delimiter is missing
            body += delimiter + b"--" + eol + b"epilogue"
    elif ctype == "message/rfc822" and depth < 8:
        body = draw(messages(depth + 1, eol))
    else:
        body = draw(bodies(encoding, eol))
    return head_bytes + eol + eol + body


@st.composite
def deep_nesting(draw: st.DrawFn, eol: bytes) -> bytes:
    """Hundreds of nested multiparts or message/rfc822 parts (recursion limits)."""
    levels = draw(st.sampled_from([20, 150, 400, 1100]))
    kind = draw(st.sampled_from(["multipart/mixed", "message/rfc822"]))
    body = b"Content-Type: text/plain" + eol + eol + b"bottom" + eol
    for level in range(levels):
        if kind == "message/rfc822":
            body = b"Content-Type: message/rfc822" + eol + eol + body
        else:
            boundary = f"n{level}".encode()
            body = (
                b"Content-Type: multipart/mixed; boundary=" + boundary + eol + eol
                + b"--" + boundary + eol + body + eol + b"--" + boundary + b"--" + eol
            )  # fmt: skip
    return body


@st.composite
def messages(draw: st.DrawFn, depth: int = 0, eol: bytes | None = None) -> bytes:
    """One message's bytes: a header block, then a MIME tree (or deep nesting, or garbage)."""
    eol = eol or draw(st.sampled_from(EOLS))
    head = draw(header_blocks(eol))
    shape = draw(st.integers(0, 9))
    if shape == 0 and depth == 0:
        tree = draw(deep_nesting(eol))
    elif shape == 1:
        tree = draw(st.binary(max_size=2000))  # no structure at all
    else:
        tree = draw(parts(depth, eol))
    if draw(st.integers(0, 9)) == 0:
        tree = tree.replace(eol, b"\x00" + eol)  # NUL bytes at every line end
    return head + eol + tree if head else tree


# -- the pipeline under test ------------------------------------------------------------------


class Boundary(logging.Handler):
    """Counts what the per-message boundaries in ingest caught (logged with a traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.caught: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.caught[record.getMessage().split(" <")[0].split(" for ")[0]] += 1


@dataclass
class Sandbox:
    """A Maildir and a database, replaced every `CASES_PER_SANDBOX` cases."""

    root: Path
    rules: Rules
    settings: Settings | None = None
    engine: Engine | None = None
    cases: int = 0
    generation: int = 0
    figures: Counter[str] = field(default_factory=Counter)

    in_sandbox: int = 0  # cases in the current sandbox

    def current(self, coming: int) -> tuple[Settings, Engine]:
        if self.engine is None or self.in_sandbox + coming > CASES_PER_SANDBOX:
            self.close()
            self.generation += 1
            self.in_sandbox = 0
            self.settings = settings_in(
                self.root / f"run{self.generation}",
                ack={"max_per_sender_per_day": 1_000_000, "max_per_thread": 1_000_000},
            )
            self.engine = open_database(self.settings.database.url)
        assert self.settings is not None
        return self.settings, self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def run(self, batch: list[bytes]) -> PollSummary:
        """Deliver `batch` and poll it once; assert each mail is stored once with its bytes, or
        known (its bytes, or its Message-ID, sender, subject and body, stored before)."""
        settings, engine = self.current(len(batch))
        self.in_sandbox += len(batch)
        with session_factory(engine)() as session:
            before = session.scalar(select(func.max(Message.id))) or 0
        keys = [deliver(settings, data, ARRIVED).name.split(":")[0] for data in batch]
        summary = poll_once(settings, engine, self.rules)
        assert summary.fetched == len(batch), summary
        assert summary.stored + summary.known == len(batch), summary
        digests = {hashlib.sha256(data).hexdigest() for data in batch}
        with session_factory(engine)() as session:
            for key, data in zip(keys, batch, strict=True):
                (item,) = session.scalars(select(SourceItem).where(SourceItem.key == key)).all()
                message = session.get(Message, item.message_pk)
                assert message is not None
                digest = hashlib.sha256(data).hexdigest()
                same_bytes = session.scalar(select(func.count()).where(Message.sha256 == digest))
                assert same_bytes <= 1  # never stored twice
                if message.sha256 == digest:
                    assert message.raw == data
                else:  # known by the same Message-ID, sender, subject and body
                    self.figures["known by Message-ID"] += 1
            new = list(session.scalars(select(Message).where(Message.id > before)))
            assert len(new) == summary.stored
            for message in new:
                assert message.sha256 in digests
                self.figures[f"kind:{message.kind}"] += 1
        previous = self.figures["cases"]
        self.figures["cases"] += len(batch)
        self.figures["stored"] += summary.stored
        self.figures["known"] += summary.known
        self.figures["unparseable"] += summary.quarantined
        if self.figures["cases"] // PROGRESS_EVERY > previous // PROGRESS_EVERY:
            print(f"\n{self.figures['cases']} cases: {dict(self.figures)}", flush=True)
        return summary


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("fuzz")
    box = Sandbox(root, load_rules(settings_in(root / "rules").rules_path))
    yield box
    box.close()


@pytest.fixture(scope="module")
def boundary() -> Iterator[Boundary]:
    handler = Boundary()
    logger = logging.getLogger("intake")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _report(sandbox: Sandbox, boundary: Boundary) -> str:
    figures = sandbox.figures
    kinds = ", ".join(f"{k[5:]} {n}" for k, n in sorted(figures.items()) if k.startswith("kind:"))
    return (
        f"fuzz: cases {figures['cases']}, stored {figures['stored']}, known {figures['known']} "
        f"({figures['known by Message-ID']} of them by Message-ID and body, the rest repeats), "
        f"unparseable {figures['unparseable']}, escaped exceptions 0, "
        f"caught at the per-message boundary {sum(boundary.caught.values())} "
        f"{dict(boundary.caught)}; kinds: {kinds}"
    )


def _check(sandbox: Sandbox, boundary: Boundary, batch: list[bytes]) -> None:
    before = sum(boundary.caught.values())
    sandbox.run(batch)
    # The boundary is a last resort; a parser or triage bug must not need it.
    assert sum(boundary.caught.values()) == before, dict(boundary.caught)


def fuzz_settings(examples: int, *, derandomize: bool) -> settings:
    return settings(
        max_examples=examples,
        derandomize=derandomize,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@fuzz_settings(SHORT_EXAMPLES, derandomize=True)
@given(data=messages())
def test_random_mime_trees_are_stored_once_with_their_bytes_or_marked_unparseable(
    sandbox: Sandbox, boundary: Boundary, data: bytes
) -> None:
    _check(sandbox, boundary, [data])


@pytest.mark.slow
@fuzz_settings(max(1, LONG_EXAMPLES // LONG_BATCH), derandomize=False)
@given(batch=st.lists(messages(), min_size=LONG_BATCH, max_size=LONG_BATCH))
def test_many_random_mime_trees_are_stored_once_with_their_bytes_or_marked_unparseable(
    sandbox: Sandbox, boundary: Boundary, batch: list[bytes]
) -> None:
    _check(sandbox, boundary, batch)


def test_every_fuzz_case_was_stored_or_recognised_as_known(
    sandbox: Sandbox, boundary: Boundary
) -> None:
    """Also prints the figures of the cases above (run with -s); FIGURES.md records a long run."""
    print("\n" + _report(sandbox, boundary))
    assert sandbox.figures["cases"] == sandbox.figures["stored"] + sandbox.figures["known"]
