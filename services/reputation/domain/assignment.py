"""Which dynamic pool an enrolled domain is in, and every way it moves.

A domain's `DomainState` changes through five pure functions: `judge_health_check` (the
system), `enroll` / `unenroll` (the operator), `set_override` / `clear_override` (an override).
Each change of pool comes back as a `Move`, the content of one history record and of one
`domain.pool_changed` event; the caller adds the domain, the account and the event time.

Rules, on top of the bands (`bands.judge_metrics`):
- hysteresis: a domain enters `dynamic_poor` on the first poor check, and leaves it only after
  `good_checks_to_leave_poor` consecutive good checks. A check below the minimum volume is not a
  good check: it breaks the streak and does not move a poor domain to `dynamic_new`.
- override: while a domain is pinned to a pool, health checks still run and update its judged
  band (so the override can be lifted safely) but move nothing. Clearing the override puts the
  domain straight into its judged band.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.reputation.domain.bands import (
    Band,
    HealthMetrics,
    Metric,
    Verdict,
    judge_metrics,
    reason_for,
)
from services.reputation.domain.refusals import Refusal
from services.reputation.domain.thresholds import DynamicPoolThresholds

InitiatedBy = Literal["system", "override", "operator"]

REASON_ENROLLED = "Domain enrolled"
REASON_UNENROLLED = "Domain unenrolled"
REASON_OVERRIDE_SET = "Override set"
REASON_OVERRIDE_CLEARED = "Override cleared"
REASON_NOT_ENROLLED = "Domain not enrolled"


class DomainState(BaseModel):
    """One sending domain's place in the dynamic pools.

    `band` is the judged band (hysteresis applied), kept up to date even under an override.
    `good_streak` counts consecutive good checks while the band is poor. `entry_bands` are the
    per-metric bands of the check that moved the domain into `band` (None when it got there by
    enrolment); they make the reason for leaving name the metric that recovered.
    `static_pool` is the domain's pool while not enrolled (an unenrol's replacement pool).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enrolled: bool = False
    band: Band | None = None
    good_streak: int = Field(default=0, ge=0)
    override_pool: str | None = Field(default=None, min_length=1)
    entry_bands: dict[Metric, Band] | None = None
    static_pool: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DomainState:
        if self.enrolled:
            if self.band is None:
                raise ValueError("an enrolled domain has a band")
            if self.static_pool is not None:
                raise ValueError("an enrolled domain's pool comes from its band or override")
        elif (self.band, self.override_pool, self.entry_bands) != (None, None, None):
            raise ValueError("a domain that is not enrolled has no band and no override")
        if self.good_streak and self.band is not Band.POOR:
            raise ValueError("good_streak counts only while the band is poor")
        return self

    @property
    def pool(self) -> str | None:
        """The pool the domain sends from: its override, else its band's dynamic pool; when not
        enrolled, its static pool (None: the account's default pool)."""
        if not self.enrolled:
            return self.static_pool
        if self.override_pool is not None:
            return self.override_pool
        assert self.band is not None
        return self.band.pool


class Move(BaseModel):
    """A history record: the domain went from `prev_pool` to `new_pool`, and why.

    `metrics` are the health check's numbers for system moves, None otherwise. An override set
    to the pool the domain is already in is still a record, with `changes_pool` False.
    """

    model_config = ConfigDict(frozen=True)

    prev_pool: str | None
    new_pool: str | None
    reason: str
    initiated_by: InitiatedBy
    metrics: HealthMetrics | None = None

    @property
    def changes_pool(self) -> bool:
        return self.prev_pool != self.new_pool

    def as_event_data(self) -> dict[str, Any]:
        """The `domain.pool_changed` fields this move fills (all but `domain`, `account_id`)."""
        return {
            "prev_pool": self.prev_pool,
            "new_pool": self.new_pool,
            "reason": self.reason,
            "bounce_rate": self.metrics.bounce_rate if self.metrics else None,
            "complaint_rate": self.metrics.complaint_rate if self.metrics else None,
            "processed_count": self.metrics.processed_count if self.metrics else None,
            "initiated_by": self.initiated_by,
        }


