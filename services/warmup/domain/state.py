"""An IP's warm-up state: a frozen value the rules take and return, never mutate.

It serialises with `model_dump(mode="json")` and loads back with `model_validate`, so the
service can keep it in one JSONB column. Its size is bounded: `history` holds at most one
record per schedule day and the limit flags hold one day and one hour.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.warmup.domain.rules import Mode
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.transitions import Transition

WarmupStatus = Literal["not_started", "warming", "suspended", "active"]
# Why an `active` IP is active: its schedule finished, it was requested without a warm-up
# (`auto_warmup: false`), or an operator stopped its warm-up (`ip.warmup.stop`).
Finished = Literal["completed", "skipped", "stopped"]


class DayRecord(BaseModel):
    """What happened the last time a schedule day was judged (for the view's `days`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: int = Field(ge=1)
    on: date  # the UTC day that was judged
    sent: int = Field(ge=0)
    done: bool


class WarmupState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: WarmupStatus = "not_started"
    schedule: str | None = None
    mode: Mode = "earned"
    day: int = Field(default=0, ge=0, description="current schedule day; 0 before the start")
    started_at: AwareDatetime | None = None
    # Watermark: every UTC hour before it has been judged (hour closes, day closes). The
    # hour starting here is the IP's current hour; its date is the IP's current UTC day.
    closed_until: AwareDatetime | None = None
    # Start of the hour the current phase began (start, resume, re-warm): the complaint-spike
    # check only looks at sends from here on, so a resumed IP is not re-suspended by the
    # very spike that suspended it.
    judged_since: AwareDatetime | None = None
    hold_reason: str | None = None
    suspended_at: AwareDatetime | None = None
    suspended_until: AwareDatetime | None = None
    warmed_at: AwareDatetime | None = None
    finished: Finished | None = None  # set while `active`
    last_send_hour: AwareDatetime | None = None
    # "Once per day / once per hour": the last day and hour whose limit event was emitted.
    daily_limit_reached_on: date | None = None
    hourly_limit_reached_at: AwareDatetime | None = None
    history: tuple[DayRecord, ...] = ()

    @property
    def current_date(self) -> date | None:
        """The UTC day the IP is on: the first day not yet closed."""
        return self.closed_until.date() if self.closed_until else None

    def require(self, schedule: Schedule) -> None:
        """Refuse to apply another schedule than the IP's own (a wiring mistake)."""
        if self.schedule is not None and schedule.name != self.schedule:
            raise ValueError(f"this IP warms on {self.schedule!r}, not on {schedule.name!r}")

    def updated(self, **changes: Any) -> WarmupState:
        """This state with `changes`, as `model_copy(update=changes)` makes it (no validation:
        the rules pass values of the fields' own types) at a fraction of its cost: the sweep
        makes one for every hour it closes on every IP. An unknown field is refused."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"WarmupState has no field {sorted(unknown)}")
        new = _new_state(WarmupState)
        _set(new, "__dict__", {**self.__dict__, **changes})
        _set(new, "__pydantic_fields_set__", self.__pydantic_fields_set__ | changes.keys())
        _set(new, "__pydantic_extra__", None)
        _set(new, "__pydantic_private__", None)
        return new

    def limits(self, schedule: Schedule) -> tuple[int, int]:
        """(daily, hourly) limits in force now; -1 unlimited, 0 while suspended."""
        if self.status == "suspended":
            return 0, 0
        if self.status != "warming":
            return UNLIMITED, UNLIMITED
        today = schedule.day(self.day)
        return today.daily_limit, today.hourly_limit

    def record(self, entry: DayRecord) -> tuple[DayRecord, ...]:
        """History with `entry` replacing any earlier record of the same schedule day."""
        kept = tuple(r for r in self.history if r.day != entry.day)
        return tuple(sorted((*kept, entry), key=lambda r: r.day))


_FIELDS = frozenset(WarmupState.model_fields)
_new_state = object.__new__
_set = object.__setattr__


class Step(NamedTuple):
    """What every rule returns: the new state and what happened, in event-time order."""

    state: WarmupState
    transitions: tuple[Transition, ...] = ()

    def moments(self) -> list[tuple[Transition, WarmupState]]:
        """Each transition with the state right after it (what its event shows): a single
        rule's transitions all leave `state`."""
        return [(t, self.state) for t in self.transitions]


class Steps(Step):
    """Several rules' steps in a row (the sweep's): each transition keeps the state right
    after it, so its event shows the IP as it was then, not as the last step left it."""

    after: tuple[WarmupState, ...]

    def moments(self) -> list[tuple[Transition, WarmupState]]:
        return list(zip(self.transitions, self.after, strict=True))


def steps(state: WarmupState, moments: list[tuple[Transition, WarmupState]]) -> Steps:
    """The Step of rules applied in a row, ending in `state`."""
    done = Steps(state, tuple(t for t, _ in moments))
    done.after = tuple(after for _, after in moments)
    return done
