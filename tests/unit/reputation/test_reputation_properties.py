"""Properties of the band rules over arbitrary sequences of health checks."""

from hypothesis import given
from hypothesis import strategies as st

from services.reputation.domain.assignment import (
    Change,
    DomainState,
    Outcome,
    judge_health_check,
    set_override,
)
from services.reputation.domain.bands import Band, HealthMetrics, band_rate, judge_metrics
from services.reputation.domain.refusals import Refusal
from services.reputation.domain.thresholds import DynamicPoolThresholds, merge_thresholds

# Values chosen around the default thresholds so that every band and the margin come up often.
rates = st.sampled_from([0.0, 0.0005, 0.001, 0.002, 0.003, 0.01, 0.02, 0.03, 0.05, 0.3])
checks = st.builds(
    HealthMetrics,
    bounce_rate=rates,
    complaint_rate=rates,
    processed_count=st.sampled_from([0, 10, 999, 1000, 50_000]),
)
thresholds = st.builds(
    DynamicPoolThresholds, good_checks_to_leave_poor=st.integers(min_value=1, max_value=5)
)
bands = st.sampled_from(list(Band))


@given(thresholds, st.lists(checks, max_size=30), bands)
def test_a_domain_never_leaves_poor_before_n_consecutive_good_checks(
    t: DynamicPoolThresholds, sequence: list[HealthMetrics], start: Band
) -> None:
    state = DomainState(enrolled=True, band=start)
    good_run = 0  # consecutive good verdicts while poor, counted independently of the code
    for check in sequence:
        assert state.band is not None
        verdict = judge_metrics(check, t, state.band)
        good_run = good_run + 1 if state.band is Band.POOR and verdict.band is Band.GOOD else 0
        after = judge_health_check(state, check, t).state
        if state.band is Band.POOR and after.band is not Band.POOR:
            assert good_run >= t.good_checks_to_leave_poor
            assert after.band is Band.GOOD
        if state.band is Band.POOR and good_run >= t.good_checks_to_leave_poor:
            assert after.band is Band.GOOD
        if after.band is not Band.POOR:
            good_run = 0
        state = after


@given(thresholds, st.lists(checks, max_size=30), bands)
def test_a_poor_verdict_drops_a_domain_into_poor_at_once(
    t: DynamicPoolThresholds, sequence: list[HealthMetrics], start: Band
) -> None:
    state = DomainState(enrolled=True, band=start)
    for check in sequence:
        judgement = judge_health_check(state, check, t)
        if judgement.verdict.band is Band.POOR:
            assert judgement.state.pool == "dynamic_poor"
        state = judgement.state


@given(thresholds, st.lists(checks, max_size=30), bands)
def test_moves_chain_and_match_the_state(
    t: DynamicPoolThresholds, sequence: list[HealthMetrics], start: Band
) -> None:
    state = DomainState(enrolled=True, band=start)
    for check in sequence:
        judgement = judge_health_check(state, check, t)
        if judgement.move is None:
            assert judgement.state.pool == state.pool
        else:
            assert judgement.outcome is Outcome.MOVED
            assert judgement.move.prev_pool == state.pool
            assert judgement.move.new_pool == judgement.state.pool
            assert judgement.move.changes_pool
            assert judgement.move.initiated_by == "system"
        state = judgement.state


@given(thresholds, st.lists(checks, max_size=30), bands, st.sampled_from(["dynamic_good", "x"]))
def test_an_override_holds_through_any_checks(
    t: DynamicPoolThresholds, sequence: list[HealthMetrics], start: Band, pool: str
) -> None:
    result = set_override(DomainState(enrolled=True, band=start), pool)
    assert isinstance(result, Change)
    state = result.state
    for check in sequence:
        judgement = judge_health_check(state, check, t)
        assert judgement.move is None
        assert judgement.outcome is Outcome.HELD_BY_OVERRIDE
        assert judgement.state.pool == pool
        state = judgement.state


_SEVERITY = {Band.GOOD: 0, Band.NEW: 1, Band.POOR: 2}


@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1),
    bands,
)
def test_a_higher_rate_never_gets_a_better_band(
    a: float, b: float, good: float, poor: float, current: Band
) -> None:
    good, poor = min(good, poor), max(good, poor)
    low, high = min(a, b), max(a, b)
    low_band, _ = band_rate(low, good, poor, current)
    high_band, _ = band_rate(high, good, poor, current)
    # Good is the least severe band and poor the most, so whatever the margin keeps, the
    # band can only get worse as the rate rises.
    assert _SEVERITY[high_band] >= _SEVERITY[low_band]


@given(
    st.dictionaries(
        st.sampled_from(["bounce_good", "bounce_poor", "complaint_good", "complaint_poor"]),
        st.one_of(st.none(), st.floats(-0.5, 1.5, allow_nan=False)),
    )
)
def test_merged_thresholds_are_valid_or_refused(overrides: dict[str, float | None]) -> None:
    merged = merge_thresholds(overrides)
    if isinstance(merged, Refusal):
        assert merged.code == "invalid"
        return
    assert merged.bounce_good <= merged.bounce_poor
    assert merged.complaint_good <= merged.complaint_poor
    for name, value in overrides.items():
        if value is not None:
            assert getattr(merged, name) == value
