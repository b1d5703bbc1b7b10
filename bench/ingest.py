"""intake against a real Dovecot: raw IMAP rate, ingest rate, memory, digest, export, ack latency.

    .venv/bin/python bench/ingest.py --messages 20000

Generates a deterministic consultation mailbox (bench/mailgen.py), puts it into a Dovecot on
127.0.0.1 (Maildir files written directly, then indexed by Dovecot), and measures in one run:

1. raw: a bare imapclient loop of UID FETCH BODY.PEEK[] in batches of 50 (the IMAP limit);
2. ingest: intake's poll in its own process (fetch, parse, triage, store, ack queued; SQLite),
   with the peak memory of that process and of every parser process it starts;
3. the final digest (recorded and queued, with its CSV and XLSX) and the export alone;
4. ack latency: `intake run` waiting in IDLE on another folder while messages are APPENDed one
   at a time at random intervals; the time from APPEND to the ack at an aiosmtpd server;
5. triage cost per message with the shipped rules and with 2,000 more keywords.

Prints a table and writes it as Markdown (default bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import mailgen
import triage_cost
from imapclient import IMAPClient
from measure import Peaks, Sampler, run_child

from intake.sources.imap import quiet_protocol_log
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ReceivedMail, RecordingSMTP

FOLDER_LATENCY = "Latency"
ACK_WAIT = 60.0  # seconds the latency step waits for the last acknowledgement
MB = 1024 * 1024


def load_maildir(dovecot: Dovecot, count: int, seed: int) -> tuple[int, int]:
    """Write `count` messages as Maildir files of the Dovecot user; (messages, bytes)."""
    maildir = dovecot.root / "home" / dovecot.user / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    owner = (dovecot.root / "home").stat()
    total = 0
    for number in range(count):
        mail = mailgen.generate(number, seed)
        size = len(mail.data)
        stamp = int(mail.arrived_at.timestamp())
        path = maildir / "cur" / f"{stamp}.M{number}P1.bench,S={size},W={size}:2,"
        path.write_bytes(mail.data)
        os.utime(path, (stamp, stamp))  # Dovecot's INTERNALDATE for Maildir
        total += size
    for path in [maildir, *maildir.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid)
    return count, total


def connect(dovecot: Dovecot) -> IMAPClient:
    context = ssl.create_default_context(cafile=dovecot.ca_path)
    client = IMAPClient(dovecot.host, port=dovecot.imaps_port, ssl_context=context, timeout=60)
    client.login(dovecot.user, dovecot.password)
    return client


def raw_fetch(dovecot: Dovecot, *, quiet: bool = False) -> tuple[int, int, float]:
    """The bare loop: every message by UID FETCH BODY.PEEK[], 50 at a time. `quiet`: without
    imaplib's protocol log, which imapclient turns on (intake turns it off)."""
    client = connect(dovecot)
    if quiet:
        quiet_protocol_log(client)
    try:
        began = time.perf_counter()
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        count = size = 0
        for start in range(0, len(uids), 50):
            for data in client.fetch(uids[start : start + 50], [b"BODY.PEEK[]"]).values():
                count += 1
                size += len(data[b"BODY[]"])
        return count, size, time.perf_counter() - began
    finally:
        client.logout()


def write_config(work: Path, name: str, dovecot: Dovecot, folder: str, **extra: str) -> Path:
    config = work / name / "intake.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    worker = f"parse_processes = {extra['processes']}\n" if extra.get("processes") else ""
    config.write_text(
        f"""[consultation]
deadline = 2030-01-01T00:00:00
addresses = ["{mailgen.MAILBOX}"]
rules = "{REPO / "config" / "rules.toml"}"
contact = "Sanne de Groen, 043 350 00 00"

[mailbox]
url = "{dovecot.url(folder, "implicit")}"
ca_file = "{dovecot.ca_path}"

[database]
url = "sqlite:///{work / name / "intake.db"}"

[outgoing]
url = "{extra.get("outgoing", "file:outbox")}"
from_address = "{mailgen.MAILBOX}"
max_per_minute = 0

[digest]
recipients = ["onderzoek@maastricht.nl"]

[worker]
poll_interval_seconds = {extra.get("interval", "60")}
{worker}
[logging]
level = "INFO"
""",
        encoding="utf-8",
    )
    return config


def child_env(dovecot: Dovecot) -> dict[str, str]:
    env = dict(os.environ, INTAKE_MAILBOX_PASSWORD=dovecot.password)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def step(config: Path, name: str, dovecot: Dovecot) -> tuple[dict[str, object], Peaks]:
    return run_child(
        [sys.executable, str(HERE / "child.py"), name, str(config)], child_env(dovecot)
    )


