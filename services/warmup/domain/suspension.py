"""Suspension: a complaint spike stops a warming IP; after the suspension period it resumes
one schedule day back."""

from __future__ import annotations

from datetime import datetime

from services.warmup.domain.event_time import as_utc, hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.send_counts import OutcomeCounts
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
    suspended = state.updated(
        **{
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
    resumed = state.updated(
        **{
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
    return Step(resumed.state.updated(closed_until=watermark), resumed.transitions)
