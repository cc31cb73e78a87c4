"""The warm-up day: starting a warm-up, and closing a UTC day into an advance, a hold, or
the end of the schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.warmup.domain.event_time import DAY, as_utc, day_start, hour_start
from services.warmup.domain.rules import Mode, WarmupRules
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.send_counts import OutcomeCounts
from services.warmup.domain.state import DayRecord, Step, WarmupState
from services.warmup.domain.transitions import (
    Advanced,
    Held,
    HoldCause,
    Transition,
    Warmed,
    WarmupStarted,
    WarmupStopped,
)


class WarmupRejected(ValueError):
    """A start the rules refuse; `reason` is a short code for `command.rejected`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def start(state: WarmupState, schedule: Schedule, at: datetime, mode: Mode) -> Step:
    """Start the warm-up at event time `at`: status `warming`, day 1 of `schedule`.

    The UTC day containing `at` is the first day judged, however late in the day the start.
    An `active` IP (warmed, skipped or stopped) starts a new warm-up: its hours are judged
    as a warming IP's from the start's hour on. Raises `WarmupRejected` while the IP is
    warming or suspended.
    """
    if state.status in ("warming", "suspended"):
        raise WarmupRejected("already_started", f"warm-up is already {state.status}")
    at = as_utc(at)
    started = state.updated(
        **{
            "status": "warming",
            "schedule": schedule.name,
            "mode": mode,
            "day": 1,
            "started_at": at,
            # An active IP's watermark may be past the start (its own sends were read
            # further): its hours from the start on are judged again, as a warming IP's, so
            # the outcome does not depend on how far its partition had been read.
            "closed_until": hour_start(at),
            "judged_since": hour_start(at),
            "hold_reason": None,
            "suspended_at": None,
            "suspended_until": None,
            "warmed_at": None,
            "finished": None,
            "history": (),
        }
    )
    return Step(started, (WarmupStarted(at=at, schedule=schedule.name, mode=mode),))


def skip(state: WarmupState, schedule: Schedule, at: datetime) -> Step:
    """An IP requested with `auto_warmup: false`: `active` at once, at full volume, warm-up
    status `skipped`. `schedule` is kept for the idle re-warm, which applies to every active
    IP; the idle period counts from `at`. Nothing is emitted for it: the IP is announced
    `ip.registered`. Raises `WarmupRejected` unless the warm-up is `not_started`."""
    if state.status != "not_started":
        raise WarmupRejected("already_started", f"warm-up is already {state.status}")
    at = as_utc(at)
    skipped = state.updated(
        **{
            "status": "active",
            "finished": "skipped",
            "schedule": schedule.name,
            "day": 0,
            "warmed_at": at,
            "closed_until": hour_start(at),
            "hold_reason": None,
        }
    )
    return Step(skipped)


def stop(state: WarmupState, at: datetime) -> Step:
    """`ip.warmup.stop` at event time `at`: a warming or suspended IP becomes `active` at once,
    at full volume, warm-up status `stopped` (its day and history stay, to show how far it
    got). The idle period counts from `at`. Raises `WarmupRejected` (`not_warming`) for an
    IP that is not warming or suspended."""
    if state.status not in ("warming", "suspended"):
        shown = state.finished if state.status == "active" and state.finished else state.status
        raise WarmupRejected(
            "not_warming", f"the IP is not warming (warm-up {shown}): there is nothing to stop"
        )
    at = as_utc(at)
    stopped = state.updated(
        **{
            "status": "active",
            "finished": "stopped",
            "warmed_at": at,
            "suspended_at": None,
            "suspended_until": None,
            "hold_reason": None,
        }
    )
    return Step(stopped, (WarmupStopped(at=at, day=state.day),))


def required_deliveries(daily_limit: int, share: float) -> int:
    """Accepted messages needed to earn the next day: ceil(share x limit), exactly."""
    # Decimal, not float: 0.9 * 50 must be 45, never 45.000000000000004 -> 46.
    return math.ceil(Decimal(str(share)) * daily_limit)


