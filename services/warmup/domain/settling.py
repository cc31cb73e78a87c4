"""Which IPs a batch of sends must bring up to date, and which it may only count.

Bringing an IP up to date (`catch_up`) closes the hours before its `now` and then checks
the limits of its current hour. A batch brings an IP up to date only when that could decide
something; otherwise it only counts the IP's sends, and the IP is brought up to date later
(by a batch that must, or by the close-days sweep), deciding then exactly what it would have
decided now, with the same event ids, times, data and causes. What it skips is bookkeeping:
the watermark (`closed_until`) and the last hour with sends move later, in one step.

- **`now` still in the watermark's hour**: there is no hour to close, so the only thing a
  batch could decide is a limit reached in that hour. Limits in force change only at hour
  boundaries and counts only grow, so a limit can be reached only by a count the batch
  raised: when neither the day's nor the current hour's count moved to its limit, catching
  up decides nothing.
- **Hours to close, all on the watermark's UTC day** (no day closes): a warming IP can be
  decided only a limit or a complaint spike, each of which needs its threshold of the day's
  or an hour's sends, so a quiet day (`quiet_day`) decides nothing. The batch knows the
  day's count from its upsert; where that count alone does not show the hours below the
  hourly limit, their largest count (`hour_peak`) is read. Both cover the rest of the day,
  sends read ahead of the clock included, so with the sends counted so far nothing is left
  to decide that day (`quiet_until`: the close-days sweep leaves the IP alone until then).
  An active IP can be decided only its re-warm, and a suspended one its resume: neither
  when that moment lies after the hours to close. (An active IP's idle deadline read off the
  state as it stands is never later than the one the skipped hours would give: they can only
  add a later hour with sends.)
- **Anything else** (a day closes, a warm-up not started, stopped or on an unloaded
  schedule, a clock behind the watermark) takes the general path. A day closing always
  does, so that the IP's view is rewritten for the new day.

The decision is conservative: the day's count here is the whole day's, sends read ahead of
the clock included, which is never below what any threshold is compared with; so an IP
whose limit or spike could be reached is always brought up to date by the batch that holds
the crossing send.
"""

from __future__ import annotations

from datetime import datetime

from services.warmup.domain.event_time import DAY, day_start, hour_start
from services.warmup.domain.quiet_day import quiet
from services.warmup.domain.rewarm import idle_deadline
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.state import WarmupState


def must_settle(
    state: WarmupState,
    schedule: Schedule | None,
    rules: WarmupRules,
    now: datetime,
    stopped_by: str | None,
    day_sent: int | None,
    hour_sent: int | None,
    hour_peak: int | None = None,
) -> bool:
    """Whether a batch that counted sends for this IP must bring it up to date at `now`.

    `day_sent` and `hour_sent` are the IP's sends (dropped excluded) after the batch on the
    UTC day and in the hour of `state.closed_until`, or None when the batch counted none
    there (the count is then the one the IP was last brought up to date with). `hour_peak`
    is the largest count of an hour of that day from the watermark's on, when it is known."""
    if schedule is None or stopped_by is not None or state.closed_until is None:
        return True
    watermark = state.closed_until
    target = hour_start(now)
    if target == watermark:
        return _limit_in_hour(state, schedule, day_sent, hour_sent)
    if target < watermark or target.date() != watermark.date():
        return True
    return _decision_in_day(state, schedule, rules, target, day_sent, hour_peak)


def _limit_in_hour(
    state: WarmupState, schedule: Schedule, day_sent: int | None, hour_sent: int | None
) -> bool:
    """Whether the batch's counts can reach a limit in the watermark's own hour."""
    if state.status != "warming":
        return False  # only a warming IP has limits to reach
    daily, hourly = state.limits(schedule)
    hour = state.closed_until
    assert hour is not None
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


def _decision_in_day(
    state: WarmupState,
    schedule: Schedule,
    rules: WarmupRules,
    target: datetime,
    day_sent: int | None,
    hour_peak: int | None,
) -> bool:
    """Whether closing the hours from the watermark up to `target`, all of one UTC day, can
    decide anything."""
    if state.status == "warming":
        if day_sent is None:
            return True  # the day's count is not known here
        return not quiet(state, schedule, rules, target.date(), day_sent, hour_peak)
    if state.status == "active":
        deadline = idle_deadline(state, rules)
        return deadline is not None and deadline <= target
    if state.status == "suspended":
        return state.suspended_until is None or state.suspended_until <= target
    return True


def quiet_until(state: WarmupState, rules: WarmupRules) -> datetime:
    """For an IP a batch leaves as it stands (`must_settle` said no, with hours to close):
    the hour from which the close-days sweep must judge it again should no new send come.
    Its sends counted so far decide nothing for the rest of its watermark's day (`quiet`
    covers the day's count and every hour of it from the watermark on), so that is the end
    of the day (its day closes), or before it the hour of its resume or its idle deadline."""
    watermark = state.closed_until
    if watermark is None:
        raise ValueError("an IP not started has no watermark to be left at")
    moments = [day_start(watermark.date()) + DAY]
    if state.status == "suspended" and state.suspended_until is not None:
        moments.append(hour_start(state.suspended_until))
    deadline = idle_deadline(state, rules)
    if deadline is not None:
        moments.append(hour_start(deadline))
    return min(moments)
