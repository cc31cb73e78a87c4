"""An active IP idle for the idle period warms again on the re-warm day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.warmup.domain.event_time import HOUR
from services.warmup.domain.rewarm import idle_deadline, idle_since, rewarm
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import Send, SendCounters, tally
from services.warmup.domain.state import DayRecord, WarmupState
from services.warmup.domain.sweep import sweep
from services.warmup.domain.transitions import Rewarmed, Transition

IP = "192.0.2.30"
RULES = WarmupRules()
SCHEDULES = load_schedules(None)
STANDARD = SCHEDULES["standard-14"]
WARMED = datetime(2026, 11, 1, tzinfo=UTC)


def active() -> WarmupState:
    return WarmupState(
        status="active",
        schedule="standard-14",
        day=14,
        started_at=datetime(2026, 10, 18, 9, tzinfo=UTC),
        closed_until=WARMED,
        warmed_at=WARMED,
        history=(DayRecord(day=1, on=datetime(2026, 10, 18).date(), sent=50, done=True),),
    )


def sent_at(*moments: datetime) -> SendCounters:
    return SendCounters.from_tally(tally(Send(IP, m, "delivered") for m in moments), IP)


def test_idle_deadline_counts_from_the_last_send_or_the_warming() -> None:
    state = active()
    assert idle_since(state) == WARMED
    assert idle_deadline(state, RULES) == WARMED + timedelta(days=30)
    last = datetime(2026, 11, 5, 13, tzinfo=UTC)
    assert idle_deadline(state.model_copy(update={"last_send_hour": last}), RULES) == (
        last + HOUR + timedelta(days=30)
    )
    assert idle_deadline(state.model_copy(update={"status": "warming"}), RULES) is None


def test_rewarm_returns_to_warming_on_the_configured_day() -> None:
    at = WARMED + timedelta(days=30)
    state, (event,) = rewarm(active(), at, WarmupRules(rewarm_day=3), STANDARD)
    assert event == Rewarmed(at=at, day=3, idle_since=WARMED)
    assert event.event_type == "ip.warmup_started"
    assert state.status == "warming" and state.day == 3
    assert state.started_at == at and state.warmed_at is None and state.history == ()
    assert state.limits(STANDARD) == (250, 32)


def test_rewarm_day_is_clamped_to_the_last_limited_day() -> None:
    state = rewarm(active(), WARMED, WarmupRules(rewarm_day=40), STANDARD).state
    assert state.day == 13


def test_sweep_rewarms_an_ip_that_sent_nothing_for_30_days() -> None:
    state, transitions = sweep(
        active(), STANDARD, RULES, SendCounters(), WARMED + timedelta(days=29)
    )
    assert transitions == ()
    state, transitions = sweep(state, STANDARD, RULES, SendCounters(), WARMED + timedelta(days=31))
    assert transitions[0] == Rewarmed(at=WARMED + timedelta(days=30), day=1, idle_since=WARMED)
    assert state.status == "warming" and state.day == 1
    # The re-warm day is judged like any other: the day it began closes, holding.
    assert state.hold_reason is not None and state.hold_reason.startswith("low_volume")


def test_sending_keeps_an_active_ip_warm() -> None:
    counters = sent_at(WARMED + timedelta(days=20, hours=5))
    state, transitions = sweep(active(), STANDARD, RULES, counters, WARMED + timedelta(days=45))
    assert transitions == () and state.status == "active"
    assert state.last_send_hour == WARMED + timedelta(days=20, hours=5)
    state, transitions = sweep(state, STANDARD, RULES, counters, WARMED + timedelta(days=51))
    expected_at = WARMED + timedelta(days=50, hours=6)
    assert transitions[0] == Rewarmed(
        at=expected_at, day=1, idle_since=WARMED + timedelta(days=20, hours=6)
    )


def test_a_send_after_the_deadline_does_not_cancel_the_rewarm() -> None:
    # Counted before the sweep ran, but it came after 30 silent days: it is sent by a
    # re-warming IP, not proof that the IP never went cold.
    late = WARMED + timedelta(days=31, hours=2)
    state, transitions = sweep(
        active(), STANDARD, RULES, sent_at(late), WARMED + timedelta(days=32)
    )
    assert isinstance(transitions[0], Rewarmed)
    assert transitions[0].at == WARMED + timedelta(days=30)
    assert state.last_send_hour == late


def test_one_sweep_over_a_year_equals_daily_sweeps() -> None:
    # An active IP's sweep jumps over quiet hours to its next send or idle deadline; the
    # jump must not change what is decided.
    far = WARMED + timedelta(days=365)
    jumped = sweep(active(), STANDARD, RULES, SendCounters(), far)
    state = active()
    stepped: list[Transition] = []
    for day in range(1, 366):
        state, transitions = sweep(
            state, STANDARD, RULES, SendCounters(), WARMED + timedelta(days=day)
        )
        stepped.extend(transitions)
    assert jumped.state == state
    assert list(jumped.transitions) == stepped
