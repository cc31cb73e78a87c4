import json

from services.reputation.domain.assignment import DomainState, Outcome
from services.reputation.domain.bands import Band, HealthMetrics
from services.reputation.domain.evaluation import evaluate
from services.reputation.domain.thresholds import DEFAULT_THRESHOLDS

T = DEFAULT_THRESHOLDS
SEED = HealthMetrics(bounce_rate=0.25, complaint_rate=0.0002, processed_count=5000)
GOOD = HealthMetrics(bounce_rate=0.01, complaint_rate=0.0001, processed_count=5000)


def test_seed_003_preview() -> None:
    preview = evaluate(SEED, T).preview()
    assert preview["pool"] == "dynamic_poor"
    assert preview["bounce_rate"] == {"value": 0.25, "band": "dynamic_poor"}
    assert preview["complaint_rate"] == {"value": 0.0002, "band": "dynamic_good"}
    assert preview["processed_count"] == {"value": 5000, "band": "dynamic_good"}
    assert preview["reason"] == "bounce_rate in poor threshold"
    assert preview["outcome"] == "not_enrolled"
    assert json.loads(json.dumps(preview)) == preview


def test_metrics_part_matches_the_domain_evaluated_model() -> None:
    from shared.contract.events import DomainEvaluated

    evaluation = evaluate(SEED, T)
    data = DomainEvaluated(
        account_id="acct_1",
        command_id="c1",
        domain="example.com",
        pool=evaluation.pool,
        metrics=evaluation.metrics(),
    )
    assert data.metrics["bounce_rate"]["band"] == "dynamic_poor"


def test_low_volume_preview_is_new() -> None:
    low = HealthMetrics(bounce_rate=0.25, complaint_rate=0.0, processed_count=3)
    preview = evaluate(low, T).preview()
    assert preview["pool"] == "dynamic_new"
    assert preview["processed_count"] == {"value": 3, "band": "dynamic_new"}
    assert preview["bounce_rate"]["band"] == "dynamic_poor"
    assert preview["reason"] == "processed_count in new threshold"


def test_evaluation_of_a_poor_domain_counts_hysteresis() -> None:
    poor = DomainState(enrolled=True, band=Band.POOR)
    held = evaluate(GOOD, T, poor)
    assert (held.pool, held.outcome) == ("dynamic_poor", Outcome.HELD_IN_POOR)
    one_good_already = DomainState(enrolled=True, band=Band.POOR, good_streak=1)
    leaving = evaluate(GOOD, T, one_good_already)
    assert (leaving.pool, leaving.outcome) == ("dynamic_good", Outcome.MOVED)


def test_evaluation_of_an_overridden_domain_is_its_override() -> None:
    pinned = DomainState(enrolled=True, band=Band.GOOD, override_pool="marketing")
    evaluation = evaluate(SEED, T, pinned)
    assert evaluation.pool == "marketing"
    assert evaluation.outcome is Outcome.HELD_BY_OVERRIDE
    assert evaluation.verdict.band is Band.POOR


def test_margin_of_a_good_domain_stays_good_but_not_for_a_new_one() -> None:
    margin = HealthMetrics(bounce_rate=0.03, complaint_rate=0.0001, processed_count=5000)
    assert evaluate(margin, T, DomainState(enrolled=True, band=Band.GOOD)).pool == "dynamic_good"
    assert evaluate(margin, T).pool == "dynamic_new"
    assert evaluate(margin, T).preview()["bounce_rate"]["band"] == "dynamic_new"


def test_evaluation_of_a_domain_not_enrolled_ignores_its_static_pool() -> None:
    evaluation = evaluate(GOOD, T, DomainState(static_pool="marketing"))
    assert (evaluation.pool, evaluation.outcome) == ("dynamic_good", Outcome.NOT_ENROLLED)
