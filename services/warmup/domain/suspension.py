"""Suspension: a complaint spike stops a warming IP; after the suspension period it resumes
one schedule day back."""

from __future__ import annotations

from datetime import datetime

from services.warmup.domain.event_time import as_utc, hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.send_counts import OutcomeCounts
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.transitions import Resumed, Suspended


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
