"""Bands: where one health check puts a domain, metric by metric, and the reason in words.

A band is the reputation class behind each dynamic pool (`good` → `dynamic_good`, and so on).
Rates are judged against `DynamicPoolThresholds`: below the good threshold → good, at or above
the poor threshold → poor, in the margin between → the domain's current band. Volume is a gate,
not a judge: fewer processed messages than the minimum makes the check `new` whatever its rates.
Otherwise the check's band is the worst band of its rates. Hysteresis and overrides are not
here (see `assignment`); this module answers "what do these numbers say?".
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.reputation.domain.thresholds import DynamicPoolThresholds


class Band(StrEnum):
    GOOD = "good"
    NEW = "new"
    POOR = "poor"

    @property
    def pool(self) -> str:
        """The dynamic pool of this band: `dynamic_good`, `dynamic_new`, `dynamic_poor`."""
        return f"dynamic_{self.value}"

    @classmethod
    def of_pool(cls, pool: str) -> Band | None:
        """The band whose dynamic pool is `pool`, or None for any other pool name."""
        for band in cls:
            if band.pool == pool:
                return band
        return None


# Worse bands rank higher. `new` sits between: a domain that is not yet judged (or held in
# the margin while new) is not allowed the good pool, but has not earned the poor one either.
_SEVERITY = {Band.GOOD: 0, Band.NEW: 1, Band.POOR: 2}

DYNAMIC_POOLS: tuple[str, ...] = (Band.GOOD.pool, Band.POOR.pool, Band.NEW.pool)


def worst(*bands: Band) -> Band:
    """The worst of `bands` (poor > new > good)."""
    return max(bands, key=_SEVERITY.__getitem__)


class Metric(StrEnum):
    BOUNCE_RATE = "bounce_rate"
    COMPLAINT_RATE = "complaint_rate"
    PROCESSED_COUNT = "processed_count"


RATE_METRICS: tuple[Metric, ...] = (Metric.BOUNCE_RATE, Metric.COMPLAINT_RATE)


class HealthMetrics(BaseModel):
    """What one health check measured for a sending domain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bounce_rate: float = Field(ge=0.0, le=1.0)
    complaint_rate: float = Field(ge=0.0, le=1.0)
    processed_count: int = Field(ge=0)


class MetricBand(BaseModel):
    """One metric's value and band. `in_margin`: the band is the domain's current band,
    kept because the value sits between the good and poor thresholds."""

    model_config = ConfigDict(frozen=True)

    metric: Metric
    value: int | float
    band: Band
    in_margin: bool = False


class Verdict(BaseModel):
    """What one health check says, before hysteresis and overrides: the band it points to and
    each metric's band (bounce rate, complaint rate, processed count, in that order)."""

    model_config = ConfigDict(frozen=True)

    band: Band
    metric_bands: tuple[MetricBand, ...]

    def band_of(self, metric: Metric) -> Band:
        return self._of(metric).band

    def bands(self) -> dict[Metric, Band]:
        return {mb.metric: mb.band for mb in self.metric_bands}

    @property
    def below_minimum(self) -> bool:
        """The check covered too few messages to be judged on its rates."""
        return self._of(Metric.PROCESSED_COUNT).band is Band.NEW

    def _of(self, metric: Metric) -> MetricBand:
        for mb in self.metric_bands:
            if mb.metric is metric:
                return mb
        raise KeyError(metric)


def band_rate(value: float, good: float, poor: float, current: Band) -> tuple[Band, bool]:
    """The band of one rate, and whether it came from the margin.

    Below `good` → good; at or above `poor` → poor (poor wins when the two are equal); in
    between → `current`, the domain's band, so a rate hovering near a line does not move it.
    """
    if value >= poor:
        return Band.POOR, False
    if value < good:
        return Band.GOOD, False
    return current, True


def judge_metrics(
    metrics: HealthMetrics,
    thresholds: DynamicPoolThresholds,
    current: Band = Band.NEW,
) -> Verdict:
    """The verdict of one health check for a domain currently in band `current`.

    `current` only matters for rates in the margin. Pass `Band.NEW` for a domain that has no
    band yet (just enrolled, or not enrolled): that is the band it would start from.
    """
    bounce, bounce_margin = band_rate(
        metrics.bounce_rate, thresholds.bounce_good, thresholds.bounce_poor, current
    )
    complaint, complaint_margin = band_rate(
        metrics.complaint_rate, thresholds.complaint_good, thresholds.complaint_poor, current
    )
    below_minimum = metrics.processed_count < thresholds.min_processed_count
    # Enough volume does not make a domain good; it only lets its rates be judged.
    volume = Band.NEW if below_minimum else Band.GOOD
    overall = Band.NEW if below_minimum else worst(bounce, complaint)
    return Verdict(
        band=overall,
        metric_bands=(
            MetricBand(
                metric=Metric.BOUNCE_RATE,
                value=metrics.bounce_rate,
                band=bounce,
                in_margin=bounce_margin,
            ),
            MetricBand(
                metric=Metric.COMPLAINT_RATE,
                value=metrics.complaint_rate,
                band=complaint,
                in_margin=complaint_margin,
            ),
            MetricBand(metric=Metric.PROCESSED_COUNT, value=metrics.processed_count, band=volume),
        ),
    )


MULTIPLE_METRICS = "Multiple metrics"


def reason_for(verdict: Verdict, previous: Mapping[Metric, Band] | None = None) -> str:
    """Why `verdict` puts the domain in `verdict.band`, in the words of Mailgun's history.

    The reason names the metrics that decide the band: the rates in that band, or
    `processed_count` when the check is below the minimum volume. One metric gives
    `"<metric> in <band> threshold"` (`bounce_rate in poor threshold`,
    `processed_count in new threshold`); more give `"Multiple metrics in <band> threshold"`.

    `previous` is the per-metric bands of the check that put the domain in the band it is
    leaving. When given, metrics that were already in the new band then are left out, so a
    domain that went poor on bounces and recovers reads `bounce_rate in good threshold`, not
    `Multiple metrics ...` (seed 003's history shows both cases).
    """
    band = verdict.band
    if band is Band.NEW and verdict.below_minimum:
        deciding = [Metric.PROCESSED_COUNT]
    else:
        deciding = [m for m in RATE_METRICS if verdict.band_of(m) is band]
    if previous:
        changed = [m for m in deciding if previous.get(m) is not band]
        deciding = changed or deciding
    if len(deciding) == 1:
        return f"{deciding[0].value} in {band.value} threshold"
    return f"{MULTIPLE_METRICS} in {band.value} threshold"
