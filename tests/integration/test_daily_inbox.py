"""The day-partitioned inbox's claim on the real Postgres: which ids of a batch are new,
which were seen before (on any of their days), and the keys it keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from shared import database as shared_database
from shared.contract.envelope import CloudEvent
from shared.daily_inbox import DailyInbox, event_key
from shared.messages import Received

pytestmark = pytest.mark.integration

CONSUMER = "warmup/send.recorded"
DAY1 = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(hours=2)


def received(event_id: str, time: datetime) -> Received:
    event = CloudEvent(
        specversion="1.0", id=event_id, source="test", type="send.recorded", time=time, data={}
    )
    return Received(event, {}, "send.recorded", None)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await shared_database.create_pool(database, "warmup", max_size=2)
    yield pool
    await pool.close()


async def claim(
    pool: asyncpg.Pool, inbox: DailyInbox, items: list[Received], horizon: date | None = None
) -> tuple[list[str], list[str]]:
    await inbox.ensure(pool, items)
    async with pool.acquire() as conn, conn.transaction():
        fresh, expired = await inbox.claim(conn, items, horizon)
    return [i.event.id for i in fresh], [i.event.id for i in expired]


async def test_ids_seen_before_on_either_day_are_told_apart_in_order(
    pool: asyncpg.Pool,
) -> None:
    inbox = DailyInbox(CONSUMER, retention_days=7)
    first = [received(f"a{i}", DAY1 if i % 2 else DAY2) for i in range(10)]
    assert await claim(pool, inbox, first) == ([f"a{i}" for i in range(10)], [])

    # Some of the first batch again (on both days), new ids between them, and an id twice.
    again = [
        received("b0", DAY2),
        first[3],
        received("b1", DAY1),
        first[4],
        received("b1", DAY1),
        received("b2", DAY2),
        first[9],
    ]
    assert await claim(pool, inbox, again) == (["b0", "b1", "b2"], [])

    # Nothing new: every position is told, and nothing is kept twice.
    assert await claim(pool, inbox, first[:5]) == ([], [])
    kept = await pool.fetch("SELECT event_day, event_key::text AS key FROM inbox_days")
    assert len(kept) == 13
    assert {(r["event_day"], r["key"].replace("-", "")) for r in kept} == {
        (item.event.time.date(), event_key(CONSUMER, item.event.id))
        for item in [*first, again[0], again[2], again[5]]
    }


async def test_the_same_id_on_another_day_is_another_event(pool: asyncpg.Pool) -> None:
    inbox = DailyInbox(CONSUMER, retention_days=7)
    assert await claim(pool, inbox, [received("x", DAY1)]) == (["x"], [])
    assert await claim(pool, inbox, [received("x", DAY2)]) == (["x"], [])
    assert await claim(pool, inbox, [received("x", DAY2), received("x", DAY1)]) == ([], [])


async def test_an_event_older_than_the_window_is_not_claimed(pool: asyncpg.Pool) -> None:
    inbox = DailyInbox(CONSUMER, retention_days=7)
    items = [received("old", DAY1), received("new", DAY2)]
    assert await claim(pool, inbox, items, horizon=DAY2.date()) == (["new"], ["old"])
    assert await pool.fetchval("SELECT count(*) FROM inbox_days") == 1
