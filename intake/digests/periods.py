"""Which digest periods are due: daily fire times in local wall-clock time, and the final one.

Pure: the time is passed in, nothing is read from the database or the clock.

A period is a half-open span [start, end) of *storage* time (`Message.stored_at`): a message
belongs to the first digest built after intake stored it. The arrival time would lose mail that
arrives just before a digest but is polled just after it, or that a restarted worker fetches
from a mailbox backlog; storage time puts every message in exactly one daily digest.

Daily digests fire at `digest.daily_at` local time every day. The fire time of a day is taken
as wall-clock time in the consultation's zone, so it stays at 08:00 across both DST changes;
a time inside the spring-forward gap falls an hour later that day, one inside the repeated
autumn hour fires once, at its first occurrence. After downtime the missed fire times make
ONE catch-up digest that covers the whole gap, keyed on the local date of the latest one.

The final digest (key "final") is due at `digest.final_at`, else at the deadline, once,
however late it is built; it lists everything stored until it is built. When it is due, it is
the only digest of that run: a daily digest due at the same moment would only repeat part of
it. After it, daily digests continue from the final's end, but are sent only when something
new arrived (late mail); empty ones are recorded without a mail, whatever `send_empty` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from intake.config import Settings

DAILY, FINAL = "daily", "final"
FINAL_KEY = "final"


@dataclass(frozen=True, slots=True)
class Period:
    """One digest to build: [start, end) of storage time; start None means from the first."""

    kind: str  # DAILY or FINAL
    key: str  # the local date (YYYY-MM-DD) of a daily digest's fire time; "final"
    start: datetime | None  # UTC
    end: datetime  # UTC
    after_final: bool = False  # a daily after the final: no mail when nothing new arrived


def fire_time(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The moment `at` o'clock falls on local `day` in `tz` (wall-clock arithmetic, DST-safe).

    A wall time that does not exist (the spring-forward gap) is read with the offset before
    the change, which lands it an hour later; the round trip through UTC makes it a real time.
    """
    local = datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz)
    return local.astimezone(UTC).astimezone(tz)


# Comparisons and differences go through UTC: Python compares two datetimes that share a
# tzinfo by their wall-clock fields, which is wrong in the repeated autumn hour.


def latest_fire_time(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The last daily fire time at or before `now`."""
    _require_aware(now, "now")
    today = now.astimezone(tz).date()
    candidate = fire_time(today, at, tz)
    if candidate.astimezone(UTC) > now.astimezone(UTC):
        candidate = fire_time(today - timedelta(days=1), at, tz)
    return candidate


def next_fire_time(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first daily fire time after `now` (for a scheduler that sleeps until then)."""
    _require_aware(now, "now")
    today = now.astimezone(tz).date()
    candidate = fire_time(today, at, tz)
    if candidate.astimezone(UTC) <= now.astimezone(UTC):
        candidate = fire_time(today + timedelta(days=1), at, tz)
    return candidate


def final_time(settings: Settings) -> datetime:
    """When the final digest is due: `digest.final_at`, else the deadline (naive = local time)."""
    final_at = settings.digest.final_at
    if final_at is None:
        return settings.consultation.deadline_at
    if final_at.tzinfo is None:
        return final_at.replace(tzinfo=settings.consultation.tz)
    return final_at


def due_periods(
    now: datetime,
    last_daily_end: datetime | None,
    final_recorded: bool,
    settings: Settings,
) -> list[Period]:
    """The digests due at `now`, oldest first: the final, or at most one (catch-up) daily.

    `last_daily_end` is where the next daily digest starts: the end of the latest recorded
    digest (a daily one, or the final once recorded, since it covers everything before it);
    None before the first. `final_recorded` says whether the final digest was recorded.
    """
    _require_aware(now, "now")
    now = now.astimezone(UTC)
    if not final_recorded and now >= final_time(settings).astimezone(UTC):
        return [Period(kind=FINAL, key=FINAL_KEY, start=None, end=now)]
    tz = settings.consultation.tz
    fired = latest_fire_time(now, settings.digest.daily_at, tz)
    end = fired.astimezone(UTC)
    start = last_daily_end.astimezone(UTC) if last_daily_end is not None else None
    if start is not None and start >= end:
        return []
    return [
        Period(
            kind=DAILY,
            key=fired.date().isoformat(),
            start=start,
            end=end,
            after_final=final_recorded,
        )
    ]


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime")
