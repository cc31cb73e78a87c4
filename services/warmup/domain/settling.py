"""Which IPs a batch of sends must bring up to date, and which it may only count.

Bringing an IP up to date (`catch_up`) closes the hours before its `now` and then checks
the limits of its current hour. When `now` is still in the hour the IP was last brought up
to date to (`closed_until`), there is no hour to close, so the only thing a batch could
decide is a limit reached in that hour. Limits in force change only at hour boundaries and
counts only grow, so a limit can be reached only by a count the batch raised: when neither
the day's nor the current hour's count moved to its limit, catching up would decide
nothing, and the batch only counts the IP's sends. Every other IP (a new hour, a count at
a limit, a warm-up not started, stopped or on an unloaded schedule) takes the general path.

The decision is conservative: the day's count here is the whole day's, which is never
below what the daily limit is compared with (the day up to the current hour), so an IP
whose limit could be reached is always brought up to date by the batch that holds the
crossing send.
"""

from __future__ import annotations

from datetime import datetime

from services.warmup.domain.event_time import hour_start
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.state import WarmupState


def must_settle(
    state: WarmupState,
    schedule: Schedule | None,
    now: datetime,
    stopped_by: str | None,
    day_sent: int | None,
    hour_sent: int | None,
) -> bool:
    """Whether a batch that counted sends for this IP must bring it up to date at `now`.

    `day_sent` and `hour_sent` are the IP's sends (dropped excluded) after the batch on the
    UTC day and in the hour of `state.closed_until`, or None when the batch counted none
    there (the count is then the one the IP was last brought up to date with)."""
    if schedule is None or stopped_by is not None or state.closed_until is None:
        return True
    if hour_start(now) != state.closed_until:
        return True
    if state.status != "warming":
        return False  # only a warming IP has limits to reach
    daily, hourly = state.limits(schedule)
    hour = state.closed_until
    if (
        daily != UNLIMITED
        and state.daily_limit_reached_on != hour.date()
        and day_sent is not None
        and day_sent >= daily
    ):
        return True
    return (
        hourly != UNLIMITED
        and state.hourly_limit_reached_at != hour
        and hour_sent is not None
        and hour_sent >= hourly
    )
