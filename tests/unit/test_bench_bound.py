"""The bench's bound by the start: what the start alone leaves of the ratio."""

import pytest

from bench.warmup import best_ratio, needed_rate


def test_no_start_leaves_the_whole_ceiling() -> None:
    assert best_ratio(200_000, 150_000.0, 0.0) == pytest.approx(1.0)


def test_a_start_as_long_as_the_counting_halves_it() -> None:
    # 150,000 sends at 150,000/s take 1 s; a 1 s start makes 2 s in all.
    assert best_ratio(150_000, 150_000.0, 1.0) == pytest.approx(0.5)


def test_the_join_hold_keeps_small_runs_under_a_quarter() -> None:
    # 200k sends, a 150k/s ceiling, 3.6 s from launch to the assignment (this machine's).
    assert best_ratio(200_000, 150_000.0, 3.6) == pytest.approx(0.270, abs=0.001)
    assert best_ratio(200_000, 150_000.0, 4.1) < 0.25
    # The same start weighs less on 1M sends.
    assert best_ratio(1_000_000, 150_000.0, 3.6) > 0.6


def test_the_rate_needed_for_a_quarter_after_a_start() -> None:
    # 200k sends, a 150k/s ceiling: a quarter is 37,500/s, 5.33 s in all; after a 3.33 s
    # start, 2 s are left, so 100,000/s from the assignment on.
    assert needed_rate(0.25, 200_000, 150_000.0, 200_000 / 37_500 - 2.0) == pytest.approx(100_000.0)
    # Counting at that rate prints the target exactly.
    before = 3.6
    rate = needed_rate(0.25, 200_000, 150_000.0, before)
    assert 200_000 / (before + 200_000 / rate) / 150_000.0 == pytest.approx(0.25)


def test_no_rate_is_enough_when_the_start_takes_the_whole_budget() -> None:
    assert needed_rate(0.25, 200_000, 150_000.0, 5.4) == float("inf")
