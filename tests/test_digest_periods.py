"""Digest periods: 08:00 local every day across DST, one catch-up digest after downtime, no
gaps or overlaps between daily digests, and a final digest that is due once."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from intake.config import Settings
from intake.digests.periods import (
    DAILY,
    FINAL,
    Period,
    due_periods,
    final_time,
    fire_time,
    latest_fire_time,
    next_fire_time,
)
from tests.test_digest_fixtures import AMS, local, make_settings


@pytest.fixture
def later_deadline(tmp_path: Path) -> Settings:
    """Digests at 08:00 with the deadline far away, so only daily digests are due."""
    settings = make_settings(tmp_path)
    consultation = settings.consultation.model_copy(update={"deadline": datetime(2027, 1, 1)})
    return settings.model_copy(update={"consultation": consultation})


def run_every(
    settings: Settings,
    start: datetime,
    stop: datetime,
    step: timedelta,
    last_end: datetime | None = None,
) -> list[Period]:
    """Call due_periods every `step` from `start` to `stop`, recording what it returns."""
    recorded: list[Period] = []
    final_recorded = False
    now = start
    while now <= stop:
        for period in due_periods(now, last_end, final_recorded, settings):
            recorded.append(period)
            final_recorded = final_recorded or period.kind == FINAL
            last_end = period.end if last_end is None else max(last_end, period.end)
        now += step
    return recorded


@pytest.mark.parametrize(
    ("first", "last"),
    [(date(2026, 3, 27), date(2026, 3, 31)), (date(2026, 10, 23), date(2026, 10, 27))],
    ids=["spring-forward-2026-03-29", "fall-back-2026-10-25"],
)
def test_daily_digests_fire_at_eight_local_once_a_day_across_dst(
    later_deadline: Settings, first: date, last: date
) -> None:
    start = datetime.combine(first, time(0, 0), tzinfo=AMS).astimezone(UTC)
    stop = datetime.combine(last, time(23, 59), tzinfo=AMS).astimezone(UTC)
    day_before = datetime.combine(first - timedelta(days=1), time(8, 0), tzinfo=AMS)
    periods = run_every(later_deadline, start, stop, timedelta(minutes=10), last_end=day_before)
    ends = [period.end.astimezone(AMS) for period in periods]
    assert [end.date() for end in ends] == [first + timedelta(days=n) for n in range(5)]
    assert all((end.hour, end.minute) == (8, 0) for end in ends)
    assert [period.key for period in periods] == [end.date().isoformat() for end in ends]


def test_the_dst_days_are_23_and_25_hours_long_between_fire_times() -> None:
    at = time(8, 0)

    def fire(day: date) -> datetime:
        return fire_time(day, at, AMS).astimezone(UTC)  # same-zone subtraction is wall-clock

    spring = fire(date(2026, 3, 29)) - fire(date(2026, 3, 28))
    autumn = fire(date(2026, 10, 25)) - fire(date(2026, 10, 24))
    assert spring == timedelta(hours=23)
    assert autumn == timedelta(hours=25)


def test_a_fire_time_in_the_skipped_hour_moves_an_hour_later_that_day() -> None:
    moment = fire_time(date(2026, 3, 29), time(2, 30), AMS)
    assert (moment.hour, moment.minute, moment.utcoffset()) == (3, 30, timedelta(hours=2))


def test_a_fire_time_in_the_repeated_hour_fires_once(later_deadline: Settings) -> None:
    settings = later_deadline.model_copy(
        update={"digest": later_deadline.digest.model_copy(update={"daily_at": time(2, 30)})}
    )
    start = local(2026, 10, 24, 12, 0)
    periods = run_every(
        settings, start, local(2026, 10, 26, 12, 0), timedelta(minutes=5), last_end=start
    )
    assert [p.key for p in periods] == ["2026-10-25", "2026-10-26"]
    assert periods[0].end == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)


def test_latest_and_next_fire_time_bracket_now() -> None:
    now = local(2026, 3, 29, 7, 59)
    assert latest_fire_time(now, time(8, 0), AMS) == local(2026, 3, 28, 8, 0)
    assert next_fire_time(now, time(8, 0), AMS) == local(2026, 3, 29, 8, 0)
    exactly = local(2026, 3, 29, 8, 0)
    assert latest_fire_time(exactly, time(8, 0), AMS) == exactly
    assert next_fire_time(exactly, time(8, 0), AMS) == local(2026, 3, 30, 8, 0)


def test_after_downtime_one_digest_covers_the_whole_gap(later_deadline: Settings) -> None:
    last_end = local(2026, 5, 10, 8, 0)
    due = due_periods(local(2026, 5, 14, 9, 30), last_end, False, later_deadline)
    assert due == [Period(DAILY, "2026-05-14", last_end, local(2026, 5, 14, 8, 0))]


def test_nothing_is_due_before_the_next_fire_time(later_deadline: Settings) -> None:
    assert (
        due_periods(local(2026, 5, 14, 7, 59), local(2026, 5, 13, 8, 0), False, later_deadline)
        == []
    )


def test_the_first_digest_covers_everything_from_the_beginning(later_deadline: Settings) -> None:
    (period,) = due_periods(local(2026, 5, 14, 8, 0), None, False, later_deadline)
    assert period.start is None


def test_a_month_of_random_restarts_leaves_no_gap_and_no_overlap(later_deadline: Settings) -> None:
    rng = random.Random(20260329)
    now = local(2026, 3, 1, 6, 0)
    stop = local(2026, 4, 30, 23, 0)
    last_end: datetime | None = None
    periods: list[Period] = []
    while now < stop:
        periods += due_periods(now, last_end, False, later_deadline)
        last_end = periods[-1].end if periods else None
        # The worker ticks every minute; now and then it is down for minutes to days.
        down = rng.random() < 0.1
        now += timedelta(minutes=rng.randint(30, 4 * 24 * 60) if down else 1)
    assert periods[0].start is None
    for before, after in itertools.pairwise(periods):
        assert after.start == before.end  # contiguous: no gap, no overlap
        assert after.end > after.start
    ends = [p.end.astimezone(AMS) for p in periods]
    assert all((end.hour, end.minute) == (8, 0) for end in ends)
    assert len({p.key for p in periods}) == len(periods)
    assert len(periods) < 61  # some days were caught up together


def test_the_final_digest_is_due_at_the_deadline_alone_and_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # deadline 2019-02-06 00:00 local
    deadline = local(2019, 2, 6, 0, 0)
    assert final_time(settings) == deadline
    before = due_periods(deadline - timedelta(minutes=1), local(2019, 2, 5, 8, 0), False, settings)
    assert [p.kind for p in before] == []
    late = local(2019, 2, 9, 10, 0)  # the worker was down over the deadline
    assert due_periods(late, local(2019, 2, 5, 8, 0), False, settings) == [
        Period(FINAL, "final", None, late)
    ]
    # Recorded: daily digests go on from the final's end, for late mail only.
    (daily,) = due_periods(local(2019, 2, 10, 8, 0), late, True, settings)
    assert (daily.kind, daily.start, daily.after_final) == (DAILY, late, True)
    assert due_periods(local(2019, 2, 10, 8, 0), local(2019, 2, 10, 8, 0), True, settings) == []


def test_final_at_overrides_the_deadline_and_naive_is_local(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, final_at=datetime(2019, 2, 6, 9, 0))
    assert final_time(settings) == local(2019, 2, 6, 9, 0)
    # Before final_at, the 08:00 digest of the deadline day is an ordinary daily one.
    (daily,) = due_periods(local(2019, 2, 6, 8, 30), local(2019, 2, 5, 8, 0), False, settings)
    assert daily.kind == DAILY


def test_naive_now_is_refused(later_deadline: Settings) -> None:
    with pytest.raises(ValueError, match="aware"):
        due_periods(datetime(2026, 5, 14, 8, 0), None, False, later_deadline)
