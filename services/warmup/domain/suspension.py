"""Suspension: a complaint spike stops a warming IP; after the suspension period it resumes
one schedule day back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from services.warmup.domain.event_time import HOUR, as_utc, day_start, hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.send_counts import OUTCOMES, OutcomeCounts, SendCounters
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.transitions import Resumed, Suspended
from services.warmup.domain.warmup_day import WarmupRejected


def complaint_spike(counts: OutcomeCounts, rules: WarmupRules) -> str | None:
    """The reason to suspend, or None: a complaint rate at or above `suspend_complaint_rate`
    over at least `suspend_min_sends` sends."""
    if counts.sent < rules.suspend_min_sends:
        return None
    if counts.complaint_rate < rules.suspend_complaint_rate:
        return None
    return (
        f"complaint_spike: {counts.complaint_rate:.2%} complaints over {counts.sent} sends, "
        f"suspend at {rules.suspend_complaint_rate:.2%}"
    )


def suspend(state: WarmupState, at: datetime, reason: str, rules: WarmupRules) -> Step:
    """Suspend a warming IP at event time `at` for `rules.suspension_period`."""
    if state.status != "warming":
        return Step(state)
    at = as_utc(at)
    until = at + rules.suspension_period
    suspended = state.model_copy(
        update={
            "status": "suspended",
            "suspended_at": at,
            "suspended_until": until,
            "hold_reason": reason,
        }
    )
    return Step(suspended, (Suspended(at=at, until=until, reason=reason),))


def resume(state: WarmupState, at: datetime) -> Step:
    """Resume a suspended IP at event time `at`, one schedule day back (never below day 1)."""
    if state.status != "suspended":
        return Step(state)
    at = as_utc(at)
    day_to = max(1, state.day - 1)
    resumed = state.model_copy(
        update={
            "status": "warming",
            "day": day_to,
            "suspended_at": None,
            "suspended_until": None,
            "hold_reason": None,
            # The spike that suspended the IP must not suspend it again on resuming.
            "judged_since": hour_start(at),
        }
    )
    return Step(resumed, (Resumed(at=at, day_from=state.day, day_to=day_to),))


def resume_now(state: WarmupState, at: datetime) -> Step:
    """`ip.warmup.resume` at event time `at`: a suspended IP resumes now, one schedule day
    back, exactly as the automatic resume would (`Resumed`). Hours before `at` passed
    suspended: nothing is judged in them, so the watermark moves to the resume's hour.

    Raises `WarmupRejected` (`not_suspended`) for an IP that is not suspended, or whose
    automatic resume falls at or before `at` (it resumes then, on its own clock; answering
    by the command instead would depend on how far that clock had been read)."""
    if state.status != "suspended":
        raise WarmupRejected(
            "not_suspended", f"the IP is not suspended (warm-up {state.status}): nothing to resume"
        )
    at = as_utc(at)
    if state.suspended_until is not None and state.suspended_until <= at:
        raise WarmupRejected(
            "not_suspended",
            f"the suspension ends at {state.suspended_until.isoformat()}, before this command: "
            "the IP resumes then on its own",
        )
    resumed = resume(state, at)
    watermark = state.closed_until
    if watermark is None or watermark < hour_start(at):
        watermark = hour_start(at)
    return Step(resumed.state.model_copy(update={"closed_until": watermark}), resumed.transitions)


def spike_send(
    transition: Suspended,
    judged_since: datetime | None,
    counters: SendCounters,
    batch: Sequence[tuple[str, datetime, str]],
    rules: WarmupRules,
) -> str | None:
    """The id of the send after which the complaint-spike check first held, when it is in
    `batch` (the IP's sends counted by the batch being applied, in partition order); None
    when the check already held on the sends counted before the batch.

    The window is the one `sweep` checked when it suspended at `transition.at` (an hour's
    end): the day so far, from the current phase's start. `counters` include the batch.
    """
    end = transition.at
    hour = end - HOUR
    start = max(day_start(hour.date()), judged_since or hour)
    inside = [(event_id, outcome) for event_id, at, outcome in batch if start <= as_utc(at) < end]
    total = counters.between(start, end)
    taken = OutcomeCounts.of(Counter(outcome for _, outcome in inside))
    running = OutcomeCounts(
        *(getattr(total, o) - getattr(taken, o) for o in OUTCOMES)  # before the batch
    )
    if complaint_spike(running, rules) is not None:
        return None
    for event_id, outcome in inside:
        running = running + OutcomeCounts.of({outcome: 1})
        if complaint_spike(running, rules) is not None:
            return event_id
    return None