class TimedSMTP(RecordingSMTP):
    """Records when each mail arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, float] = {}

    def _record(self, mail: ReceivedMail) -> int:
        for recipient in mail.recipients:
            self.arrivals.setdefault(recipient, time.monotonic())
        return super()._record(mail)


def ack_latency(
    work: Path, dovecot: Dovecot, count: int, seed: int, processes: str
) -> tuple[list[float], Peaks]:
    """Seconds from APPEND to the ack's arrival, per message, with `intake run` in IDLE."""
    smtp = TimedSMTP()
    smtp.start()
    with dovecot.client() as client:
        client.create_folder(FOLDER_LATENCY)
    config = write_config(
        work,
        "latency",
        dovecot,
        FOLDER_LATENCY,
        outgoing=smtp.url,
        processes=processes,
        interval="300",
    )
    log = (work / "latency" / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "intake", "--config", str(config), "run"],
        env=child_env(dovecot),
        stderr=log,
        stdout=log,
    )
    rng = random.Random(seed)
    latencies: list[float] = []
    try:
        with Sampler(worker.pid) as sampler:
            _wait_for(lambda: b"IDLE" in (work / "latency" / "worker.log").read_bytes(), 60)
            time.sleep(2.0)  # the first cycle done, in IDLE
            appended: dict[str, float] = {}
            for mail in _fresh_suggestions(count, seed):
                time.sleep(rng.uniform(0.5, 3.0))
                recipient = _sender(mail.data)
                dovecot.append(mail.data, FOLDER_LATENCY)
                appended[recipient] = time.monotonic()
            try:
                _wait_for(lambda: all(r in smtp.arrivals for r in appended), ACK_WAIT)
            except TimeoutError:
                missing = [r for r in appended if r not in smtp.arrivals]
                print(f"no acknowledgement for {len(missing)} of {len(appended)}: {missing}")
            # A missing acknowledgement counts as infinitely late, so that it shows in the figures.
            latencies = [smtp.arrivals.get(r, math.inf) - t for r, t in appended.items()]
            peaks = sampler.peaks
    finally:
        worker.terminate()  # SIGTERM: the worker stops cleanly
        worker.wait(timeout=30)
        log.close()
        smtp.stop()
    return latencies, peaks


def _fresh_suggestions(count: int, seed: int) -> Iterator[mailgen.GeneratedMail]:
    """Mailbox messages that should be acknowledged: no out-of-office replies, and no replies
    to an acknowledgement (intake acknowledges a thread once)."""
    number = 10_000_000
    found = 0
    while found < count:
        mail = mailgen.generate(number, seed, big=False)
        number += 1
        if b"Auto-Submitted:" in mail.data or b"In-Reply-To:" in mail.data:
            continue
        found += 1
        yield mail


