import pytest
from pydantic import ValidationError

from services.reputation.domain.bands import (
    DYNAMIC_POOLS,
    Band,
    HealthMetrics,
    Metric,
    band_rate,
    judge_metrics,
    reason_for,
    worst,
)
from services.reputation.domain.thresholds import DEFAULT_THRESHOLDS, DynamicPoolThresholds

ENOUGH = DEFAULT_THRESHOLDS.min_processed_count


def metrics(bounce: float, complaint: float, processed: int = ENOUGH) -> HealthMetrics:
    return HealthMetrics(bounce_rate=bounce, complaint_rate=complaint, processed_count=processed)


def test_bands_map_to_dynamic_pools() -> None:
    assert Band.GOOD.pool == "dynamic_good"
    assert Band.POOR.pool == "dynamic_poor"
    assert Band.NEW.pool == "dynamic_new"
    assert Band.of_pool("dynamic_poor") is Band.POOR
    assert Band.of_pool("marketing") is None
    assert set(DYNAMIC_POOLS) == {"dynamic_good", "dynamic_poor", "dynamic_new"}


def test_worst_band_ranks_poor_over_new_over_good() -> None:
    assert worst(Band.GOOD, Band.POOR) is Band.POOR
    assert worst(Band.GOOD, Band.NEW) is Band.NEW
    assert worst(Band.NEW, Band.POOR, Band.GOOD) is Band.POOR
    assert worst(Band.GOOD, Band.GOOD) is Band.GOOD


@pytest.mark.parametrize(
    ("value", "expected", "in_margin"),
    [
        (0.0, Band.GOOD, False),
        (0.0199, Band.GOOD, False),
        (0.02, Band.NEW, True),  # at the good threshold: no longer below it, so the margin
        (0.035, Band.NEW, True),
        (0.0499, Band.NEW, True),
        (0.05, Band.POOR, False),  # at the poor threshold: poor
        (1.0, Band.POOR, False),
    ],
)
def test_rate_band_boundaries(value: float, expected: Band, in_margin: bool) -> None:
    assert band_rate(value, 0.02, 0.05, Band.NEW) == (expected, in_margin)


@pytest.mark.parametrize("current", list(Band))
def test_margin_keeps_the_current_band(current: Band) -> None:
    assert band_rate(0.03, 0.02, 0.05, current) == (current, True)


def test_equal_thresholds_leave_no_margin() -> None:
    assert band_rate(0.05, 0.05, 0.05, Band.GOOD) == (Band.POOR, False)
    assert band_rate(0.0499, 0.05, 0.05, Band.POOR) == (Band.GOOD, False)


def test_seed_003_preview_bounce_poor_complaint_good_is_dynamic_poor() -> None:
    verdict = judge_metrics(metrics(0.25, 0.0002), DEFAULT_THRESHOLDS)
    assert verdict.band_of(Metric.BOUNCE_RATE) is Band.POOR
    assert verdict.band_of(Metric.COMPLAINT_RATE) is Band.GOOD
    assert verdict.band is Band.POOR
    assert verdict.band.pool == "dynamic_poor"
    assert reason_for(verdict) == "bounce_rate in poor threshold"


def test_complaint_rate_alone_makes_a_domain_poor() -> None:
    verdict = judge_metrics(metrics(0.001, 0.003), DEFAULT_THRESHOLDS, Band.GOOD)
    assert verdict.band is Band.POOR
    assert reason_for(verdict) == "complaint_rate in poor threshold"


def test_both_rates_poor_reads_multiple_metrics() -> None:
    verdict = judge_metrics(metrics(0.2, 0.01), DEFAULT_THRESHOLDS, Band.GOOD)
    assert verdict.band is Band.POOR
    assert reason_for(verdict) == "Multiple metrics in poor threshold"


def test_both_rates_good_reads_multiple_metrics_in_good_threshold() -> None:
    verdict = judge_metrics(metrics(0.01, 0.0001), DEFAULT_THRESHOLDS, Band.NEW)
    assert verdict.band is Band.GOOD
    assert reason_for(verdict) == "Multiple metrics in good threshold"


def test_below_minimum_volume_is_new_whatever_the_rates() -> None:
    verdict = judge_metrics(metrics(0.5, 0.5, processed=ENOUGH - 1), DEFAULT_THRESHOLDS)
    assert verdict.band is Band.NEW
    assert verdict.below_minimum
    assert verdict.band_of(Metric.PROCESSED_COUNT) is Band.NEW
    # The rates are still judged and shown.
    assert verdict.band_of(Metric.BOUNCE_RATE) is Band.POOR
    assert reason_for(verdict) == "processed_count in new threshold"


