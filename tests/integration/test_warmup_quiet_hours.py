"""IPs a batch leaves as they stand (their hours to close can decide nothing, `must_settle`)
over the real pipeline and Postgres: the same log read in one batch, in batches of 7 and of
40 gives the same events (ids, types, times, data, causes) and the same states but for the
bookkeeping an IP left as it stands catches up on later (its watermark and last hour with
sends). The log is one a warming IP on default rules sends at a few sends an hour, so that
from its 20th send of the day on only the largest hour's count (read from the counters)
tells that its hours cannot reach the hourly limit; its daily limit and then one busy
hour's hourly limit are reached among them, each by the batch that brings every IP up to
date (the straightforward path) reaches it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.fleet import migrate
from services.warmup import handlers, store
from shared import database as shared_database
from shared.pipeline import Pipeline
from tests.integration.test_warmup_batches import (
    FakeRecord,
    register_warming,
    send_record,
    sends_consumer,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY1 = datetime(2026, 3, 2, tzinfo=UTC)
IPS = [
    ("ip_q", "acct_q", "198.51.100.7"),
    ("ip_r", "acct_r", "198.51.100.8"),
    ("ip_s", "acct_s", "198.51.100.9"),
]
BOOKKEEPING = ("closed_until", "last_send_hour")


def send(n: int, ip: int, at: datetime) -> FakeRecord:
    _, account, address = IPS[ip]
    return send_record(f"quiet-{n}", account, address, at, "delivered", offset=n)


def recorded_log() -> list[FakeRecord]:
    """Three IPs, into the next day, so that the first day closes for each:
    - ip_q: three sends an hour from 09:00 to 18:00 and one at 19:00 (31), then 19 from
      21:01 to 21:37, the last of which is its 50th of the day (the daily limit: hour 21 is
      judged), one at 21:58 (its 20th of the hour: the hourly limit) read in one batch with
      one at 22:05 (that batch judges hour 21 again while bringing the IP to 22:00), then
      two an hour;
    - ip_r: three an hour all day (always quiet);
    - ip_s: six an hour from 09:00 to 20:00 (its daily limit reached at 17:00 by its 50th),
      then 25 at 21:00 (the 20th reaches the hourly limit in an hour after the one judged),
      then two an hour."""
    timed: list[tuple[datetime, int]] = []
    for hour in range(9, 19):
        timed += [(DAY1 + timedelta(hours=hour, minutes=20 * k + 1), 0) for k in range(3)]
    timed += [(DAY1 + timedelta(hours=19, minutes=11), 0)]
    timed += [(DAY1 + timedelta(hours=21, minutes=2 * k + 1), 0) for k in range(19)]
    timed += [(DAY1 + timedelta(hours=21, minutes=58), 0), (LATE_PAIR, 0)]
    for hour in range(8, 24):
        timed += [(DAY1 + timedelta(hours=hour, minutes=20 * k + 7), 1) for k in range(3)]
    for hour in range(9, 21):
        timed += [(DAY1 + timedelta(hours=hour, minutes=8 * k + 4), 2) for k in range(6)]
    timed += [(DAY1 + timedelta(hours=21, minutes=2 * k + 2), 2) for k in range(25)]
    for ip in (0, 2):
        timed += [
            (DAY1 + timedelta(hours=h, minutes=25 + 20 * k), ip) for h in (22, 23) for k in (0, 1)
        ]
    timed += [
        (DAY1 + timedelta(days=1, hours=2, minutes=k), ip) for k in range(2) for ip in (0, 1, 2)
    ]
    timed.sort()
    return [send(n, ip, at) for n, (at, ip) in enumerate(timed)]


LATE_PAIR = DAY1 + timedelta(hours=22, minutes=5)


@asynccontextmanager
async def fresh_database(server: str, name: str) -> AsyncIterator[asyncpg.Pool]:
    base, _, _ = server.rpartition("/")
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        await migrate(f"{base}/{name}")
        pool = await shared_database.create_pool(f"{base}/{name}", "warmup", max_size=2)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def read(pool: asyncpg.Pool, log: list[FakeRecord], batch: int) -> tuple[Any, Any]:
    """The events emitted, in the order they were, each with the first record of the batch
    that emitted it; and each IP's state, bookkeeping aside."""
    pipeline = Pipeline(sends_consumer(), pool)
    events = []
    for first in range(0, len(log), batch):
        assert await pipeline.process(log[first : first + batch])
        rows = await pool.fetch("SELECT key, value FROM outbox ORDER BY position")
        for row in rows[len(events) :]:
            event = json.loads(row["value"])
            events.append(
                (row["key"], event["id"], event["type"], event["time"], event.get("causationid"),
                 event["data"], first)
            )  # fmt: skip
    states = {}
    for row in await pool.fetch("SELECT ip_id, state::text FROM warmup_ips ORDER BY ip_id"):
        state = json.loads(row["state"])
        states[row["ip_id"]] = {k: v for k, v in state.items() if k not in BOOKKEEPING}
    return events, states