def _sender(data: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line.startswith(b"From:"):
            return line.rsplit(b"<", 1)[1].rstrip(b">").decode()
    raise ValueError("no From")


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("waited too long")
        time.sleep(0.02)


def _cpu(peaks: Peaks) -> str:
    used = ", ".join(f"{label.split()[0]} {seconds:.1f} s" for label, seconds in peaks.cpu())
    cores = os.cpu_count() or 1
    return f"{used}; all {cores} cores {peaks.machine:.0%} busy (Dovecot and the rest included)"


def _late(seconds: float) -> str:
    return f"{seconds:.2f} s" if math.isfinite(seconds) else f"over {ACK_WAIT:.0f} s"


def _mb(value: int) -> str:
    return f"{value / MB:.0f} MB"


def _peaks(peaks: Peaks) -> str:
    return ", ".join(f"{label.split()[0]} {_mb(peak)}" for label, peak in peaks.summary())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--processes", default="", help="worker.parse_processes (default: cores)")
    parser.add_argument("--acks", type=int, default=40, help="messages for the ack latency")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    if os.geteuid() == 0:
        # Dovecot's services run as dovecot/dovenull and the mail as nobody: give them a path.
        work = Path(tempfile.mkdtemp(prefix="intake-bench-", dir="/tmp"))
        work.chmod(0o755)
    else:
        work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    (work / "dovecot").mkdir()
    dovecot = Dovecot(work / "dovecot")
    rows: list[tuple[str, str]] = []
    try:
        began = time.perf_counter()
        count, size = load_maildir(dovecot, args.messages, args.seed)
        generated = time.perf_counter() - began
        dovecot.start()
        began = time.perf_counter()
        with dovecot.client() as client:
            client.select_folder("INBOX", readonly=True)  # Dovecot indexes the new files
        indexed = time.perf_counter() - began
        print(
            f"mailbox: {count} messages, {size / count / 1000:.0f} KB average, "
            f"{_mb(size)}; written in {generated:.0f} s, indexed in {indexed:.0f} s"
        )

        raw_count, _, raw_seconds = raw_fetch(dovecot)
        raw_rate = raw_count / raw_seconds
        print(f"raw fetch: {raw_count} in {raw_seconds:.1f} s = {raw_rate:.0f}/s")
        quiet_count, _, quiet_seconds = raw_fetch(dovecot, quiet=True)
        quiet_rate = quiet_count / quiet_seconds
        print(f"raw fetch, protocol log off: {quiet_count} in {quiet_seconds:.1f} s")

        config = write_config(work, "ingest", dovecot, "INBOX", processes=args.processes)
        poll, poll_peaks = step(config, "poll", dovecot)
        rate = float(poll["fetched"]) / float(poll["seconds"])  # type: ignore[arg-type]
        print(f"intake poll: {poll}")
        print(f"  peaks: {_peaks(poll_peaks)}")
        print(f"  CPU: {_cpu(poll_peaks)}")
        digest, digest_peaks = step(config, "digest", dovecot)
        print(f"final digest: {digest}; {_peaks(digest_peaks)}")
        export, export_peaks = step(config, "export", dovecot)
        print(f"export: {export}; {_peaks(export_peaks)}")
        latencies, worker_peaks = ack_latency(work, dovecot, args.acks, args.seed, args.processes)
        latencies.sort()
        median = statistics.median(latencies)
        p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
        arrived = sum(1 for seconds in latencies if math.isfinite(seconds))
        acked = f"{arrived} of {len(latencies)} acknowledged within {ACK_WAIT:.0f} s"
        print(f"ack latency: median {_late(median)}, p95 {_late(p95)}; {acked}")
        triage = triage_cost.measure()

        stages = poll["stages"]  # type: ignore[index]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(poll["kinds"].items()))  # type: ignore[union-attr]
        largest = max(len(mailgen.generate(n, args.seed).data) for n in range(min(count, 4000)))
        rows = [
            (
                "mailbox",
                f"{count:,} messages, {size / count / 1000:.0f} KB average, "
                f"{_mb(size)} in all (largest {largest / 1e6:.0f} MB)",
            ),
            (
                "raw IMAP fetch (BODY.PEEK[] × 50)",
                f"{raw_rate:,.0f} messages/s ({raw_seconds:.1f} s)",
            ),
            (
                "intake ingest (stored, ack queued)",
                f"{rate:,.0f} messages/s ({float(poll['seconds']):.1f} s; {kinds})",
            ),  # type: ignore[arg-type]
            ("ingest / raw", f"{rate / raw_rate:.0%}"),
            (
                "raw fetch without imaplib's protocol log (as intake fetches)",
                f"{quiet_rate:,.0f} messages/s ({quiet_seconds:.1f} s); "
                f"ingest / this rate {rate / quiet_rate:.0%}",
            ),
            ("peak RSS per ingest process", _peaks(poll_peaks)),
            ("CPU time per ingest process", _cpu(poll_peaks)),
            ("time per stage (s)", ", ".join(f"{k} {v:.1f}" for k, v in stages.items())),  # type: ignore[union-attr]
            (
                "final digest, recorded and queued",
                f"{float(digest['seconds']):.1f} s, mail {int(digest['mail_bytes']) / 1e6:.1f} MB; "  # type: ignore[arg-type]
                f"peak RSS {_peaks(digest_peaks)}",
            ),
            (
                "final export (CSV + XLSX)",
                f"{float(export['seconds']):.1f} s; peak RSS {_peaks(export_peaks)}",
            ),  # type: ignore[arg-type]
            (
                "ack latency with IDLE",
                f"median {_late(median)}, p95 {_late(p95)} ({acked})",
            ),
            ("peak RSS of `intake run`", _peaks(worker_peaks)),
            (
                f"triage per message ({triage['shipped_rules']:.0f} rules)",
                f"{triage['shipped_us']:.0f} µs",
            ),
            (
                f"triage per message (+2,000 keywords, {triage['grown_rules']:.0f} rules)",
                f"{triage['grown_us']:.0f} µs",
            ),
        ]
    finally:
        dovecot.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    command = "python bench/ingest.py " + " ".join(sys.argv[1:])
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    machine = (
        f"{os.cpu_count()} cores, load average {load} at the end, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"
    )
    table = ["| measure | result |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    text = f"`{command.strip()}` ({machine})\n\n" + "\n".join(table) + "\n"
    print("\n" + text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("# Benchmark results\n\n" + text, encoding="utf-8")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
