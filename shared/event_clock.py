"""Event-time clocks: one per subscription and partition.

Every time-based rule runs on event time. Which event time matters: an entity keyed to one
partition is judged on the latest event time read on *that* partition, never on another's,
so that a partition read ahead of the others (a replay, a backlog after a restart, a
lagging replica) decides nothing for entities it does not carry.

A step that acts on no single partition (a sweep over entities whose partition is not known
yet, inbox retention) uses the *slowest* partition's clock, and nothing until every
partition of the topic has been read: a partition nothing was read on may hold a backlog
from any time. (So a topic with a partition that never carries a record never moves the
slowest clock; a real send stream spreads its keys over every partition.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from shared.sql import load_statements

SQL = load_statements("shared", "event_clock.sql")


@dataclass(frozen=True, slots=True)
class PartitionClock:
    watermark: datetime | None  # latest event time read there; None: nothing read yet
    partitions: int | None = None  # the topic's partition count, once known


@dataclass(frozen=True)
class SubscriptionClock:
    """The clocks of one subscription's partitions."""

    partitions: Mapping[int, PartitionClock] = field(default_factory=dict)

    def of(self, partition: int) -> datetime | None:
        """The clock the entities of `partition` are judged on: the latest event time read
        there (None: nothing read, judge nothing)."""
        clock = self.partitions.get(partition)
        return clock.watermark if clock is not None else None

    def slowest(self) -> datetime | None:
        """The clock safe for every partition: the minimum over all of them; None while one
        has read nothing, or the topic's partition count is not known (a partition nothing
        was read on might be missing from the clocks altogether)."""
        counts = [c.partitions for c in self.partitions.values() if c.partitions is not None]
        if not counts or len(self.partitions) < max(counts):
            return None
        read = [c.watermark for c in self.partitions.values()]
        if any(at is None for at in read):
            return None
        return min(at for at in read if at is not None)

    def judged(self) -> dict[int, datetime]:
        """`of` for every partition that has a clock."""
        return {p: c.watermark for p, c in self.partitions.items() if c.watermark is not None}


@dataclass(frozen=True)
class Clocks:
    """A service's partition clocks, as a sweep reads them at the start of its run."""

    subscriptions: Mapping[str, SubscriptionClock] = field(default_factory=dict)

    def of(self, consumer: str) -> SubscriptionClock:
        """One subscription's clocks, by consumer name (service/topic)."""
        return self.subscriptions.get(consumer, SubscriptionClock())

    @property
    def latest(self) -> datetime | None:
        """The furthest any partition has been read (for display, never for decisions)."""
        read = [
            c.watermark
            for s in self.subscriptions.values()
            for c in s.partitions.values()
            if c.watermark is not None
        ]
        return max(read) if read else None


def _subscriptions(rows: Iterable[asyncpg.Record]) -> dict[str, SubscriptionClock]:
    partitions: dict[str, dict[int, PartitionClock]] = {}
    for row in rows:
        partitions.setdefault(row["consumer"], {})[row["partition"]] = PartitionClock(
            row["watermark"], row["partitions"]
        )
    return {name: SubscriptionClock(p) for name, p in partitions.items()}


async def load(conn: asyncpg.Connection, service: str) -> Clocks:
    """Every subscription clock of one service."""
    return Clocks(_subscriptions(await conn.fetch(SQL.of_service, service)))


async def load_subscription(conn: asyncpg.Connection, consumer: str) -> SubscriptionClock:
    subscriptions = _subscriptions(await conn.fetch(SQL.of_consumer, consumer))
    return subscriptions.get(consumer, SubscriptionClock())


async def advance(
    conn: asyncpg.Connection, consumer: str, times: Iterable[tuple[int, datetime]]
) -> dict[int, datetime]:
    """Move each partition's clock to the latest of `(partition, event time)` read in a
    batch (never back); returns those partitions' clocks after the batch."""
    latest: dict[int, datetime] = {}
    for partition, at in times:
        seen = latest.get(partition)
        if seen is None or at > seen:
            latest[partition] = at
    if not latest:
        return {}
    parts = sorted(latest)
    rows = await conn.fetch(SQL.advance, consumer, parts, [latest[p] for p in parts])
    return {row["partition"]: row["watermark"] for row in rows}


async def know_partitions(conn: asyncpg.Connection, consumer: str, count: int) -> None:
    """Record that the topic has `count` partitions (unread ones hold the slowest clock)."""
    await conn.execute(SQL.know_partitions, consumer, count)
