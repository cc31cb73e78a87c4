"""What the warm-up rules decided: small typed values, one per thing that happened.

Each transition knows the contract event type it becomes on `ip.state_changed`
(`event_type`), the event time it
took effect (`at`), and a `key` unique per IP and stable under replay, from which the
service can derive the emitted event's id (e.g. uuid5(ip_id, key)) whatever input or sweep
happened to trigger it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, Literal

from services.warmup.domain.event_time import DAY, day_start, iso
from services.warmup.domain.rules import Mode

HoldCause = Literal["low_volume", "bounce_rate", "complaint_rate"]


@dataclass(frozen=True, slots=True)
class WarmupStarted:
    event_type: ClassVar[str] = "ip.warmup_started"
    at: datetime
    schedule: str
    mode: Mode

    @property
    def key(self) -> str:
        return f"warmup_started:{iso(self.at)}"


@dataclass(frozen=True, slots=True)
class Rewarmed:
    """An active IP idle for too long warms again (emitted as a new warm-up start)."""

    event_type: ClassVar[str] = "ip.warmup_started"
    at: datetime
    day: int
    idle_since: datetime

    @property
    def key(self) -> str:
        return f"rewarmed:{iso(self.at)}"


@dataclass(frozen=True, slots=True)
class Advanced:
    event_type: ClassVar[str] = "ip.warmup_advanced"
    on: date  # the UTC day whose close earned the advance
    day_from: int
    day_to: int

    @property
    def at(self) -> datetime:
        return day_start(self.on) + DAY

    @property
    def key(self) -> str:
        return f"advanced:{self.on.isoformat()}"


@dataclass(frozen=True, slots=True)
class Held:
    """A closed day that did not earn the next one; the view's `hold_reason` says why."""

    event_type: ClassVar[str] = "ip.warmup_held"
    on: date
    day: int
    causes: tuple[HoldCause, ...]
    reason: str

    @property
    def at(self) -> datetime:
        return day_start(self.on) + DAY

    @property
    def key(self) -> str:
        return f"held:{self.on.isoformat()}"


@dataclass(frozen=True, slots=True)
class Warmed:
    event_type: ClassVar[str] = "ip.warmed"
    on: date  # the UTC day whose close finished the schedule
    day: int

    @property
    def at(self) -> datetime:
        return day_start(self.on) + DAY

    @property
    def key(self) -> str:
        return f"warmed:{self.on.isoformat()}"


@dataclass(frozen=True, slots=True)
class WarmupStopped:
    """An operator stopped the warm-up (`ip.warmup.stop`): the IP is `active` at once."""

    event_type: ClassVar[str] = "ip.warmup_stopped"
    at: datetime
    day: int

    @property
    def key(self) -> str:
        return f"warmup_stopped:{iso(self.at)}"


@dataclass(frozen=True, slots=True)
class Suspended:
    event_type: ClassVar[str] = "ip.suspended"
    at: datetime
    until: datetime
    reason: str

    @property
    def key(self) -> str:
        return f"suspended:{iso(self.at)}"


@dataclass(frozen=True, slots=True)
class Resumed:
    event_type: ClassVar[str] = "ip.resumed"
    at: datetime
    day_from: int
    day_to: int

    @property
    def key(self) -> str:
        return f"resumed:{iso(self.at)}"


@dataclass(frozen=True, slots=True)
class DailyLimitReached:
    event_type: ClassVar[str] = "ip.daily_limit_reached"
    on: date
    day: int
    limit: int
    at: datetime  # start of the UTC hour in which the day's count reached the limit

    @property
    def key(self) -> str:
        return f"daily_limit_reached:{self.on.isoformat()}"


@dataclass(frozen=True, slots=True)
class HourlyLimitReached:
    event_type: ClassVar[str] = "ip.hourly_limit_reached"
    hour: datetime  # start of the UTC hour
    day: int
    limit: int

    @property
    def at(self) -> datetime:
        return self.hour

    @property
    def key(self) -> str:
        return f"hourly_limit_reached:{iso(self.hour)}"


Transition = (
    WarmupStarted
    | Rewarmed
    | Advanced
    | Held
    | Warmed
    | WarmupStopped
    | Suspended
    | Resumed
    | DailyLimitReached
    | HourlyLimitReached
)
