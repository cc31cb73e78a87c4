"""Warm-up schedules: data, not code.

A schedule is a named list of warm-up days, each with a daily limit and an hourly limit
(-1 = unlimited). ipfleet ships `services/warmup/schedules.toml`; an operator adds schedules
by dropping more `*.toml` files into a directory of their own (see `load_schedules`). Each
file holds one or more schedules, one top-level table per schedule name:

    [my-plan]
    description = "what it is for"
    source = "where the numbers come from"
    days = [
      { day = 1, daily_limit = 100, hourly_limit = 20 },
      { day = 2, daily_limit = -1, hourly_limit = -1 },
    ]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

UNLIMITED = -1
SHIPPED_SCHEDULES = Path(__file__).resolve().parent.parent / "schedules.toml"

ScheduleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Limit = Annotated[int, Field(ge=UNLIMITED)]


class ScheduleError(ValueError):
    """A schedule file is missing, unreadable or invalid; the message names file and schedule."""


class UnknownSchedule(LookupError):
    """A schedule name that no loaded file defines."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown warm-up schedule {name!r}; known: {', '.join(known)}")
        self.name = name


class ScheduleDay(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    day: int = Field(ge=1)
    daily_limit: Limit
    hourly_limit: Limit

    @property
    def unlimited(self) -> bool:
        return self.daily_limit == UNLIMITED

    @model_validator(mode="after")
    def _limits_agree(self) -> Self:
        if self.daily_limit == 0 or self.hourly_limit == 0:
            raise ValueError(f"day {self.day}: a limit of 0 would stop the warm-up; use >= 1")
        if self.unlimited and self.hourly_limit != UNLIMITED:
            raise ValueError(f"day {self.day}: an unlimited day needs hourly_limit = -1")
        if not self.unlimited and self.hourly_limit > self.daily_limit:
            raise ValueError(
                f"day {self.day}: hourly_limit {self.hourly_limit} exceeds "
                f"daily_limit {self.daily_limit}"
            )
        return self


def _ceiling(limit: int) -> float:
    return float("inf") if limit == UNLIMITED else float(limit)


class Schedule(BaseModel):
    """A named warm-up schedule: days 1..N, limits never decreasing, only day N unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ScheduleName
    description: str = ""
    source: str = ""
    days: tuple[ScheduleDay, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _well_formed(self) -> Self:
        numbers = [d.day for d in self.days]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(
                f"days must run 1..{len(numbers)} in order without gaps, got {numbers}"
            )
        for d in self.days[:-1]:
            if d.unlimited:
                raise ValueError(f"day {d.day} is unlimited but only the last day may be")
        if self.days[0].unlimited:
            raise ValueError("day 1 must have a finite daily limit, or there is nothing to warm")
        for before, after in zip(self.days, self.days[1:], strict=False):
            for field in ("daily_limit", "hourly_limit"):
                if _ceiling(getattr(after, field)) < _ceiling(getattr(before, field)):
                    raise ValueError(
                        f"{field} must not decrease: day {before.day} has "
                        f"{getattr(before, field)}, day {after.day} has {getattr(after, field)}"
                    )
        return self

    @property
    def length(self) -> int:
        return len(self.days)

    @property
    def last_limited_day(self) -> int:
        """The last day with a finite daily limit (the last day a warm-up can sit on)."""
        return self.length - 1 if self.days[-1].unlimited else self.length

    def day(self, number: int) -> ScheduleDay:
        if not 1 <= number <= self.length:
            raise ValueError(f"schedule {self.name!r} has days 1..{self.length}, not {number}")
        return self.days[number - 1]


def _read(path: Path) -> dict[str, Schedule]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScheduleError(f"{path}: cannot read schedules: {exc}") from exc
    found: dict[str, Schedule] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ScheduleError(
                f"{path}: top-level key {name!r} must be a table [{name}] describing a schedule"
            )
        try:
            found[name] = Schedule.model_validate({"name": name, **table})
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'schedule'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ScheduleError(f"{path}: schedule {name!r} is invalid: {details}") from exc
    return found


def load_schedules(extra_dir: Path | None = None) -> dict[str, Schedule]:
    """The shipped schedules plus every `*.toml` in `extra_dir` (an operator's directory).

    Files are read in name order. A name defined twice, anywhere, is an error rather than a
    silent override: changing the limits of a schedule that IPs are part-way through must be
    a deliberate new name. Raises `ScheduleError` with the file and schedule at fault.
    """
    files = [SHIPPED_SCHEDULES]
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ScheduleError(f"{extra_dir}: schedule directory does not exist")
        files += sorted(extra_dir.glob("*.toml"))
    schedules: dict[str, Schedule] = {}
    origin: dict[str, Path] = {}
    for path in files:
        for name, schedule in _read(path).items():
            if name in schedules:
                raise ScheduleError(
                    f"{path}: schedule {name!r} is already defined in {origin[name]}"
                )
            schedules[name] = schedule
            origin[name] = path
    return schedules


def select_schedule(schedules: Mapping[str, Schedule], name: str | None, default: str) -> Schedule:
    """The schedule an IP asked for, or the default; raises `UnknownSchedule`."""
    wanted = name or default
    try:
        return schedules[wanted]
    except KeyError:
        raise UnknownSchedule(wanted, sorted(schedules)) from None