class Outcome(StrEnum):
    """What a health check did to the domain, for the record of the check."""

    MOVED = "moved"
    UNCHANGED = "unchanged"
    HELD_IN_POOR = "held_in_poor"  # the check points out of dynamic_poor; hysteresis holds it
    HELD_BY_OVERRIDE = "held_by_override"
    NOT_ENROLLED = "not_enrolled"


@dataclass(frozen=True, slots=True)
class Judgement:
    """The result of one health check: the next state, the move (None if the pool stays), what
    happened, the verdict of the metrics, and a sentence saying why the domain is where it is."""

    state: DomainState
    move: Move | None
    outcome: Outcome
    verdict: Verdict
    reason: str


class Change(NamedTuple):
    """The result of an operator or override command: the next state and its history record."""

    state: DomainState
    move: Move


def apply_hysteresis(
    current: Band, good_streak: int, verdict: Band, needed: int
) -> tuple[Band, int]:
    """The judged band and good streak after a check whose verdict is `verdict`.

    A domain outside poor takes the verdict at once, so it drops into poor on the first poor
    check. A domain in poor leaves (for good) only on the `needed`-th consecutive good verdict;
    a poor or below-minimum (`new`) verdict resets the streak and keeps it poor.
    """
    if current is not Band.POOR:
        return verdict, 0
    if verdict is not Band.GOOD:
        return Band.POOR, 0
    streak = good_streak + 1
    if streak >= needed:
        return Band.GOOD, 0
    return Band.POOR, streak


def judge_health_check(
    state: DomainState, metrics: HealthMetrics, thresholds: DynamicPoolThresholds
) -> Judgement:
    """Judge one `domain.health_checked` for a domain.

    Not enrolled: nothing changes (the check is still judged, for the record). Enrolled: the
    judged band follows `apply_hysteresis`; under an override it changes silently and nothing
    moves; otherwise a change of band is a `Move` initiated by `system`.
    """
    verdict = judge_metrics(metrics, thresholds, state.band or Band.NEW)
    if not state.enrolled or state.band is None:
        return Judgement(state, None, Outcome.NOT_ENROLLED, verdict, REASON_NOT_ENROLLED)

    needed = thresholds.good_checks_to_leave_poor
    band, streak = apply_hysteresis(state.band, state.good_streak, verdict.band, needed)
    moved = band is not state.band
    after = DomainState(
        enrolled=True,
        band=band,
        good_streak=streak,
        override_pool=state.override_pool,
        entry_bands=verdict.bands() if moved else state.entry_bands,
    )
    held_in_poor = band is Band.POOR and verdict.band is not Band.POOR
    if state.override_pool is not None:
        reason = f"Pinned to {state.override_pool} by override"
        return Judgement(after, None, Outcome.HELD_BY_OVERRIDE, verdict, reason)
    if held_in_poor:
        reason = (
            f"Held in {Band.POOR.pool}: {streak} of {needed} consecutive good checks"
            if verdict.band is Band.GOOD
            else f"Held in {Band.POOR.pool}: {reason_for(verdict)}"
        )
        return Judgement(after, None, Outcome.HELD_IN_POOR, verdict, reason)
    if not moved:
        return Judgement(after, None, Outcome.UNCHANGED, verdict, reason_for(verdict))

    # Here band == verdict.band: hysteresis only ever holds a domain in poor.
    reason = reason_for(verdict, state.entry_bands)
    move = Move(
        prev_pool=state.pool,
        new_pool=band.pool,
        reason=reason,
        initiated_by="system",
        metrics=metrics,
    )
    return Judgement(after, move, Outcome.MOVED, verdict, reason)


