import pytest
from pydantic import ValidationError

from services.reputation.domain.assignment import (
    Change,
    DomainState,
    Judgement,
    Outcome,
    apply_hysteresis,
    clear_override,
    enroll,
    judge_health_check,
    set_override,
    unenroll,
)
from services.reputation.domain.bands import Band, HealthMetrics
from services.reputation.domain.refusals import Refusal
from services.reputation.domain.thresholds import DEFAULT_THRESHOLDS, DynamicPoolThresholds

T = DEFAULT_THRESHOLDS
GOOD = HealthMetrics(bounce_rate=0.01, complaint_rate=0.0001, processed_count=5000)
POOR_BOUNCE = HealthMetrics(bounce_rate=0.25, complaint_rate=0.0002, processed_count=5000)
MARGIN = HealthMetrics(bounce_rate=0.03, complaint_rate=0.0001, processed_count=5000)
LOW_VOLUME = HealthMetrics(bounce_rate=0.0, complaint_rate=0.0, processed_count=10)


def enrolled(band: Band = Band.NEW, **fields: object) -> DomainState:
    return DomainState.model_validate({"enrolled": True, "band": band, **fields})


def changed(result: Change | Refusal) -> Change:
    assert isinstance(result, Change), result
    return result


def refused(result: Change | Refusal, code: str) -> Refusal:
    assert isinstance(result, Refusal), result
    assert result.code == code
    return result


def run(
    state: DomainState, *checks: HealthMetrics, thresholds: DynamicPoolThresholds = T
) -> list[Judgement]:
    judgements = []
    for check in checks:
        judgement = judge_health_check(state, check, thresholds)
        judgements.append(judgement)
        state = judgement.state
    return judgements


# ---- enrolment ----------------------------------------------------------------------------------


def test_enroll_needs_the_feature_enabled() -> None:
    refusal = refused(enroll(DomainState(), feature_enabled=False), "conflict")
    assert "dynamic_pools.configure" in refusal.message


def test_enroll_starts_in_dynamic_new() -> None:
    state, move = changed(enroll(DomainState(), feature_enabled=True))
    assert state.enrolled and state.band is Band.NEW
    assert state.pool == "dynamic_new"
    assert (move.prev_pool, move.new_pool) == (None, "dynamic_new")
    assert move.initiated_by == "operator"
    assert move.reason == "Domain enrolled"
    assert move.metrics is None


def test_enroll_records_the_pool_the_domain_leaves() -> None:
    _, move = changed(enroll(DomainState(static_pool="marketing"), feature_enabled=True))
    assert move.prev_pool == "marketing"


def test_enroll_twice_is_refused() -> None:
    refused(enroll(enrolled(), feature_enabled=True), "conflict")


def test_unenroll_into_a_replacement_pool_drops_the_override() -> None:
    state = enrolled(Band.POOR, override_pool="dynamic_good")
    after, move = changed(unenroll(state, "transactional"))
    assert not after.enrolled
    assert after.override_pool is None
    assert after.pool == "transactional"
    assert (move.prev_pool, move.new_pool) == ("dynamic_good", "transactional")
    assert (move.reason, move.initiated_by) == ("Domain unenrolled", "operator")


def test_unenroll_without_replacement_leaves_no_pool_of_its_own() -> None:
    after, move = changed(unenroll(enrolled(Band.GOOD)))
    assert after == DomainState()
    assert (move.prev_pool, move.new_pool) == ("dynamic_good", None)


def test_unenroll_refusals() -> None:
    refused(unenroll(DomainState()), "conflict")
    refused(unenroll(enrolled(), "dynamic_good"), "invalid")
    refused(unenroll(enrolled(), "  "), "invalid")


# ---- health checks -----------------------------------------------------------------------------


def test_health_check_for_a_domain_not_enrolled_is_judged_but_moves_nothing() -> None:
    state = DomainState(static_pool="marketing")
    judgement = judge_health_check(state, POOR_BOUNCE, T)
    assert judgement.outcome is Outcome.NOT_ENROLLED
    assert judgement.move is None
    assert judgement.state == state
    assert judgement.verdict.band is Band.POOR  # visible in the record of the check


def test_new_domain_with_good_metrics_moves_to_good() -> None:
    judgement = judge_health_check(enrolled(), GOOD, T)
    assert judgement.outcome is Outcome.MOVED
    assert judgement.state.pool == "dynamic_good"
    move = judgement.move
    assert move is not None
    assert (move.prev_pool, move.new_pool) == ("dynamic_new", "dynamic_good")
    assert move.reason == "Multiple metrics in good threshold"
    assert move.initiated_by == "system"
    assert move.metrics == GOOD


