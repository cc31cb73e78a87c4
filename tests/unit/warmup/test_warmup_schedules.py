"""Schedules are data: the shipped file, the operator's directory, and validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from services.warmup.domain.schedules import (
    SHIPPED_SCHEDULES,
    UNLIMITED,
    Schedule,
    ScheduleError,
    UnknownSchedule,
    load_schedules,
    select_schedule,
)

SPARKPOST_STAGES = [
    200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 40_000, 50_000, 75_000, 100_000, 150_000,
    200_000, 250_000, 325_000, 400_000, 500_000, 600_000, 750_000, 1_000_000, 1_250_000,
    1_750_000, 2_000_000, 3_000_000, 4_250_000, 5_000_000, 6_000_000, 7_500_000, 10_000_000,
]  # fmt: skip


@pytest.fixture(scope="module")
def shipped() -> dict[str, Schedule]:
    return load_schedules(None)


def daily(schedule: Schedule) -> dict[int, int]:
    return {d.day: d.daily_limit for d in schedule.days}


def test_ships_the_four_schedules(shipped: dict[str, Schedule]) -> None:
    assert set(shipped) == {"standard-14", "steady-28", "high-volume-30", "test-3"}
    assert SHIPPED_SCHEDULES.name == "schedules.toml"


def test_standard_14_keeps_the_seed_000_anchors(shipped: dict[str, Schedule]) -> None:
    limits = daily(shipped["standard-14"])
    assert shipped["standard-14"].length == 14
    assert {d: limits[d] for d in (1, 2, 3, 7, 10, 14)} == {
        1: 50,
        2: 100,
        3: 250,
        7: 5_000,
        10: 40_000,
        14: UNLIMITED,
    }


def test_standard_14_fills_the_gaps_geometrically(shipped: dict[str, Schedule]) -> None:
    limits = daily(shipped["standard-14"])
    # Days 4-6: 250 -> 5,000 over 4 steps, ratio 20 ** (1/4), two significant figures.
    for day in (4, 5, 6):
        exact = 250 * 20 ** ((day - 3) / 4)
        assert abs(limits[day] - exact) / exact < 0.05
    assert (limits[8], limits[9]) == (10_000, 20_000)
    # Days 11-13 keep the x2 per day growth of days 7-10.
    assert (limits[11], limits[12], limits[13]) == (80_000, 160_000, 320_000)


def test_steady_28_keeps_the_seed_001_anchors(shipped: dict[str, Schedule]) -> None:
    schedule = shipped["steady-28"]
    limits = daily(schedule)
    assert schedule.length == 28
    assert {d: limits[d] for d in (1, 7, 14, 21, 28)} == {
        1: 200,
        7: 1_000,
        14: 4_000,
        21: 10_000,
        28: 25_000,
    }
    # Seed 001 ends on a limited day: it is warmed by earning day 28, not by reaching it.
    assert schedule.last_limited_day == 28


def test_high_volume_30_is_sparkposts_29_stages_then_unlimited(
    shipped: dict[str, Schedule],
) -> None:
    schedule = shipped["high-volume-30"]
    limits = [d.daily_limit for d in schedule.days]
    assert limits == [*SPARKPOST_STAGES, UNLIMITED]
    assert schedule.last_limited_day == 29


@pytest.mark.parametrize("name", ["standard-14", "steady-28", "high-volume-30"])
def test_hourly_limits_follow_the_documented_formula(
    shipped: dict[str, Schedule], name: str
) -> None:
    for day in shipped[name].days:
        if day.unlimited:
            assert day.hourly_limit == UNLIMITED
        else:
            assert day.hourly_limit == min(day.daily_limit, max(20, math.ceil(day.daily_limit / 8)))


def test_test_3_is_tiny_with_hourly_limits_below_daily(shipped: dict[str, Schedule]) -> None:
    schedule = shipped["test-3"]
    assert [(d.daily_limit, d.hourly_limit) for d in schedule.days] == [
        (10, 5),
        (20, 10),
        (UNLIMITED, UNLIMITED),
    ]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
[operator-5]
description = "five days"
days = [
  { day = 1, daily_limit = 100, hourly_limit = 20 },
  { day = 2, daily_limit = 200, hourly_limit = 25 },
  { day = 3, daily_limit = 400, hourly_limit = 50 },
  { day = 4, daily_limit = 800, hourly_limit = 100 },
  { day = 5, daily_limit = -1, hourly_limit = -1 },
]
"""