def enroll(state: DomainState, *, feature_enabled: bool) -> Change | Refusal:
    """Enrol a domain: it starts in `dynamic_new` until a health check judges it.

    Refused (`conflict`) unless dynamic pools are enabled for the account, and when the domain
    is already enrolled.
    """
    if not feature_enabled:
        return Refusal(
            "conflict",
            "dynamic IP pools are not enabled for this account: "
            "run dynamic_pools.configure with enabled=true before enrolling domains",
        )
    if state.enrolled:
        return Refusal("conflict", "the domain is already enrolled in dynamic IP pools")
    after = DomainState(enrolled=True, band=Band.NEW)
    move = Move(
        prev_pool=state.pool,
        new_pool=after.pool,
        reason=REASON_ENROLLED,
        initiated_by="operator",
    )
    return Change(after, move)


def unenroll(state: DomainState, replacement_pool: str | None = None) -> Change | Refusal:
    """Take a domain out of dynamic pools, into `replacement_pool` (None: no pool of its own,
    so the account's default pool). Its override goes with it.

    Refused when the domain is not enrolled (`conflict`) or the replacement is a dynamic pool
    (`invalid`). Whether a named replacement pool exists is the account's business: see
    `pools.check_pool_reference`.
    """
    if not state.enrolled:
        return Refusal("conflict", "the domain is not enrolled in dynamic IP pools")
    if replacement_pool is not None:
        if Band.of_pool(replacement_pool) is not None:
            return Refusal(
                "invalid",
                f"the replacement pool cannot be a dynamic pool ({replacement_pool}): "
                "dynamic pools are for enrolled domains",
            )
        if not replacement_pool.strip():
            return Refusal("invalid", "the replacement pool name is empty")
    after = DomainState(enrolled=False, static_pool=replacement_pool)
    move = Move(
        prev_pool=state.pool,
        new_pool=after.pool,
        reason=REASON_UNENROLLED,
        initiated_by="operator",
    )
    return Change(after, move)


def set_override(state: DomainState, pool: str) -> Change | Refusal:
    """Pin an enrolled domain to `pool` (a dynamic pool or a named one): health checks go on
    being judged but move nothing until `clear_override`. Setting a new override replaces the
    old one.

    Refused when the domain is not enrolled (`conflict`) or the pool name is empty
    (`invalid`). Whether a named pool exists: see `pools.check_pool_reference`.
    """
    if not state.enrolled:
        return Refusal(
            "conflict", "the domain is not enrolled in dynamic IP pools; enroll it first"
        )
    if not pool.strip():
        return Refusal("invalid", "the override pool name is empty")
    after = DomainState.model_validate({**state.model_dump(), "override_pool": pool})
    move = Move(
        prev_pool=state.pool,
        new_pool=pool,
        reason=REASON_OVERRIDE_SET,
        initiated_by="override",
    )
    return Change(after, move)


def clear_override(state: DomainState) -> Change | Refusal:
    """Lift a domain's override: it goes at once to its judged band's pool (the band health
    checks kept judging while the override held), not to wait for the next check. A domain
    pinned to `dynamic_good` while its checks were poor lands in `dynamic_poor` now.

    Refused (`conflict`) when the domain is not enrolled or has no override.
    """
    if not state.enrolled:
        return Refusal("conflict", "the domain is not enrolled in dynamic IP pools")
    if state.override_pool is None:
        return Refusal("conflict", "the domain has no override to clear")
    after = DomainState.model_validate({**state.model_dump(), "override_pool": None})
    move = Move(
        prev_pool=state.pool,
        new_pool=after.pool,
        reason=REASON_OVERRIDE_CLEARED,
        initiated_by="override",
    )
    return Change(after, move)


def rename_pool_reference(state: DomainState, old: str, new: str) -> DomainState:
    """The state once named pool `old` is renamed `new`: an override or replacement pool naming
    it follows the rename. Not a move (the domain sends from the same IPs), so no record."""
    update: dict[str, Any] = {}
    if state.override_pool == old:
        update["override_pool"] = new
    if state.static_pool == old:
        update["static_pool"] = new
    if not update:
        return state
    return DomainState.model_validate({**state.model_dump(), **update})
