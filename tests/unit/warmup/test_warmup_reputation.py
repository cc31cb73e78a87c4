"""The reputation score: 0..100 from a rolling window of outcomes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.warmup.domain.reputation import reputation_score, score_window
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.send_counts import OutcomeCounts


def test_no_data_is_neutral() -> None:
    assert reputation_score(OutcomeCounts()) == 50
    assert reputation_score(OutcomeCounts(dropped=1_000)) == 50  # drops never reached anyone


@pytest.mark.parametrize(
    ("counts", "score"),
    [
        (OutcomeCounts(delivered=1), 50),  # one clean send proves little
        (OutcomeCounts(delivered=100), 75),
        (OutcomeCounts(delivered=1_000), 95),
        (OutcomeCounts(delivered=100_000), 100),
        # 5% bounces (Mailgun's limit): 95 - 25 = 70.
        (OutcomeCounts(delivered=95_000, bounced=5_000), 70),
        # 0.3% complaints (Gmail's limit): 100 - 30 = 70.
        (OutcomeCounts(delivered=99_700, complained=300), 70),
        # 1% complaints or 20% bounces: nothing left.
        (OutcomeCounts(delivered=99_000, complained=1_000), 0),
        (OutcomeCounts(delivered=80_000, bounced=20_000), 0),
        # Deferrals only dilute the delivery share.
        (OutcomeCounts(delivered=90_000, deferred=10_000), 90),
    ],
)
def test_documented_formula(counts: OutcomeCounts, score: int) -> None:
    assert reputation_score(counts) == score


counts_strategy = st.builds(
    OutcomeCounts,
    delivered=st.integers(0, 10**6),
    deferred=st.integers(0, 10**5),
    bounced=st.integers(0, 10**5),
    complained=st.integers(0, 10**4),
    dropped=st.integers(0, 10**5),
)


@given(counts_strategy)
def test_score_is_bounded(counts: OutcomeCounts) -> None:
    assert 0 <= reputation_score(counts) <= 100


@given(counts_strategy, st.integers(1, 10**4))
def test_more_complaints_or_bounces_never_raise_the_score(
    counts: OutcomeCounts, extra: int
) -> None:
    worse_complaints = OutcomeCounts(
        counts.delivered, counts.deferred, counts.bounced, counts.complained + extra, counts.dropped
    )
    worse_bounces = OutcomeCounts(
        counts.delivered, counts.deferred, counts.bounced + extra, counts.complained, counts.dropped
    )
    # Holding the number of sends fixed, turning deliveries into complaints or bounces.
    moved = min(extra, counts.delivered)
    swapped = OutcomeCounts(
        counts.delivered - moved, counts.deferred, counts.bounced, counts.complained + moved,
        counts.dropped,
    )  # fmt: skip
    base = reputation_score(counts)
    assert reputation_score(swapped) <= base
    # Adding bad sends can only move the score toward the bad side of neutral or lower.
    assert reputation_score(worse_complaints) <= max(base, 50)
    assert reputation_score(worse_bounces) <= max(base, 50)


def test_score_window_is_whole_utc_days_including_today() -> None:
    now = datetime(2026, 11, 23, 0, 5, tzinfo=UTC)
    assert score_window(now, WarmupRules()) == (date(2026, 10, 25), date(2026, 11, 23))
    assert score_window(now, WarmupRules(score_window=timedelta(days=1))) == (
        date(2026, 11, 23),
        date(2026, 11, 23),
    )
