"""The dry run behind `domain.evaluate`: which pool a health check would put a domain in.

Nothing changes: the answer is computed by judging the metrics against the domain's state and
throwing the new state away. It is shaped like Mailgun's preview (seed 003):

    {"pool": "dynamic_poor",
     "bounce_rate": {"value": 0.25, "band": "dynamic_poor"},
     "complaint_rate": {"value": 0.0002, "band": "dynamic_good"},
     "processed_count": {"value": 5000, "band": "dynamic_good"},
     "reason": "bounce_rate in poor threshold", "outcome": "moved"}

`processed_count`, `reason` and `outcome` are ipfleet's additions: Mailgun users cannot see why
a domain lands where it does; ipfleet's can.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from services.reputation.domain.assignment import (
    DomainState,
    Outcome,
    judge_health_check,
)
from services.reputation.domain.bands import Band, HealthMetrics, Verdict
from services.reputation.domain.thresholds import DynamicPoolThresholds

# The state a domain would have the moment it enrolled: what a domain not enrolled is judged from.
_JUST_ENROLLED = DomainState(enrolled=True, band=Band.NEW)


class Evaluation(BaseModel):
    """A dry-run answer. `pool` is where the domain would be after this check, counting its
    band, hysteresis and override; `outcome` is `not_enrolled` when the domain is not enrolled,
    and `pool` is then where it would be had it enrolled just before the check."""

    model_config = ConfigDict(frozen=True)

    pool: str
    outcome: Outcome
    reason: str
    verdict: Verdict

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Each metric's value and band, the band named by its pool as seed 003 shows it."""
        return {
            mb.metric.value: {"value": mb.value, "band": mb.band.pool}
            for mb in self.verdict.metric_bands
        }

    def preview(self) -> dict[str, Any]:
        """The JSON-ready answer carried by `domain.evaluated`."""
        return {
            "pool": self.pool,
            **self.metrics(),
            "reason": self.reason,
            "outcome": self.outcome.value,
        }


def evaluate(
    metrics: HealthMetrics,
    thresholds: DynamicPoolThresholds,
    state: DomainState | None = None,
) -> Evaluation:
    """What a health check with `metrics` would do to the domain in `state` (None, or not
    enrolled: judged as a domain that has just enrolled). Changes nothing."""
    subject = state if state is not None and state.enrolled else None
    judgement = judge_health_check(
        subject if subject is not None else _JUST_ENROLLED, metrics, thresholds
    )
    pool = judgement.state.pool
    assert pool is not None  # an enrolled domain is always in a pool
    return Evaluation(
        pool=pool,
        outcome=judgement.outcome if subject is not None else Outcome.NOT_ENROLLED,
        reason=judgement.reason,
        verdict=judgement.verdict,
    )
