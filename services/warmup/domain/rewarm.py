"""Re-warming: an active IP that sends nothing for the idle period must warm again."""

from __future__ import annotations

from datetime import datetime

from services.warmup.domain.event_time import HOUR, as_utc, hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.transitions import Rewarmed


def idle_since(state: WarmupState) -> datetime | None:
    """When an active IP last showed activity: the end of its last hour with sends, or the
    moment it was warmed if it has sent nothing since."""
    moments = [m for m in (state.warmed_at,) if m is not None]
    if state.last_send_hour is not None:
        moments.append(state.last_send_hour + HOUR)
    return max(moments) if moments else None


def idle_deadline(state: WarmupState, rules: WarmupRules) -> datetime | None:
    """When an active IP must warm again if it sends nothing before then; None otherwise."""
    if state.status != "active":
        return None
    since = idle_since(state)
    return since + rules.idle_period if since is not None else None


def rewarm(state: WarmupState, at: datetime, rules: WarmupRules, schedule: Schedule) -> Step:
    """Put an active IP back to `warming` on `rules.rewarm_day` at event time `at`.

    A new warm-up: `started_at` becomes `at` and the day history starts over.
    """
    if state.status != "active":
        return Step(state)
    at = as_utc(at)
    day = min(rules.rewarm_day, schedule.last_limited_day)
    since = idle_since(state) or at
    rewarmed = state.updated(
        **{
            "status": "warming",
            "schedule": schedule.name,
            "day": day,
            "started_at": at,
            "judged_since": hour_start(at),
            "warmed_at": None,
            "finished": None,
            "hold_reason": None,
            "history": (),
        }
    )
    return Step(rewarmed, (Rewarmed(at=at, day=day, idle_since=since),))
