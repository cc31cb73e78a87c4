"""The clocks an entity is judged on: its own partition's, or the one safe for every
partition, which exists only once every partition of the topic is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.event_clock import PartitionClock, SubscriptionClock

T = datetime(2026, 1, 5, 9, tzinfo=UTC)
H = timedelta(hours=1)


def test_an_entity_is_judged_on_its_own_partition_only() -> None:
    clocks = SubscriptionClock(
        {0: PartitionClock(T, partitions=2), 1: PartitionClock(T + H, partitions=2)}
    )
    assert clocks.of(0) == T and clocks.of(1) == T + H
    assert clocks.of(2) is None


def test_the_slowest_clock_waits_for_every_partition_of_the_topic() -> None:
    two_of_three = {0: PartitionClock(T, partitions=3), 1: PartitionClock(T + H, partitions=3)}
    assert SubscriptionClock(two_of_three).slowest() is None  # partition 2 has no clock yet
    unread = two_of_three | {2: PartitionClock(None, partitions=3)}
    assert SubscriptionClock(unread).slowest() is None  # partition 2 has records unread
    read = two_of_three | {2: PartitionClock(T + 2 * H, partitions=3)}
    assert SubscriptionClock(read).slowest() == T


def test_without_the_partition_count_no_clock_is_safe_for_every_partition() -> None:
    # Clocks written by batches alone: a partition nothing was read on is missing, unseen.
    read_only = {0: PartitionClock(T), 1: PartitionClock(T + H)}
    assert SubscriptionClock(read_only).slowest() is None
    assert SubscriptionClock({}).slowest() is None
