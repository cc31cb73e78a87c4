"""The IP's warm-up as the wire shows it: the `warmup` object of every `ip.state_changed`.

    progress = completed schedule days / schedule length
             = (day - 1) / N while warming or suspended, 1.0 once active, 0.0 before the start

A day is completed when it has been earned (or, in calendar mode, has elapsed); reaching an
unlimited last day completes it at once, so standard-14 reads 12/14 on day 13 and 1.0 as
soon as day 13 is earned (its day 14 is unlimited). Seed 000's table counts the current day
as done (day 7 = 50%); we count only days actually completed (day 7 = 6/14 = 43%).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from services.warmup.domain.event_time import as_utc, iso
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.send_counts import SendCounters
from services.warmup.domain.state import WarmupState, WarmupStatus

ViewStatus = Literal["not_started", "warming", "suspended", "completed", "skipped", "stopped"]
# The warm-up status vocabulary of the view (shared.contract.events.WarmupView) and the IP
# status each one shows on the wire (the contract's Statuses section). An active IP's
# warm-up status says why it is active (`WarmupState.finished`).
_VIEW_STATUS: dict[WarmupStatus, ViewStatus] = {
    "not_started": "not_started",
    "warming": "warming",
    "suspended": "suspended",
    "active": "completed",
}
_IP_STATUS: dict[WarmupStatus, Literal["provisioning", "warming", "suspended", "active"]] = {
    "not_started": "provisioning",
    "warming": "warming",
    "suspended": "suspended",
    "active": "active",
}


def ip_status(state: WarmupState) -> Literal["provisioning", "warming", "suspended", "active"]:
    """The IP `status` this warm-up state shows on the wire (before cooldown/release)."""
    return _IP_STATUS[state.status]


def view_status(state: WarmupState) -> ViewStatus:
    """The view's warm-up status: an active IP's says whether its warm-up completed, was
    skipped (`auto_warmup: false`) or was stopped (`ip.warmup.stop`)."""
    if state.status == "active" and state.finished is not None:
        return state.finished
    return _VIEW_STATUS[state.status]


def progress(state: WarmupState, schedule: Schedule | None) -> float:
    """Share of the schedule's days completed, 0..1 (see the module docstring)."""
    if state.status == "active":
        return 1.0
    if state.status == "not_started" or schedule is None:
        return 0.0
    return round((state.day - 1) / schedule.length, 4)


def warmup_view(
    state: WarmupState,
    schedule: Schedule | None,
    counters: SendCounters,
    now: datetime,
    sent_today: int | None = None,
) -> dict[str, Any]:
    """The contract's `warmup` object, JSON-ready.

    Fields: `schedule`, `mode`, `day`, `progress`, `daily_limit` and `hourly_limit` (-1
    unlimited, 0 while suspended), `sent_today` (sent on the UTC day of `now`, dropped
    excluded), `started_at`, `hold_reason`, `days` [{`day`, `limit`, `sent`, `done`}];
    beyond the contract: `status` (not_started / warming / suspended / completed / skipped /
    stopped) and `suspended_until`. A skipped warm-up shows no schedule, mode, day or days:
    the IP never warmed (its state keeps the schedule a re-warm would use). `schedule` is
    the IP's schedule (None before the start is fine).
    `sent_today` overrides the count read off `counters` (a view as of a past moment).
    """
    if schedule is not None:
        state.require(schedule)
    started = state.status != "not_started" and state.finished != "skipped"
    if sent_today is None:
        sent_today = counters.day(as_utc(now).date()).sent
    daily, hourly = state.limits(schedule) if started and schedule else (UNLIMITED, UNLIMITED)
    return {
        "status": view_status(state),
        "schedule": state.schedule if started else None,
        "mode": state.mode if started else None,
        "day": state.day if started else None,
        "progress": progress(state, schedule),
        "daily_limit": daily,
        "hourly_limit": hourly,
        "sent_today": sent_today,
        "started_at": iso(state.started_at) if state.started_at else None,
        "hold_reason": state.hold_reason,
        "suspended_until": iso(state.suspended_until) if state.suspended_until else None,
        "days": _days(state, schedule, sent_today) if schedule and started else [],
    }


def _days(state: WarmupState, schedule: Schedule, sent_today: int) -> list[dict[str, Any]]:
    judged = {record.day: record.sent for record in state.history}
    in_progress = state.status in ("warming", "suspended")
    # A stopped warm-up shows how far it got: the days before the one it stopped on.
    stopped = state.status == "active" and state.finished == "stopped"
    days = []
    for entry in schedule.days:
        current = in_progress and entry.day == state.day
        done = (state.status == "active" and not stopped) or (
            (in_progress or stopped) and entry.day < state.day
        )
        days.append(
            {
                "day": entry.day,
                "limit": entry.daily_limit,
                "sent": sent_today if current else judged.get(entry.day, 0),
                "done": done,
            }
        )
    return days


def without_counts(view: dict[str, Any]) -> dict[str, Any]:
    """The view as `ip_warmup_views` keeps it: without the day's running count (`sent_today`
    and the current day's `sent`), which every send changes. A send batch then rewrites
    only the views whose state it changed; the reading side puts the count back
    (`with_counts`) from the counters, as of the stored view's day."""
    kept = {k: v for k, v in view.items() if k != "sent_today"}
    current = _current_day(view)
    kept["days"] = [
        {k: v for k, v in entry.items() if k != "sent"} if entry["day"] == current else entry
        for entry in view["days"]
    ]
    return kept


def with_counts(stored: dict[str, Any], sent_today: int) -> dict[str, Any]:
    """A view kept `without_counts`, with the day's count put back: what `warmup_view`
    renders with that `sent_today`."""
    view = dict(stored)
    view["sent_today"] = sent_today
    current = _current_day(stored)
    view["days"] = [
        {**entry, "sent": sent_today} if entry["day"] == current else entry
        for entry in stored.get("days", [])
    ]
    return view


def _current_day(view: dict[str, Any]) -> int | None:
    """The schedule day whose `sent` is the running count (`_days`: the current day of a
    warming or suspended warm-up)."""
    return view.get("day") if view.get("status") in ("warming", "suspended") else None


# What changes hour by hour without changing what the view shows.
_UNSHOWN = frozenset(
    {"closed_until", "last_send_hour", "daily_limit_reached_on", "hourly_limit_reached_at"}
)
_SHOWN = tuple(name for name in WarmupState.model_fields if name not in _UNSHOWN)


def same_view(before: WarmupState, after: WarmupState) -> bool:
    """Whether `warmup_view` shows both states alike (on the same day, with the same counts):
    they differ at most in the watermark, the last hour with sends and the limit flags."""
    return all(getattr(before, name) == getattr(after, name) for name in _SHOWN)
