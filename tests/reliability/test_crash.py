"""SIGKILL the real worker at random moments, many times, while mail keeps arriving: every message
is stored exactly once, every acknowledgement arrives and none twice in two versions, and each
digest period is sent once.

`intake run` reads the test Dovecot (IMAP, IDLE) and sends through the test SMTP server. Mail
copies of the consultation corpus are appended in bursts while the worker is killed and
restarted. A daily digest and the final digest (the deadline) fall due during the kills, and the
kill of the run in which each falls due is aimed at it. At the end one worker runs undisturbed
until the mailbox and the outbox are done and stops on SIGTERM; mail a killed worker left
`sending` goes out once its lease ran out (as the next worker would do ten minutes later).

Knobs (environment): INTAKE_CRASH_SEED (printed; the kill moments and bursts follow from it),
INTAKE_CRASH_KILLS and INTAKE_CRASH_MESSAGES for the slow version (default 200 and 400).
The figures line is printed; `pytest -s` shows it.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from intake.store.db import session_factory
from intake.store.models import DigestRun, Message, OutboxMail
from tests.reliability.harness import (
    Feeder,
    Figures,
    IntakeHome,
    drain_outbox,
    iter_logs,
    reference_decisions,
    tally,
    unexpected_log_lines,
    wait_until,
)
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import RecordingSMTP

pytestmark = pytest.mark.imap

AMS = ZoneInfo("Europe/Amsterdam")
# A fifth of the kills land during start-up (imports, migration check, lock, parser pool), the
# others up to LIFE_SECONDS after the worker says it runs: in a poll, a delivery or a digest.
EARLY_SHARE = 0.2
EARLY_SECONDS = (0.1, 2.0)
LIFE_SECONDS = (0.0, 4.0)
KILL_OVERHEAD_SECONDS = 0.2


@dataclass(frozen=True)
class Kill:
    early: bool  # during start-up, `after` seconds after the start; else after "worker running"
    after: float


@dataclass(frozen=True)
class Plan:
    kills: int
    messages: int
    preload: int  # in the mailbox before the first start


def seed() -> int:
    value = os.environ.get("INTAKE_CRASH_SEED")
    chosen = int(value) if value else random.SystemRandom().randrange(1_000_000)
    print(f"\nINTAKE_CRASH_SEED={chosen}")
    return chosen


def crash_run(
    dovecot: Dovecot, smtp: RecordingSMTP, folder: Path, plan: Plan, seed: int
) -> Figures:
    """Feed, kill and restart `plan.kills` times, then finish cleanly; the tally."""
    rng = random.Random(seed)
    kills = []
    for _ in range(plan.kills):
        early = rng.random() < EARLY_SHARE
        kills.append(Kill(early, rng.uniform(*(EARLY_SECONDS if early else LIFE_SECONDS))))
    aim = random.Random(seed + 1)
    bursts = random.Random(seed + 2)
    home = IntakeHome.create(folder, dovecot, smtp)
    startup = time_to_start(home, folder / "worker-probe.log")

    def took(kill: Kill) -> float:
        return kill.after + (0 if kill.early else startup) + KILL_OVERHEAD_SECONDS

    def due_during(number: int) -> datetime:
        spent = sum(took(k) for k in kills[:number]) + took(kills[number]) / 2
        return datetime.now(UTC) + timedelta(seconds=spent)

    # The daily digest falls due during the kill a third of the way in, the final one (the
    # deadline) two thirds in.
    daily, final = due_during(plan.kills // 3), due_during(2 * plan.kills // 3)
    home.env["INTAKE_CONSULTATION_DEADLINE"] = final.isoformat()
    home.env["INTAKE_DIGEST_DAILY_AT"] = daily.astimezone(AMS).strftime("%H:%M:%S")
    moments = {"daily": daily, "final": final}
    fell: dict[str, int] = {}
    arriving = plan.messages - plan.preload
    mean_pause = max(0.2, sum(map(took, kills)) * 0.8 / max(1, arriving / 6.5))

    def burst() -> tuple[int, float]:
        return bursts.randint(1, 12), bursts.uniform(0.5, 1.5) * mean_pause

    feeder = Feeder(dovecot, plan.messages, pick=burst)
    feeder.append(plan.preload)
    feeder.start()
    exits: list[str] = []
    for number, kill in enumerate(kills):
        worker = home.worker(folder / f"worker-{number:03d}.log")
        if kill.early:
            time.sleep(kill.after)
        else:
            worker.wait_for("worker running", timeout=60)
            now = datetime.now(UTC)
            life = kill.after
            ahead = now + timedelta(seconds=life + 1.0)
            aimed = [m for m in moments.values() if now < m <= ahead]
            if aimed:  # at the digest: being built, queued, sent or marked
                life = (aimed[0] - now).total_seconds() + aim.uniform(0.0, 2.5)
            time.sleep(life)
        if not worker.is_running():
            exits.append(f"run {number} exited {worker.process.returncode}:\n{worker.text()}")
        worker.kill()
        for name, moment in moments.items():
            if name not in fell and moment <= datetime.now(UTC):
                fell[name] = number
    feeder.finish()

    last = home.worker(folder / "worker-last.log")
    last.wait_for("worker running")
    engine = home.engine()
    try:
        wait_until(lambda: datetime.now(UTC) > final, timeout=60, what="the deadline")

        def settled() -> bool:
            with session_factory(engine)() as session:
                stored = session.scalar(select(func.count()).select_from(Message))
                due = session.scalar(
                    select(func.count())
                    .select_from(OutboxMail)
                    .where(OutboxMail.status == "queued")
                )
                digested = session.scalar(select(func.count()).where(DigestRun.kind == "final"))
            assert last.is_running(), last.text()
            return stored == plan.messages and due == 0 and digested == 1

        wait_until(settled, timeout=120, what="all mail stored, the outbox sent")
    finally:
        engine.dispose()
    assert last.terminate() == 0, last.text()
    assert not unexpected_log_lines(last.text()), last.text()
    drain_outbox(home)

    figures = tally(home, list(smtp.messages), kills=plan.kills)
    print(f"figures: {figures.line()}")
    print(f"digests due during kill: {fell or 'none (after the last kill)'}")
    for path, text in iter_logs(folder):
        for line in unexpected_log_lines(text):
            print(f"{path.name}: {line}")
    assert not exits, "\n".join(exits)
    reference = reference_decisions(dovecot, folder / "reference")
    engine = home.engine()
    try:
        with session_factory(engine)() as session:
            decided = {
                mid: (kind, ack)
                for mid, kind, ack in session.execute(
                    select(Message.message_id, Message.kind, Message.ack_status)
                )
            }
    finally:
        engine.dispose()
    differing = {
        mid: (decided.get(mid), want) for mid, want in reference.items() if decided.get(mid) != want
    }
    assert not differing, f"decisions differ from one uninterrupted poll: {differing}"
    return figures


def time_to_start(home: IntakeHome, log: Path) -> float:
    """Seconds from starting `intake run` to "worker running" on this machine (then stopped)."""
    probe = home.worker(log)
    probe.wait_for("worker running", timeout=60)
    took = time.monotonic() - probe.started
    assert probe.terminate() == 0, probe.text()
    return took


def assert_nothing_lost_or_doubled(figures: Figures) -> None:
    assert figures.messages > 0
    assert not figures.problems(), "\n".join(figures.problems())
    assert figures.stored == figures.messages
    assert "final final" in figures.digests  # the deadline fell inside the kills


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    imap_mailbox: Dovecot, smtp: RecordingSMTP, tmp_path: Path
) -> None:
    figures = crash_run(
        imap_mailbox, smtp, tmp_path, Plan(kills=4, messages=40, preload=15), seed()
    )
    assert_nothing_lost_or_doubled(figures)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_hundreds_of_sigkills_lose_and_double_nothing(
    imap_mailbox: Dovecot, smtp: RecordingSMTP, tmp_path: Path
) -> None:
    kills = int(os.environ.get("INTAKE_CRASH_KILLS", "200"))
    messages = int(os.environ.get("INTAKE_CRASH_MESSAGES", "400"))
    plan = Plan(kills=kills, messages=messages, preload=min(50, messages))
    figures = crash_run(imap_mailbox, smtp, tmp_path, plan, seed())
    assert_nothing_lost_or_doubled(figures)