def test_move_fills_the_pool_changed_event() -> None:
    move = judge_health_check(enrolled(Band.GOOD), POOR_BOUNCE, T).move
    assert move is not None
    assert move.as_event_data() == {
        "prev_pool": "dynamic_good",
        "new_pool": "dynamic_poor",
        "reason": "bounce_rate in poor threshold",
        "bounce_rate": 0.25,
        "complaint_rate": 0.0002,
        "processed_count": 5000,
        "initiated_by": "system",
    }


def test_one_poor_check_drops_a_good_domain_into_poor_at_once() -> None:
    judgement = judge_health_check(enrolled(Band.GOOD), POOR_BOUNCE, T)
    assert judgement.outcome is Outcome.MOVED
    assert judgement.state.band is Band.POOR
    assert judgement.state.good_streak == 0


def test_same_band_is_unchanged() -> None:
    judgement = judge_health_check(enrolled(Band.GOOD), GOOD, T)
    assert judgement.outcome is Outcome.UNCHANGED
    assert judgement.move is None
    assert judgement.reason == "Multiple metrics in good threshold"


def test_margin_keeps_a_new_domain_new() -> None:
    judgement = judge_health_check(enrolled(Band.NEW), MARGIN, T)
    assert judgement.outcome is Outcome.UNCHANGED
    assert judgement.state.band is Band.NEW


def test_good_domain_with_low_volume_moves_to_new() -> None:
    judgement = judge_health_check(enrolled(Band.GOOD), LOW_VOLUME, T)
    assert judgement.move is not None
    assert judgement.move.new_pool == "dynamic_new"
    assert judgement.move.reason == "processed_count in new threshold"


# ---- hysteresis ---------------------------------------------------------------------------------


def test_poor_domain_needs_two_consecutive_good_checks_to_leave() -> None:
    poor = judge_health_check(enrolled(Band.GOOD), POOR_BOUNCE, T).state
    first, second = run(poor, GOOD, GOOD)
    assert first.outcome is Outcome.HELD_IN_POOR
    assert first.move is None
    assert first.state.pool == "dynamic_poor"
    assert first.state.good_streak == 1
    assert first.reason == "Held in dynamic_poor: 1 of 2 consecutive good checks"
    assert second.outcome is Outcome.MOVED
    assert second.state.band is Band.GOOD
    assert second.state.good_streak == 0
    assert second.move is not None
    assert (second.move.prev_pool, second.move.new_pool) == ("dynamic_poor", "dynamic_good")
    # It went poor on bounces; the complaint rate was good all along (seed 003's history).
    assert second.move.reason == "bounce_rate in good threshold"


def test_a_poor_check_resets_the_streak() -> None:
    poor = enrolled(Band.POOR)
    judgements = run(poor, GOOD, POOR_BOUNCE, GOOD, GOOD)
    assert [j.state.band for j in judgements] == [Band.POOR, Band.POOR, Band.POOR, Band.GOOD]
    assert [j.state.good_streak for j in judgements] == [1, 0, 1, 0]


def test_a_margin_check_resets_the_streak() -> None:
    judgements = run(enrolled(Band.POOR), GOOD, MARGIN, GOOD)
    assert [j.state.band for j in judgements] == [Band.POOR, Band.POOR, Band.POOR]
    assert judgements[1].outcome is Outcome.UNCHANGED


def test_low_volume_does_not_let_a_poor_domain_escape_to_new() -> None:
    judgements = run(enrolled(Band.POOR), GOOD, LOW_VOLUME, GOOD)
    assert [j.state.band for j in judgements] == [Band.POOR, Band.POOR, Band.POOR]
    assert judgements[1].outcome is Outcome.HELD_IN_POOR
    assert judgements[1].reason == "Held in dynamic_poor: processed_count in new threshold"
    assert judgements[2].state.good_streak == 1


@pytest.mark.parametrize("needed", [1, 3, 5])
def test_configured_number_of_good_checks(needed: int) -> None:
    thresholds = DynamicPoolThresholds(good_checks_to_leave_poor=needed)
    judgements = run(enrolled(Band.POOR), *[GOOD] * needed, thresholds=thresholds)
    assert [j.move is not None for j in judgements] == [False] * (needed - 1) + [True]
    assert judgements[-1].state.band is Band.GOOD


