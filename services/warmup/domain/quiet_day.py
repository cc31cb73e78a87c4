"""A quiet day: one on which a warming IP's hours can decide nothing.

Within a UTC day a warming IP's hours can decide only a limit reached or a complaint spike
(its day closes, advancing or holding, only at midnight). Each needs a count at its
threshold:
- the daily limit, the day's count up to an hour (unless it was reached already that day,
  which it is only once);
- the hourly limit, one hour's count;
- a complaint spike, at least `suspend_min_sends` sends in its window, which lies within the
  day.

So while the day's count (and the largest hour's count, where it is known) stays below every
threshold, judging the day's hours one by one decides nothing: the sweep may pass over them
in one step, and a batch may leave the IP to be judged later, deciding then the same things.
"""

from __future__ import annotations

from datetime import date

from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.state import WarmupState


def quiet(
    state: WarmupState,
    schedule: Schedule,
    rules: WarmupRules,
    day: date,
    day_sent: int,
    hour_peak: int | None = None,
) -> bool:
    """Whether the warming IP's hours of `day` still to judge can decide nothing.

    `day_sent` is the day's count (dropped excluded), or more: sends read ahead may be in
    it. `hour_peak` is the largest count of an hour still to judge, or more; None when not
    known (the day's count bounds it)."""
    daily, hourly = state.limits(schedule)
    if day_sent >= rules.suspend_min_sends:
        return False
    if daily != UNLIMITED and state.daily_limit_reached_on != day and day_sent >= daily:
        return False
    peak = day_sent if hour_peak is None else hour_peak
    return hourly == UNLIMITED or peak < hourly