@dataclass(frozen=True, slots=True)
class DayVerdict:
    advance: bool
    causes: tuple[HoldCause, ...] = ()
    reason: str | None = None


def judge_day(
    totals: OutcomeCounts, daily_limit: int, mode: Mode, rules: WarmupRules
) -> DayVerdict:
    """Did this UTC day's sending earn the next schedule day?

    `calendar` mode always advances. `earned` mode advances when accepted messages reach
    `advance_share` of the daily limit and both the bounce rate and the complaint rate stayed
    under their hold thresholds; otherwise it holds, naming every cause (worst first).
    """
    if mode == "calendar":
        return DayVerdict(advance=True)
    if daily_limit == UNLIMITED:
        raise ValueError("an unlimited day is never judged: reaching it finishes the warm-up")
    causes: list[HoldCause] = []
    reasons: list[str] = []
    if totals.accepted and totals.complaint_rate >= rules.hold_complaint_rate:
        causes.append("complaint_rate")
        reasons.append(
            f"complaint_rate: {totals.complaint_rate:.2%} of accepted mail, "
            f"hold at {rules.hold_complaint_rate:.2%}"
        )
    if totals.sent and totals.bounce_rate >= rules.hold_bounce_rate:
        causes.append("bounce_rate")
        reasons.append(
            f"bounce_rate: {totals.bounce_rate:.2%} of sent mail, "
            f"hold at {rules.hold_bounce_rate:.2%}"
        )
    needed = required_deliveries(daily_limit, rules.advance_share)
    if totals.accepted < needed:
        causes.append("low_volume")
        reasons.append(
            f"low_volume: delivered {totals.accepted} of the {needed} needed "
            f"({rules.advance_share:.0%} of {daily_limit})"
        )
    if not causes:
        return DayVerdict(advance=True)
    return DayVerdict(advance=False, causes=tuple(causes), reason="; ".join(reasons))


def close_day(
    state: WarmupState,
    on: date,
    totals: OutcomeCounts,
    rules: WarmupRules,
    schedule: Schedule,
) -> Step:
    """Judge the UTC day `on` with its send totals: advance, hold, or finish the schedule.

    Only a `warming` IP is judged: a suspended IP's days pass without a verdict. Advancing
    onto an unlimited last day, or earning the last limited day, makes the IP `active`
    (`Warmed`). This moves no watermark; `sweep` calls it at each UTC midnight.
    """
    if state.status != "warming":
        return Step(state)
    today = schedule.day(state.day)
    verdict = judge_day(totals, today.daily_limit, state.mode, rules)
    closed_at = day_start(on) + DAY
    if not verdict.advance:
        held = state.updated(
            **{
                "hold_reason": verdict.reason,
                "history": state.record(
                    DayRecord(day=state.day, on=on, sent=totals.sent, done=False)
                ),
            }
        )
        reason = verdict.reason or ""
        return Step(held, (Held(on=on, day=state.day, causes=verdict.causes, reason=reason),))

    history = state.record(DayRecord(day=state.day, on=on, sent=totals.sent, done=True))
    transitions: list[Transition] = []
    next_day = state.day + 1
    if next_day > schedule.length:
        # The last day was limited and is now earned: the schedule is finished.
        warmed = state.updated(
            **{
                "status": "active",
                "finished": "completed",
                "hold_reason": None,
                "warmed_at": closed_at,
                "history": history,
            }
        )
        return Step(warmed, (Warmed(on=on, day=state.day),))
    transitions.append(Advanced(on=on, day_from=state.day, day_to=next_day))
    update: dict[str, object] = {"day": next_day, "hold_reason": None, "history": history}
    if schedule.day(next_day).unlimited:
        update |= {"status": "active", "finished": "completed", "warmed_at": closed_at}
        transitions.append(Warmed(on=on, day=next_day))
    return Step(state.updated(**update), tuple(transitions))