def test_apply_hysteresis_table() -> None:
    assert apply_hysteresis(Band.GOOD, 0, Band.POOR, 2) == (Band.POOR, 0)
    assert apply_hysteresis(Band.NEW, 0, Band.POOR, 2) == (Band.POOR, 0)
    assert apply_hysteresis(Band.NEW, 0, Band.GOOD, 2) == (Band.GOOD, 0)
    assert apply_hysteresis(Band.GOOD, 0, Band.NEW, 2) == (Band.NEW, 0)
    assert apply_hysteresis(Band.POOR, 0, Band.GOOD, 2) == (Band.POOR, 1)
    assert apply_hysteresis(Band.POOR, 1, Band.GOOD, 2) == (Band.GOOD, 0)
    assert apply_hysteresis(Band.POOR, 1, Band.NEW, 2) == (Band.POOR, 0)
    assert apply_hysteresis(Band.POOR, 1, Band.POOR, 2) == (Band.POOR, 0)
    # A streak longer than a lowered requirement leaves on the next good check.
    assert apply_hysteresis(Band.POOR, 4, Band.GOOD, 2) == (Band.GOOD, 0)


# ---- overrides ----------------------------------------------------------------------------------


def test_override_set_is_a_history_record_by_override() -> None:
    state, move = changed(set_override(enrolled(Band.NEW), "marketing"))
    assert state.pool == "marketing"
    assert state.band is Band.NEW
    assert (move.prev_pool, move.new_pool) == ("dynamic_new", "marketing")
    assert (move.reason, move.initiated_by) == ("Override set", "override")
    assert move.changes_pool


def test_override_to_the_current_pool_is_recorded_without_changing_the_pool() -> None:
    _, move = changed(set_override(enrolled(Band.GOOD), "dynamic_good"))
    assert not move.changes_pool


def test_override_holds_through_bad_checks() -> None:
    state, _ = changed(set_override(enrolled(Band.GOOD), "dynamic_good"))
    judgements = run(state, POOR_BOUNCE, POOR_BOUNCE, LOW_VOLUME)
    assert all(j.move is None for j in judgements)
    assert all(j.outcome is Outcome.HELD_BY_OVERRIDE for j in judgements)
    assert all(j.state.pool == "dynamic_good" for j in judgements)
    assert judgements[0].reason == "Pinned to dynamic_good by override"
    # The judged band kept going underneath.
    assert judgements[-1].state.band is Band.POOR


def test_clearing_the_override_falls_back_to_the_judged_band_at_once() -> None:
    state, _ = changed(set_override(enrolled(Band.GOOD), "dynamic_good"))
    state = run(state, POOR_BOUNCE)[-1].state
    after, move = changed(clear_override(state))
    assert after.override_pool is None
    assert after.pool == "dynamic_poor"
    assert (move.prev_pool, move.new_pool) == ("dynamic_good", "dynamic_poor")
    assert (move.reason, move.initiated_by) == ("Override cleared", "override")
    # Health checks manage it again: two good checks bring it back.
    assert run(after, GOOD, GOOD)[-1].state.pool == "dynamic_good"


def test_hysteresis_runs_under_an_override() -> None:
    state, _ = changed(set_override(enrolled(Band.POOR), "marketing"))
    state = run(state, GOOD)[-1].state
    assert (state.band, state.good_streak) == (Band.POOR, 1)
    after, _ = changed(clear_override(state))
    assert after.pool == "dynamic_poor"


def test_override_refusals() -> None:
    refused(set_override(DomainState(), "dynamic_good"), "conflict")
    refused(set_override(enrolled(), ""), "invalid")
    refused(clear_override(DomainState()), "conflict")
    refused(clear_override(enrolled()), "conflict")


# ---- state --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"enrolled": True},  # no band
        {"enrolled": False, "band": "good"},
        {"enrolled": False, "override_pool": "x"},
        {"enrolled": True, "band": "good", "good_streak": 1},  # streak only while poor
        {"enrolled": True, "band": "new", "static_pool": "x"},
        {"enrolled": True, "band": "new", "override_pool": ""},
    ],
)
def test_inconsistent_states_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DomainState.model_validate(fields)


def test_state_round_trips_through_json() -> None:
    state = run(enrolled(Band.GOOD), POOR_BOUNCE, GOOD)[-1].state
    state = DomainState.model_validate({**state.model_dump(), "override_pool": "marketing"})
    assert DomainState.model_validate_json(state.model_dump_json()) == state