def test_an_operator_adds_a_schedule_without_code(tmp_path: Path) -> None:
    write(tmp_path, "ours.toml", GOOD)
    write(tmp_path, "notes.txt", "not a schedule file")
    schedules = load_schedules(tmp_path)
    assert "operator-5" in schedules and "standard-14" in schedules
    assert schedules["operator-5"].day(4).daily_limit == 800


def test_redefining_a_shipped_schedule_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "mine.toml", GOOD.replace("operator-5", "standard-14"))
    with pytest.raises(
        ScheduleError, match=r"'standard-14' is already defined in .*schedules\.toml"
    ):
        load_schedules(tmp_path)


def test_a_missing_operator_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match="does not exist"):
        load_schedules(tmp_path / "nope")


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("{ day = 1, daily_limit = 10, hourly_limit = 5 }, { day = 3, daily_limit = 20, "
         "hourly_limit = 5 }", "without gaps"),
        ("{ day = 2, daily_limit = 10, hourly_limit = 5 }", "without gaps"),
        ("{ day = 1, daily_limit = 20, hourly_limit = 5 }, { day = 2, daily_limit = 10, "
         "hourly_limit = 5 }", "daily_limit must not decrease"),
        ("{ day = 1, daily_limit = 10, hourly_limit = 5 }, { day = 2, daily_limit = -1, "
         "hourly_limit = -1 }, { day = 3, daily_limit = -1, hourly_limit = -1 }",
         "only the last day"),
        ("{ day = 1, daily_limit = 10, hourly_limit = 50 }", "exceeds daily_limit"),
        ("{ day = 1, daily_limit = -1, hourly_limit = -1 }", "day 1 must have a finite"),
        ("{ day = 1, daily_limit = 10, hourly_limit = 0 }", "limit of 0"),
        ("{ day = 1, daily_limit = -5, hourly_limit = 1 }", "greater than or equal to -1"),
        ("{ day = 1, daily_limit = 10, hourly_limit = 5, weekly = 9 }", "Extra inputs"),
    ],
)  # fmt: skip
def test_invalid_schedules_name_file_schedule_and_fault(
    tmp_path: Path, days: str, message: str
) -> None:
    path = write(tmp_path, "bad.toml", f"[broken]\ndays = [ {days} ]\n")
    with pytest.raises(ScheduleError) as failure:
        load_schedules(tmp_path)
    text = str(failure.value)
    assert str(path) in text and "'broken'" in text and message in text


def test_unreadable_toml_and_stray_keys_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "[oops\n")
    with pytest.raises(ScheduleError, match="cannot read"):
        load_schedules(tmp_path)
    (tmp_path / "a.toml").unlink()
    write(tmp_path, "b.toml", 'title = "not a table"\n')
    with pytest.raises(ScheduleError, match="must be a table"):
        load_schedules(tmp_path)


def test_schedule_names_are_checked(tmp_path: Path) -> None:
    write(tmp_path, "c.toml", GOOD.replace("[operator-5]", '["Has Spaces"]'))
    with pytest.raises(ScheduleError, match="pattern"):
        load_schedules(tmp_path)


def test_select_schedule_falls_back_to_the_default(shipped: dict[str, Schedule]) -> None:
    assert select_schedule(shipped, None, "standard-14").name == "standard-14"
    assert select_schedule(shipped, "steady-28", "standard-14").name == "steady-28"
    with pytest.raises(UnknownSchedule, match=r"'nope'.*known: high-volume-30"):
        select_schedule(shipped, "nope", "standard-14")


def test_day_lookup_is_bounded(shipped: dict[str, Schedule]) -> None:
    schedule = shipped["test-3"]
    assert schedule.day(1).daily_limit == 10
    with pytest.raises(ValueError, match=r"days 1\.\.3"):
        schedule.day(4)
    with pytest.raises(ValueError):
        schedule.day(0)
