"""What operators and senders decide: a skipped warm-up, a stop, a manual resume, a new start
on an active IP, and a held day as an event. Pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.warmup.domain.event_time import hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import SendCounters
from services.warmup.domain.state import WarmupState
from services.warmup.domain.suspension import resume, resume_now, suspend
from services.warmup.domain.sweep import sweep
from services.warmup.domain.transitions import (
    Held,
    Resumed,
    Rewarmed,
    WarmupStarted,
    WarmupStopped,
)
from services.warmup.domain.view import progress, view_status, warmup_view
from services.warmup.domain.warmup_day import WarmupRejected, skip, start, stop

RULES = WarmupRules()
SCHEDULES = load_schedules(None)
STANDARD = SCHEDULES["standard-14"]
TEST3 = SCHEDULES["test-3"]
T0 = datetime(2026, 11, 23, 10, 17, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)


def warming(day: int = 3) -> WarmupState:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    return state.model_copy(update={"day": day})


def suspended(day: int = 3) -> WarmupState:
    return suspend(warming(day), T0 + 3 * H, "complaint_spike: test", RULES).state


# ---- auto_warmup: false ----------------------------------------------------------------------


def test_a_skipped_warmup_is_active_at_once_at_full_volume() -> None:
    state, transitions = skip(WarmupState(), STANDARD, T0)
    assert transitions == ()  # announced as ip.registered by the service
    assert (state.status, state.finished) == ("active", "skipped")
    assert state.limits(STANDARD) == (-1, -1)
    assert state.warmed_at == T0 and state.closed_until == hour_start(T0)
    view = warmup_view(state, STANDARD, SendCounters(), T0)
    assert view["status"] == "skipped"
    assert (view["daily_limit"], view["hourly_limit"]) == (-1, -1)
    assert (view["schedule"], view["day"], view["days"]) == (None, None, [])
    assert view["progress"] == 1.0


def test_only_a_not_started_warmup_is_skipped() -> None:
    with pytest.raises(WarmupRejected):
        skip(warming(), STANDARD, T0)


def test_a_skipped_ip_idle_for_30_days_warms_again() -> None:
    state = skip(WarmupState(), STANDARD, T0).state
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), T0 + 31 * DAY)
    [rewarmed] = [t for t in transitions if isinstance(t, Rewarmed)]
    assert rewarmed.at == T0 + RULES.idle_period
    assert state.status == "warming" and state.finished is None


# ---- ip.warmup.stop ----------------------------------------------------------------------------


@pytest.mark.parametrize("before", [warming, suspended])
def test_a_stop_makes_a_warming_or_suspended_ip_active_at_once(before: object) -> None:
    state = before()  # type: ignore[operator]
    at = T0 + 5 * H + timedelta(minutes=7, seconds=17)
    stopped, transitions = stop(state, at)
    assert transitions == (WarmupStopped(at=at, day=3),)
    assert transitions[0].event_type == "ip.warmup_stopped"
    assert transitions[0].key == "warmup_stopped:2026-11-23T15:24:17Z"
    assert (stopped.status, stopped.finished) == ("active", "stopped")
    assert stopped.limits(STANDARD) == (-1, -1)
    assert stopped.suspended_until is None and stopped.hold_reason is None
    view = warmup_view(stopped, STANDARD, SendCounters(), at)
    assert view["status"] == "stopped" and view["day"] == 3
    # How far it got: days 1 and 2 done, not the day it stopped on.
    assert [d["done"] for d in view["days"][:4]] == [True, True, False, False]


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (WarmupState(), "not_started"),
        (skip(WarmupState(), STANDARD, T0).state, "skipped"),
        (stop(warming(), T0).state, "stopped"),
    ],
)
def test_a_stop_on_an_ip_that_is_not_warming_is_refused_clearly(
    state: WarmupState, shown: str
) -> None:
    with pytest.raises(WarmupRejected) as refused:
        stop(state, T0 + H)
    assert refused.value.reason == "not_warming"
    assert f"not warming (warm-up {shown})" in str(refused.value)


def test_a_stopped_ip_is_re_warmed_when_idle_like_any_active_ip() -> None:
    state = stop(warming(), T0 + H).state
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), T0 + 40 * DAY)
    assert any(isinstance(t, Rewarmed) for t in transitions)


# ---- ip.warmup.start on an active IP ------------------------------------------------------------


@pytest.mark.parametrize(
    "active",
    [
        skip(WarmupState(), STANDARD, T0).state,
        stop(warming(), T0).state,
        sweep(start(WarmupState(), TEST3, T0, "calendar").state, TEST3, RULES, SendCounters(),
              T0 + 3 * DAY).state,
    ],
    ids=["skipped", "stopped", "completed"],
)  # fmt: skip
def test_a_start_on_an_active_ip_begins_a_new_warmup_on_day_1(active: WarmupState) -> None:
    assert active.status == "active"
    at = T0 + 2 * DAY + 3 * H
    state, transitions = start(active, TEST3, at, "earned")
    assert transitions == (WarmupStarted(at=at, schedule="test-3", mode="earned"),)
    assert (state.status, state.finished, state.day, state.schedule) == (
        "warming", None, 1, "test-3"
    )  # fmt: skip
    assert state.limits(TEST3) == (10, 5)
    # Judged as a warming IP from the start's hour on, even if its watermark was further.
    assert state.closed_until == hour_start(at) and state.history == ()


# ---- ip.warmup.resume -------------------------------------------------------------------------


def test_a_manual_resume_is_the_automatic_one_at_the_commands_time() -> None:
    state = suspended(day=3)
    at = T0 + 6 * H + timedelta(minutes=20)
    manual = resume_now(state, at)
    automatic = resume(state, at)
    [resumed] = manual.transitions
    assert resumed == Resumed(at=at, day_from=3, day_to=2) == automatic.transitions[0]
    assert manual.state.status == "warming" and manual.state.day == 2
    assert manual.state.judged_since == hour_start(at)
    # The suspended hours before it are passed without a verdict.
    assert manual.state.closed_until == hour_start(at)


def test_a_manual_resume_after_the_automatic_one_is_due_is_refused() -> None:
    state = suspended()
    assert state.suspended_until is not None
    with pytest.raises(WarmupRejected, match="resumes then on its own"):
        resume_now(state, state.suspended_until)


@pytest.mark.parametrize(
    "state", [WarmupState(), warming(), skip(WarmupState(), STANDARD, T0).state]
)
def test_a_resume_on_an_ip_that_is_not_suspended_is_refused(state: WarmupState) -> None:
    with pytest.raises(WarmupRejected) as refused:
        resume_now(state, T0 + H)
    assert refused.value.reason == "not_suspended"


# ---- a held day is an event -------------------------------------------------------------------


def test_each_held_day_is_one_ip_warmup_held_with_its_reason() -> None:
    state = start(WarmupState(), STANDARD, T0, "earned").state
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), T0 + 2 * DAY)
    held = [t for t in transitions if isinstance(t, Held)]
    assert [(t.event_type, t.key, t.causes) for t in held] == [
        ("ip.warmup_held", "held:2026-11-23", ("low_volume",)),
        ("ip.warmup_held", "held:2026-11-24", ("low_volume",)),
    ]
    assert state.hold_reason is not None and state.hold_reason.startswith("low_volume")


def test_view_statuses_of_an_active_ip_say_why_it_is_active() -> None:
    completed = sweep(
        start(WarmupState(), TEST3, T0, "calendar").state,
        TEST3,
        RULES,
        SendCounters(),
        T0 + 3 * DAY,
    ).state
    assert view_status(completed) == "completed" and progress(completed, TEST3) == 1.0
    assert view_status(skip(WarmupState(), STANDARD, T0).state) == "skipped"
    assert view_status(stop(warming(), T0).state) == "stopped"
    assert view_status(warming()) == "warming"
