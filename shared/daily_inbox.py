"""The day-partitioned inbox of a high-volume stream (`Consumer.inbox == "daily"`).

Event ids are kept per UTC day of event time, in partitions of `inbox_days` dropped whole
once every partition of the topic has read past the retention window: retention in bulk,
not by row. An id is kept as its `event_key`, a 16-byte digest of the consumer's name and
the id: a narrow row and index entry, since every id lands at a random place of the index
(on 500k sends the text ids were ~88% of the send path's WAL, and their claim the step each
batch waited on). A 128-bit digest (of SHA-256) makes two ids that collide beyond any
workload. An event older than the window cannot be told apart from a replay, so it is
dead-lettered (`OutsideRetention`), never applied twice. Expiry and dropping use the same
clock, the slowest partition's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import asyncpg

from shared import event_clock
from shared.messages import Received
from shared.sql import load_statements

SQL = load_statements("shared", "inbox.sql")


@dataclass
class DailyInbox:
    """One subscription's day-partitioned inbox; knows which day partitions exist."""

    consumer: str  # service/topic
    retention_days: int
    _known: set[str] = field(default_factory=set)

    def missing(self, valid: Iterable[Received]) -> bool:
        """Whether some event's day has no partition known yet (create it first, outside
        any transaction)."""
        days = {v.event.time.date() for v in valid}
        return any(partition_name(day) not in self._known for day in days)

    async def ensure(self, pool: asyncpg.Pool, valid: Iterable[Received]) -> None:
        """Create the day partitions these events need (never inside a batch's transaction)."""
        days = {v.time.date() for v in valid}
        missing = {d for d in days if partition_name(d) not in self._known}
        if not missing:
            return
        async with pool.acquire() as conn:
            self._known.update(r["name"] for r in await conn.fetch(SQL.daily_partitions))
            for day in sorted(d for d in missing if partition_name(d) not in self._known):
                await create_day_partition(conn, day)
                self._known.add(partition_name(day))

    async def horizon(self, conn: asyncpg.Connection) -> date | None:
        """Days before this are outside the deduplication window. On the slowest partition's
        clock, as inbox retention drops them: a partition read ahead of the others must not
        expire the days a slower one is still reading."""
        clock = await event_clock.load_subscription(conn, self.consumer)
        watermark = clock.slowest()
        if watermark is None:
            return None
        return watermark.date() - timedelta(days=self.retention_days)

    async def claim(
        self, conn: asyncpg.Connection, valid: list[Received], horizon: date | None
    ) -> tuple[list[Received], list[Received]]:
        """Record the events' ids under their day; return (not seen before, too old to
        judge). The first occurrence of an id in the batch wins."""
        judged: list[Received] = []
        expired: list[Received] = []
        ids: set[str] = set()
        days: list[date] = []
        keys = bytearray()
        digest_of = digests_of(self.consumer)
        for item in valid:
            day = item.event.time.date()
            if horizon is not None and day < horizon:
                expired.append(item)
                continue
            if item.event.id in ids:
                continue  # the first occurrence in the batch wins
            ids.add(item.event.id)
            judged.append(item)
            keys += digest_of(item.event.id)
            days.append(day)
        if not judged:
            return [], expired
        seen_before = set(await conn.fetchval(SQL.claim_daily, days, bytes(keys)))
        if not seen_before:
            return judged, expired
        return [item for n, item in enumerate(judged, 1) if n not in seen_before], expired


def event_key(consumer: str, event_id: str) -> str:
    """An event's key in the daily inbox: the first 16 bytes of SHA-256 over the consumer's
    name, U+001F and the id (UTF-8), as hex (a uuid's digits). Migration 0004 computes the
    same in SQL for the ids it moved over."""
    return digests_of(consumer)(event_id).hex()


def digests_of(consumer: str) -> Callable[[str], bytes]:
    """`event_key` for one consumer as its 16 bytes, the consumer's name hashed once."""
    prefix = hashlib.sha256(f"{consumer}\x1f".encode())

    def digest(event_id: str) -> bytes:
        hashed = prefix.copy()
        hashed.update(event_id.encode("utf-8", "surrogatepass"))
        return hashed.digest()[:16]

    return digest


def partition_name(day: date) -> str:
    return f"inbox_days_{day:%Y%m%d}"


async def create_day_partition(conn: asyncpg.Connection, day: date) -> None:
    """Create the inbox partition of one UTC day; harmless when it exists."""
    nxt = day + timedelta(days=1)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF inbox_days "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')"
        )
    except asyncpg.DuplicateTableError:
        pass  # another replica created it between our check and our CREATE


async def drop_expired_day_partitions(conn: asyncpg.Connection, before: date) -> list[str]:
    """Drop whole inbox partitions of days before `before`: retention in bulk, not by row."""
    dropped = []
    for row in await conn.fetch(SQL.daily_partitions):
        name: str = row["name"]
        day = datetime.strptime(name.removeprefix("inbox_days_"), "%Y%m%d").date()
        if day < before:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    return dropped