async def test_ips_left_as_they_stand_decide_the_same_however_the_log_is_batched(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = recorded_log()
    peaks_read: list[int] = []
    reading = store.hour_peaks

    async def noted(conn: asyncpg.Connection, hours: Any) -> dict[str, int]:
        peaks = await reading(conn, hours)
        peaks_read.extend(peaks.values())
        return peaks

    monkeypatch.setattr(handlers.store, "hour_peaks", noted)
    # The send that reaches the hourly limit shares its batch with the first of hour 22.
    pair = next(
        n for n, r in enumerate(log) if json.loads(r.value)["time"] == "2026-03-02T22:05:00Z"
    )
    assert all((pair - 1) // batch == pair // batch for batch in (40, 7))
    readings = {}
    for batch in (len(log), 40, 7):
        async with fresh_database(postgres_server.url, f"t_quiet_{batch}") as pool:
            await register_warming(pool, IPS, T0)
            readings[batch] = await read(pool, log, batch)
    # The straightforward path: every IP a batch counted sends for is brought up to date.
    with monkeypatch.context() as patch:
        patch.setattr(handlers, "must_settle", lambda *_: True)
        for batch in (40, 7):
            async with fresh_database(postgres_server.url, f"t_quiet_all_{batch}") as pool:
                await register_warming(pool, IPS, T0)
                readings[-batch] = await read(pool, log, batch)

    events, _ = readings[len(log)]

    def sends_of(ip: int, hour: str = "") -> list[str]:
        address = IPS[ip][2]
        return [
            e["id"]
            for e in map(json.loads, (r.value for r in log))
            if e["data"]["ip"] == address and e["time"].startswith(f"2026-03-02T{hour}")
        ]

    assert sorted((key, kind, at, cause) for key, _, kind, at, cause, _, _ in events) == [
        ("ip_q", "ip.daily_limit_reached", "2026-03-02T21:00:00Z", sends_of(0)[49]),
        ("ip_q", "ip.hourly_limit_reached", "2026-03-02T21:00:00Z", sends_of(0, "21:")[19]),
        ("ip_q", "ip.warmup_advanced", "2026-03-03T00:00:00Z", None),
        ("ip_r", "ip.warmup_advanced", "2026-03-03T00:00:00Z", None),
        ("ip_s", "ip.daily_limit_reached", "2026-03-02T17:00:00Z", sends_of(2)[49]),
        ("ip_s", "ip.hourly_limit_reached", "2026-03-02T21:00:00Z", sends_of(2, "21:")[19]),
        ("ip_s", "ip.warmup_advanced", "2026-03-03T00:00:00Z", None),
    ]
    # The smaller batches read hours' peaks: most were below the limit (the IP was left as it
    # stood), the busy hour's was not.
    assert min(peaks_read) < 20 <= max(peaks_read)
    # The same events and states however batched, each event from the same batch as the
    # straightforward path's.
    for batch in (40, 7):
        assert in_order(readings[batch]) == in_order(readings[-batch])
        assert strip(readings[batch]) == strip(readings[len(log)])


def in_order(reading: tuple[Any, Any]) -> tuple[Any, Any]:
    """A reading's events by the batch that emitted them, then by id (one batch's events of
    several IPs come in no particular order)."""
    events, states = reading
    return sorted(events, key=lambda e: (e[-1], e[1])), states


def strip(reading: tuple[Any, Any]) -> tuple[Any, Any]:
    """A reading without the batches its events came from."""
    events, states = reading
    return sorted((event[:-1] for event in events), key=lambda e: e[1]), states


async def test_the_sweep_leaves_an_ip_left_quiet_alone_until_its_day_ends(
    postgres_server: Any,
) -> None:
    """A batch that leaves a warming IP as it stands notes the end of its day as its
    `quiet_until`: the close-days sweep's query skips it until then, and a state written for
    it (it is brought up to date) clears the note."""
    async with fresh_database(postgres_server.url, "t_quiet_sweep") as pool:
        await register_warming(pool, IPS, T0)
        pipeline = Pipeline(sends_consumer(), pool)
        at = DAY1 + timedelta(hours=9, minutes=10)
        # ip_q, started at 08:00, is left as it stands by both batches (clocks at 09:10 and
        # 12:10, a send each: a quiet day).
        assert await pipeline.process([send(1, 0, at)])
        later = [send(2, 0, at + timedelta(hours=3))]
        assert await pipeline.process(later)
        row = await pool.fetchrow(
            "SELECT closed_until, quiet_until FROM warmup_ips WHERE ip_id = 'ip_q'"
        )
        assert row["closed_until"] == T0
        assert row["quiet_until"] == DAY1 + timedelta(days=1)

        async def due(before: datetime) -> list[str]:
            async with pool.acquire() as conn, conn.transaction():
                ips = await store.due(conn, {0: before}, None, ["standard-14"], 500)
            return [ip.ip_id for ip in ips]

        # ip_r never sent (no partition): not judged on a partition's clock here.
        assert await due(DAY1 + timedelta(hours=12)) == []
        assert await due(DAY1 + timedelta(days=1)) == ["ip_q"]
        # Brought up to date (a send in the next day): the note is gone.
        assert await pipeline.process([send(3, 0, DAY1 + timedelta(days=1, hours=1))])
        assert (
            await pool.fetchval("SELECT quiet_until FROM warmup_ips WHERE ip_id = 'ip_q'") is None
        )


async def test_a_crossing_read_ahead_by_a_batch_that_leaves_its_ip_is_named_later(
    postgres_server: Any,
) -> None:
    """A batch that leaves an IP as it stands (a quiet day) may hold sends of the next day read
    ahead of the clock: the 20th send of the next day's first hour reaches its hourly limit
    there, and the batch that judges that hour, later, names that send as the cause, from the
    crossing the first batch noted (not the input it applies itself)."""
    ip = [("ip_t", "acct_t", "198.51.100.10")]
    async with fresh_database(postgres_server.url, "t_quiet_ahead") as pool:
        await register_warming(pool, ip, T0)
        pipeline = Pipeline(sends_consumer(), pool)

        def at(when: datetime, n: int) -> FakeRecord:
            return send_record(f"ahead-{n}", "acct_t", "198.51.100.10", when, "delivered", n)

        assert await pipeline.process(
            [at(DAY1 + timedelta(hours=10, minutes=k), k) for k in range(3)]
        )
        # The clock reaches 00:03:10 of the next day: less the 5 minutes' lateness, the IP is
        # judged up to 23:00 of the first, a quiet day (4 sends), and left as it stands.
        midnight = DAY1 + timedelta(days=1)
        ahead = [at(midnight + timedelta(seconds=10 * k), 10 + k) for k in range(20)]
        assert await pipeline.process([at(DAY1 + timedelta(hours=23, minutes=30), 3), *ahead])
        closed = await pool.fetchval("SELECT closed_until FROM warmup_ips WHERE ip_id = 'ip_t'")
        assert closed == T0  # left as it stands
        # A send at 01:10: hour 00:00 of the second day is judged, at its hourly limit of 20.
        assert await pipeline.process([at(midnight + timedelta(hours=1, minutes=10), 99)])
        events = [
            json.loads(row["value"])
            for row in await pool.fetch("SELECT value FROM outbox ORDER BY position")
        ]
        reached = [e for e in events if e["type"] == "ip.hourly_limit_reached"]
        assert [(e["time"], e.get("causationid")) for e in reached] == [
            ("2026-03-03T00:00:00Z", "ahead-29")
        ]