def test_exactly_the_minimum_volume_is_judged_on_rates() -> None:
    verdict = judge_metrics(metrics(0.0, 0.0, processed=ENOUGH), DEFAULT_THRESHOLDS)
    assert not verdict.below_minimum
    assert verdict.band is Band.GOOD
    assert verdict.band_of(Metric.PROCESSED_COUNT) is Band.GOOD


def test_zero_minimum_judges_even_an_empty_check() -> None:
    thresholds = DynamicPoolThresholds(min_processed_count=0)
    assert judge_metrics(metrics(0.0, 0.0, processed=0), thresholds).band is Band.GOOD


def test_margin_metric_keeps_a_new_domain_new() -> None:
    # bounce good, complaint in the margin: a new domain stays new, it has not earned good.
    verdict = judge_metrics(metrics(0.01, 0.002), DEFAULT_THRESHOLDS, Band.NEW)
    assert verdict.band_of(Metric.COMPLAINT_RATE) is Band.NEW
    assert verdict.band is Band.NEW


def test_margin_metric_keeps_a_good_domain_good() -> None:
    verdict = judge_metrics(metrics(0.03, 0.0001), DEFAULT_THRESHOLDS, Band.GOOD)
    assert verdict.band is Band.GOOD
    assert verdict.metric_bands[0].in_margin


def test_margin_metric_keeps_a_poor_domain_poor() -> None:
    verdict = judge_metrics(metrics(0.01, 0.002), DEFAULT_THRESHOLDS, Band.POOR)
    assert verdict.band is Band.POOR
    assert reason_for(verdict) == "complaint_rate in poor threshold"


def test_reason_names_the_metric_that_recovered() -> None:
    # Seed 003 history: dynamic_poor -> dynamic_good, "bounce_rate in good threshold".
    verdict = judge_metrics(metrics(0.01, 0.0001), DEFAULT_THRESHOLDS, Band.POOR)
    entered_poor_on = {
        Metric.BOUNCE_RATE: Band.POOR,
        Metric.COMPLAINT_RATE: Band.GOOD,
        Metric.PROCESSED_COUNT: Band.GOOD,
    }
    assert reason_for(verdict, entered_poor_on) == "bounce_rate in good threshold"


def test_reason_from_new_names_multiple_metrics() -> None:
    # Seed 003 history: dynamic_new -> dynamic_good, "Multiple metrics in good threshold".
    verdict = judge_metrics(metrics(0.01, 0.0001), DEFAULT_THRESHOLDS, Band.NEW)
    assert reason_for(verdict, None) == "Multiple metrics in good threshold"


def test_reason_when_both_metrics_recovered() -> None:
    verdict = judge_metrics(metrics(0.01, 0.0001), DEFAULT_THRESHOLDS, Band.POOR)
    both_poor = {Metric.BOUNCE_RATE: Band.POOR, Metric.COMPLAINT_RATE: Band.POOR}
    assert reason_for(verdict, both_poor) == "Multiple metrics in good threshold"


def test_seed_history_values_with_an_account_bounce_threshold_of_five_percent() -> None:
    # Seed 003 shows bounce 0.04 / complaint 0.0001 moving a domain to dynamic_good. Under
    # ipfleet's defaults 0.04 sits in the margin; an account with bounce_good 0.05 gets good.
    assert judge_metrics(metrics(0.04, 0.0001), DEFAULT_THRESHOLDS).band is Band.NEW
    lenient = DynamicPoolThresholds(bounce_good=0.05, bounce_poor=0.1)
    verdict = judge_metrics(metrics(0.04, 0.0001), lenient, Band.NEW)
    assert verdict.band is Band.GOOD
    assert reason_for(verdict) == "Multiple metrics in good threshold"


@pytest.mark.parametrize(
    "values",
    [
        {"bounce_rate": 1.2, "complaint_rate": 0.0, "processed_count": 1},
        {"bounce_rate": 0.0, "complaint_rate": -0.1, "processed_count": 1},
        {"bounce_rate": 0.0, "complaint_rate": 0.0, "processed_count": -1},
    ],
)
def test_health_metrics_are_validated(values: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        HealthMetrics.model_validate(values)
