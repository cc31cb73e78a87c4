"""Daily and hourly limits: notice, once, when an IP reaches them.

Only the IP's current hour (the hour at its watermark) is looked at, with the day's sends up
to and including that hour. The limit in force cannot change while the watermark stays in
an hour (every state change happens at an hour boundary), and counts only grow, so a limit
is reported exactly once whichever batch, or sweep, first sees the count reach it, and with
the same values. Sends beyond a limit are still counted; nothing here refuses them.
"""

from __future__ import annotations

from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.send_counts import SendCounters
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.transitions import DailyLimitReached, HourlyLimitReached, Transition


def check_limits(state: WarmupState, schedule: Schedule, counters: SendCounters) -> Step:
    """Report `DailyLimitReached` / `HourlyLimitReached` for the IP's current hour and day.

    Call after counting a batch (and `sweep` calls it at every hour it passes). Only a
    `warming` IP has limits to reach.
    """
    if state.status != "warming" or state.closed_until is None:
        return Step(state)
    state.require(schedule)
    hour = state.closed_until
    today = hour.date()
    daily, hourly = state.limits(schedule)
    transitions: list[Transition] = []
    update: dict[str, object] = {}

    if daily != UNLIMITED and state.daily_limit_reached_on != today:
        # The whole day so far counts, sends before a mid-day start or resume included:
        # `sent_today` is what the day's limit is compared with.
        if counters.day_through(hour).sent >= daily:
            transitions.append(DailyLimitReached(on=today, day=state.day, limit=daily, at=hour))
            update["daily_limit_reached_on"] = today

    if hourly != UNLIMITED and state.hourly_limit_reached_at != hour:
        if counters.hour(hour).sent >= hourly:
            transitions.append(HourlyLimitReached(hour=hour, day=state.day, limit=hourly))
            update["hourly_limit_reached_at"] = hour

    if not transitions:
        return Step(state)
    return Step(state.updated(**update), tuple(transitions))
