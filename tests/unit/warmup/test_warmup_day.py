"""Starting a warm-up and closing a UTC day: advance, hold, warmed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule, ScheduleDay, load_schedules
from services.warmup.domain.send_counts import OutcomeCounts
from services.warmup.domain.state import WarmupState
from services.warmup.domain.transitions import Advanced, Held, Warmed, WarmupStarted
from services.warmup.domain.warmup_day import (
    WarmupRejected,
    close_day,
    judge_day,
    required_deliveries,
    start,
)

RULES = WarmupRules()
SCHEDULES = load_schedules(None)
STANDARD = SCHEDULES["standard-14"]
STEADY = SCHEDULES["steady-28"]
T0 = datetime(2026, 11, 23, 10, 17, tzinfo=UTC)
D0 = T0.date()


def warming(schedule: Schedule = STANDARD, day: int = 1, mode: str = "earned") -> WarmupState:
    state = start(WarmupState(), schedule, T0, mode).state  # type: ignore[arg-type]
    return state.model_copy(update={"day": day})


def test_start_begins_day_1_at_the_events_time() -> None:
    state, transitions = start(WarmupState(), STANDARD, T0, "earned")
    assert state.status == "warming"
    assert (state.schedule, state.mode, state.day) == ("standard-14", "earned", 1)
    assert state.started_at == T0
    assert state.current_date == D0
    assert state.closed_until == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert state.limits(STANDARD) == (50, 20)
    assert transitions == (WarmupStarted(at=T0, schedule="standard-14", mode="earned"),)
    assert transitions[0].event_type == "ip.warmup_started"


def test_a_not_started_ip_has_no_limits() -> None:
    assert WarmupState().status == "not_started"
    assert WarmupState().limits(STANDARD) == (-1, -1)


@pytest.mark.parametrize(("status", "reason"), [("warming", "already_started"),
                                                ("suspended", "already_started")])  # fmt: skip
def test_start_is_refused_while_warming_or_suspended(status: str, reason: str) -> None:
    state = warming().model_copy(update={"status": status})
    with pytest.raises(WarmupRejected) as refused:
        start(state, STANDARD, T0, "earned")
    assert refused.value.reason == reason


def test_start_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        start(WarmupState(), STANDARD, datetime(2026, 11, 23), "earned")


@pytest.mark.parametrize(
    ("limit", "share", "needed"),
    [(50, 0.9, 45), (250, 0.9, 225), (530, 0.9, 477), (1_100, 0.9, 990), (7, 0.9, 7),
     (10, 0.95, 10), (100, 1.0, 100)],
)  # fmt: skip
def test_required_deliveries_is_an_exact_ceiling(limit: int, share: float, needed: int) -> None:
    assert required_deliveries(limit, share) == needed


def test_judge_advances_at_exactly_the_share() -> None:
    assert judge_day(OutcomeCounts(delivered=45), 50, "earned", RULES).advance
    held = judge_day(OutcomeCounts(delivered=44), 50, "earned", RULES)
    assert not held.advance
    assert held.causes == ("low_volume",)
    assert held.reason == "low_volume: delivered 44 of the 45 needed (90% of 50)"


def test_judge_counts_complained_mail_as_delivered_but_not_deferrals() -> None:
    # 40 delivered + 5 complained were accepted; 5 deferred were not.
    counts = OutcomeCounts(delivered=40, complained=5, deferred=5)
    verdict = judge_day(counts, 50, "earned", WarmupRules(hold_complaint_rate=0.2,
                                                           suspend_complaint_rate=0.3))  # fmt: skip
    assert verdict.advance


def test_judge_holds_at_the_bounce_threshold() -> None:
    # 100 sent, 5 bounced = 5.00%: "under" the threshold means strictly below it.
    at_threshold = OutcomeCounts(delivered=95, bounced=5)
    verdict = judge_day(at_threshold, 100, "earned", RULES)
    assert verdict.causes == ("bounce_rate",)
    assert "bounce_rate: 5.00%" in (verdict.reason or "")
    assert judge_day(OutcomeCounts(delivered=96, bounced=4), 100, "earned", RULES).advance


def test_judge_holds_at_the_complaint_threshold() -> None:
    # 1 complaint in 1,000 accepted is 0.1%: hold. 1 in 1,001 is below: advance.
    assert judge_day(OutcomeCounts(delivered=999, complained=1), 1_000, "earned", RULES).causes == (
        "complaint_rate",
    )
    assert judge_day(OutcomeCounts(delivered=1_000, complained=1), 1_000, "earned", RULES).advance


def test_judge_names_every_cause_worst_first() -> None:
    verdict = judge_day(OutcomeCounts(delivered=10, bounced=5, complained=1), 50, "earned", RULES)
    assert verdict.causes == ("complaint_rate", "bounce_rate", "low_volume")
    assert (verdict.reason or "").count("; ") == 2


def test_calendar_mode_advances_whatever_was_sent() -> None:
    assert judge_day(OutcomeCounts(), 50, "calendar", RULES).advance
    assert judge_day(OutcomeCounts(bounced=50), 50, "calendar", RULES).advance


def test_close_day_advances_an_earned_day() -> None:
    state, transitions = close_day(warming(), D0, OutcomeCounts(delivered=50), RULES, STANDARD)
    assert transitions == (Advanced(on=D0, day_from=1, day_to=2),)
    assert transitions[0].event_type == "ip.warmup_advanced"
    assert transitions[0].at == datetime(2026, 11, 24, tzinfo=UTC)
    assert state.day == 2 and state.status == "warming" and state.hold_reason is None
    assert state.limits(STANDARD) == (100, 20)
    assert [(r.day, r.sent, r.done) for r in state.history] == [(1, 50, True)]


def test_close_day_holds_and_the_reason_is_visible() -> None:
    state, transitions = close_day(warming(), D0, OutcomeCounts(delivered=10), RULES, STANDARD)
    assert state.day == 1
    assert state.hold_reason == "low_volume: delivered 10 of the 45 needed (90% of 50)"
    (held,) = transitions
    assert isinstance(held, Held) and held.event_type == "ip.warmup_held"
    assert held.causes == ("low_volume",) and held.key == "held:2026-11-23"
    assert held.causes == ("low_volume",)
    assert [(r.day, r.sent, r.done) for r in state.history] == [(1, 10, False)]


def test_an_advance_after_a_hold_clears_the_reason_and_replaces_the_record() -> None:
    held = close_day(warming(), D0, OutcomeCounts(delivered=10), RULES, STANDARD).state
    later = D0 + timedelta(days=1)
    state, _ = close_day(held, later, OutcomeCounts(delivered=48), RULES, STANDARD)
    assert state.day == 2 and state.hold_reason is None
    assert [(r.day, r.on, r.sent, r.done) for r in state.history] == [(1, later, 48, True)]


def test_reaching_an_unlimited_last_day_warms_the_ip() -> None:
    state, transitions = close_day(
        warming(day=13), D0, OutcomeCounts(delivered=300_000), RULES, STANDARD
    )
    assert transitions == (Advanced(on=D0, day_from=13, day_to=14), Warmed(on=D0, day=14))
    assert [t.event_type for t in transitions] == ["ip.warmup_advanced", "ip.warmed"]
    assert state.status == "active" and state.day == 14
    assert state.warmed_at == datetime(2026, 11, 24, tzinfo=UTC)
    assert state.limits(STANDARD) == (-1, -1)


def test_earning_a_limited_last_day_warms_the_ip() -> None:
    state, transitions = close_day(
        warming(STEADY, day=28), D0, OutcomeCounts(delivered=22_500), RULES, STEADY
    )
    assert transitions == (Warmed(on=D0, day=28),)
    assert state.status == "active" and state.day == 28
    assert state.limits(STEADY) == (-1, -1)


def test_a_limited_last_day_that_is_not_earned_holds() -> None:
    state, transitions = close_day(
        warming(STEADY, day=28), D0, OutcomeCounts(delivered=22_499), RULES, STEADY
    )
    assert state.status == "warming" and isinstance(transitions[0], Held)


def test_only_a_warming_ip_is_judged() -> None:
    for status in ("suspended", "active", "not_started"):
        state = warming().model_copy(update={"status": status})
        assert close_day(state, D0, OutcomeCounts(delivered=50), RULES, STANDARD) == (state, ())


def test_a_one_day_schedule_warms_on_its_first_earned_day() -> None:
    single = Schedule(name="one", days=(ScheduleDay(day=1, daily_limit=10, hourly_limit=10),))
    state, transitions = close_day(
        warming(single), date(2026, 11, 23), OutcomeCounts(delivered=9), RULES, single
    )
    assert transitions == (Warmed(on=date(2026, 11, 23), day=1),)
    assert state.status == "active"
