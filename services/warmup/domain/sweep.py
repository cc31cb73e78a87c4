"""The sweep: close every UTC hour and day that ended before `now`, in event-time order.

This is the one entry point a batch handler and the periodic sweep both call, with `now`
an event-time watermark (never the worker's clock). Hour by hour it reports limits reached,
suspends on a complaint spike, closes each UTC day (advance, hold, warmed), resumes a
suspended IP whose period is over, and re-warms an active IP idle for too long. The
watermark (`closed_until`) only moves forward, so a second call with the same `now`
decides nothing new.

Everything is decided from complete hours, so the outcome depends on the set of sends
counted, not on their order or batching, provided every send of an hour is counted before
a sweep passes that hour (the service's watermark allows for lateness).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.warmup.domain.daily_limit import check_limits
from services.warmup.domain.event_time import HOUR, day_start, hour_of, hour_start
from services.warmup.domain.quiet_day import quiet
from services.warmup.domain.rewarm import idle_deadline, rewarm
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule
from services.warmup.domain.send_counts import SendCounters
from services.warmup.domain.state import Step, WarmupState, steps
from services.warmup.domain.suspension import complaint_spike, resume, suspend
from services.warmup.domain.transitions import Transition
from services.warmup.domain.warmup_day import close_day

_INSTANT = timedelta(microseconds=1)


def sweep(
    state: WarmupState,
    schedule: Schedule,
    rules: WarmupRules,
    counters: SendCounters,
    now: datetime,
) -> Step:
    """Close every hour and UTC day that ended at or before `now`; idempotent.

    `counters` must hold the IP's sends from `state.current_date` on (the hours being
    closed and the current one). Returns the new state and the transitions in event-time
    order. A warm-up that has not started has nothing to close.
    """
    if state.closed_until is None:
        return Step(state)
    state.require(schedule)
    target = hour_start(now)
    done: list[tuple[Transition, WarmupState]] = []

    def apply(step: Step) -> WarmupState:
        done.extend(step.moments())
        return step.state

    while state.closed_until is not None and state.closed_until < target:
        hour = state.closed_until
        end = hour + HOUR
        entering = state
        state = apply(check_limits(state, schedule, counters))

        counts = counters.hour(hour)
        if counts.sent and (state.last_send_hour is None or hour > state.last_send_hour):
            state = state.updated(last_send_hour=hour)

        # The complaint-spike check runs over the day so far, from the start of the current
        # phase; an hour without sends cannot change its verdict.
        if state.status == "warming" and counts.sent:
            since = max(day_start(hour.date()), state.judged_since or hour)
            reason = complaint_spike(counters.between(since, end), rules)
            if reason is not None:
                state = apply(suspend(state, end, reason, rules))

        if end.hour == 0:
            closing = hour.date()
            state = apply(close_day(state, closing, counters.day(closing), rules, schedule))

        if state.status == "suspended" and state.suspended_until is not None:
            if state.suspended_until <= end:
                state = apply(resume(state, state.suspended_until))

        deadline = idle_deadline(state, rules)
        if deadline is not None and deadline <= end:
            state = apply(rewarm(state, deadline, rules, schedule))

        stop = _next_stop(entering, state, schedule, rules, counters, end, target)
        if stop > end:
            # Hours jumped over (a quiet day's) may have had sends: the last of them is the
            # IP's last hour with sends, as going hour by hour would have noted.
            skipped = counters.last_hour_with_sends_before(stop)
            if (
                skipped is not None
                and skipped >= end
                and (state.last_send_hour is None or skipped > state.last_send_hour)
            ):
                state = state.updated(last_send_hour=skipped)
        state = state.updated(closed_until=stop)

    state = apply(check_limits(state, schedule, counters))
    return steps(state, done)


def _next_stop(
    entering: WarmupState,
    state: WarmupState,
    schedule: Schedule,
    rules: WarmupRules,
    counters: SendCounters,
    end: datetime,
    target: datetime,
) -> datetime:
    """The next hour the sweep must look at, after the hour ending at `end` (`entering`: the
    state as that hour began).

    An active IP has no limits and no days to judge, so the sweep may jump to its next send
    or its idle deadline. A warming IP whose limits did not change in the hour (same status
    and day) may jump over the hours of the same UTC day without sends: in such an hour the
    day's count is the one just checked against the same limit (reached once, or not at
    all), the hour's count is 0, and nothing else is judged but at the day's last hour, which
    is never jumped over. On a quiet day (`quiet_day`: no hour left can reach a limit or
    suspend) it jumps over the hours with sends too (the caller notes the last of them).
    Other statuses go hour by hour."""
    if state.status == "warming":
        if entering.status != "warming" or entering.day != state.day or end.hour == 0:
            return end
        limits = state.limits(schedule)
        if limits[1] == 0:
            return end  # an hourly limit of 0 is reached by an hour without sends
        stops = [target, hour_of(end.date(), 23)]
        day = end.date()
        peak = max(counts.sent for counts in counters.day_hours(day)[end.hour :])
        if not quiet(state, schedule, rules, day, counters.day(day).sent, peak):
            next_send = counters.next_hour_with_sends(end)
            if next_send is not None:
                stops.append(next_send)
        return max(end, min(stops))
    if state.status != "active":
        return end
    stops = [target]
    next_send = counters.next_hour_with_sends(end)
    if next_send is not None:
        stops.append(next_send)
    deadline = idle_deadline(state, rules)
    if deadline is not None:
        # The hour whose end reaches the deadline.
        stops.append(hour_start(deadline - _INSTANT))
    return max(end, min(stops))
