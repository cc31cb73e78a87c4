"""Large send.recorded batches through the real pipeline and Postgres (no broker): the
overlapped path (chunks parsed while the previous chunk's ids are claimed) counts every event
exactly once, falls back when a new day needs its inbox partition, and survives a retry."""

from __future__ import annotations

import gc
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

import shared
from services.warmup import store
from services.warmup.domain.attribution import Owner
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.state import WarmupState
from services.warmup.domain.warmup_day import start
from services.warmup.handlers import SendsRead
from services.warmup.service import build
from services.warmup.settings import WarmupSettings
from shared import database as shared_database
from shared.consumer import Consumer
from shared.contract.events import IpRegistryChanged
from shared.daily_inbox import event_key
from shared.dead_letters import DeadLetter, forget_refusal
from shared.ingest import CHUNK as OVERLAP_CHUNK
from shared.messages import BatchResult, Received
from shared.pipeline import Pipeline
from shared.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
IPS = [("ip_a", "acct_a", "198.51.100.1"), ("ip_b", "acct_b", "198.51.100.2")]
OUTCOMES = ["delivered", "delivered", "delivered", "deferred", "bounced", "dropped"]


@dataclass
class FakeRecord:
    value: bytes
    key: bytes
    topic: str = "send.recorded"
    partition: int = 0
    offset: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def send_record(
    event_id: str, account: str, address: str, at: datetime, outcome: str, offset: int = 0
) -> FakeRecord:
    """One send.recorded as the broker would hand it over (keyed by the address)."""
    value = {
        "specversion": "1.0",
        "id": event_id,
        "source": "test",
        "type": "send.recorded",
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": {
            "account_id": account,
            "ip": address,
            "domain": "news.example.com",
            "outcome": outcome,
        },
    }
    return FakeRecord(json.dumps(value).encode(), address.encode(), offset=offset)


def sends(n: int, start: datetime, step: timedelta, tag: str) -> list[FakeRecord]:
    records = []
    for i in range(n):
        _, account, address = IPS[i % 2]
        outcome = OUTCOMES[i % len(OUTCOMES)]
        records.append(send_record(f"{tag}-{i}", account, address, start + i * step, outcome))
    return records


def expected(records: list[FakeRecord]) -> Counter[tuple[str, str, int, str]]:
    """What the counters must hold: each event id once, first occurrence."""
    tally: Counter[tuple[str, str, int, str]] = Counter()
    seen: set[str] = set()
    ids = {address: ip_id for ip_id, _, address in IPS}
    for record in records:
        event = json.loads(record.value)
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        at = datetime.fromisoformat(event["time"])
        tally[
            (ids[event["data"]["ip"]], at.date().isoformat(), at.hour, event["data"]["outcome"])
        ] += 1
    return tally


async def counters(pool: asyncpg.Pool) -> Counter[tuple[str, str, int, str]]:
    found: Counter[tuple[str, str, int, str]] = Counter()
    for row in await pool.fetch("SELECT * FROM warmup_counters"):
        for outcome in ("delivered", "deferred", "bounced", "complained", "dropped"):
            if row[outcome]:
                found[(row["ip_id"], row["day"].isoformat(), row["hour"], outcome)] = row[outcome]
    return found


async def register_warming(
    pool: asyncpg.Pool, ips: list[tuple[str, str, str]], at: datetime
) -> None:
    """Each (ip_id, account, address) registered and warming on standard-14 from `at`."""
    schedule = load_schedules(None)["standard-14"]
    async with pool.acquire() as conn:
        for ip_id, account, address in ips:
            # As warmup registers an IP from the registry's ip.provisioned.
            registry = IpRegistryChanged(
                ip_id=ip_id,
                account_id=account,
                address=address,
                region="global",
                pool=None,
                rdns=None,
                status="provisioning",
            )
            await store.register(conn, registry, at)
            state = start(WarmupState(), schedule, at, "earned").state
            await store.save_states(conn, {ip_id: state})


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await shared_database.create_pool(database, "warmup", max_size=4)
    await register_warming(pool, IPS, T0)
    yield pool
    await pool.close()


def sends_consumer(
    wrap: Callable[[Any], Callable[..., Awaitable[BatchResult]]] | None = None,
) -> Consumer:
    service = build(Settings(_env_file=None), WarmupSettings(_env_file=None))  # type: ignore[call-arg]
    consumer = next(c for c in service.consumers if c.topic == "send.recorded")
    if wrap is not None:
        consumer = replace(consumer, handle_batch=wrap(consumer.handle_batch))
    return consumer


class Spy:
    """Which of the pipeline's two paths ran, and how often."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.calls: list[str] = []
        for name in ("_apply", "_apply_in_chunks"):
            original = getattr(pipeline, name)

            async def spy(*args: Any, _original: Any = original, _name: str = name) -> Any:
                self.calls.append(_name)
                return await _original(*args)

            setattr(pipeline, name, spy)


async def test_a_large_batch_counts_each_event_once_across_chunks_and_batches(
    pool: asyncpg.Pool,
) -> None:
    pipeline = Pipeline(sends_consumer(), pool)
    spy = Spy(pipeline)
    day1 = T0 + timedelta(hours=1)
    earlier = sends(100, day1, timedelta(minutes=30), "early")  # two UTC days
    assert await pipeline.process(earlier)

    fresh = sends(4 * OVERLAP_CHUNK, day1, timedelta(seconds=20), "big")
    # Duplicates inside the batch, in later chunks, and events the earlier batch counted.
    batch = fresh[: 2 * OVERLAP_CHUNK] + earlier[:50] + fresh[2 * OVERLAP_CHUNK :]
    batch += fresh[:300] + fresh[-10:]
    assert await pipeline.process(batch)

    assert spy.calls == ["_apply", "_apply_in_chunks"]
    assert await counters(pool) == expected(earlier + batch)
    claimed = await pool.fetchval("SELECT count(*) FROM inbox_days")
    assert claimed == len(earlier) + len(fresh)


async def test_the_cyclic_collector_waits_while_a_large_batch_is_applied(
    pool: asyncpg.Pool,
) -> None:
    """Collections in the middle of a batch only rescan the batch's live objects; they wait
    for its end. A small batch (the general path) leaves the collector alone."""
    seen: list[bool] = []

    def wrap(handle: Any) -> Callable[..., Awaitable[BatchResult]]:
        async def observed(*args: Any, **kwargs: Any) -> BatchResult:
            seen.append(gc.isenabled())
            return cast(BatchResult, await handle(*args, **kwargs))

        return observed

    pipeline = Pipeline(sends_consumer(wrap), pool)
    assert gc.isenabled()
    small = sends(30, T0 + timedelta(hours=3), timedelta(seconds=1), "s")
    assert await pipeline.process(small)
    large = sends(3 * OVERLAP_CHUNK, T0 + timedelta(hours=3), timedelta(seconds=1), "l")
    assert await pipeline.process(large)
    assert seen == [True, False]
    assert gc.isenabled()
    assert await counters(pool) == expected(small + large)


async def test_a_large_batch_reaching_a_new_day_rolls_back_and_takes_the_plain_path(
    pool: asyncpg.Pool,
) -> None:
    pipeline = Pipeline(sends_consumer(), pool)
    spy = Spy(pipeline)
    assert await pipeline.process(sends(10, T0 + timedelta(hours=1), timedelta(minutes=1), "a"))
    # The first chunk is on a known day and is claimed; the second reaches the next UTC day,
    # whose partition does not exist yet: the attempt rolls back, the plain path redoes it.
    batch = sends(3 * OVERLAP_CHUNK, T0 + timedelta(hours=1), timedelta(seconds=30), "b")
    assert datetime.fromisoformat(json.loads(batch[OVERLAP_CHUNK - 1].value)["time"]).day == 5
    assert datetime.fromisoformat(json.loads(batch[-1].value)["time"]).day == 6
    assert await pipeline.process(batch)
    assert spy.calls == ["_apply", "_apply_in_chunks", "_apply"]
    assert await counters(pool) == expected(
        sends(10, T0 + timedelta(hours=1), timedelta(minutes=1), "a") + batch
    )


async def test_a_transient_failure_after_an_overlapped_claim_is_retried_counting_once(
    pool: asyncpg.Pool,
) -> None:
    attempts: list[int] = []

    def flaky(handler: Any) -> Any:
        async def handle(
            conn: asyncpg.Connection, fresh: list[Received], clocks: Any, **kwargs: Any
        ) -> BatchResult:
            attempts.append(len(fresh))
            result = await handler(conn, fresh, clocks, **kwargs)
            if len(attempts) == 2:  # the big batch's first attempt, after its claims
                raise ConnectionResetError("the database went away")
            return result

        return handle

    pipeline = Pipeline(sends_consumer(flaky), pool, retry_max_seconds=10)
    spy = Spy(pipeline)
    first = sends(5, T0 + timedelta(hours=1), timedelta(minutes=1), "warm")
    assert await pipeline.process(first)
    batch = sends(
        3 * OVERLAP_CHUNK, T0 + timedelta(hours=2), timedelta(seconds=5), uuid.uuid4().hex
    )
    assert await pipeline.process(batch)
    assert spy.calls == ["_apply", "_apply_in_chunks", "_apply"]
    assert attempts == [5, len(batch), len(batch)]
    assert await counters(pool) == expected(first + batch)


def with_id(record: FakeRecord, event_id: str) -> FakeRecord:
    value = json.loads(record.value)
    value["id"] = event_id
    return replace(record, value=json.dumps(value).encode())


@pytest.mark.parametrize("size", [30, 3 * OVERLAP_CHUNK], ids=["plain", "overlapped"])
async def test_a_batch_broken_by_one_event_applies_the_rest_and_dead_letters_that_one(
    pool: asyncpg.Pool, size: int
) -> None:
    """One event the handler fails on for good (a bug it trips over, not a transient error)
    fails the whole batch: the pipeline applies the records one by one, dead-letters that
    one with the reason and counts every other send once; the batch is then done (offsets
    may be committed)."""

    def tripping(handler: Any) -> Any:
        async def handle(
            conn: asyncpg.Connection, fresh: list[Received], clocks: Any, **kwargs: Any
        ) -> BatchResult:
            if any(item.id == "bad-id" for item in fresh):
                raise ValueError("the handler cannot apply bad-id")
            return cast(BatchResult, await handler(conn, fresh, clocks, **kwargs))

        return handle

    pipeline = Pipeline(sends_consumer(tripping), pool)
    warm = sends(5, T0 + timedelta(hours=1), timedelta(minutes=1), "warm")
    assert await pipeline.process(warm)  # the day partition exists
    batch = sends(size, T0 + timedelta(hours=1), timedelta(seconds=1), uuid.uuid4().hex)
    poison = size // 2 + 7
    batch[poison] = with_id(batch[poison], "bad-id")
    batch[poison].key = b"bad\x00key"

    assert await pipeline.process(batch + warm[:2])  # a redelivered pair among them

    good = batch[:poison] + batch[poison + 1 :]
    assert await counters(pool) == expected(warm + good)
    rows = await pool.fetch(
        "SELECT topic, key, value, headers FROM outbox WHERE topic LIKE '%.dlq' ORDER BY position"
    )
    assert len(rows) == 1
    [dead] = rows
    assert dead["topic"] == "send.recorded.dlq"
    assert bytes(dead["value"]) == batch[poison].value  # the input, byte for byte
    assert dead["key"] == "bad\ufffdkey"
    headers = dict(json.loads(dead["headers"]))
    assert headers["error.consumer"] == "warmup/send.recorded"
    assert headers["error.class"] == "ValueError"
    assert headers["error.message"] == "the handler cannot apply bad-id"


async def test_ids_claimed_before_the_inbox_kept_keys_are_still_duplicates_after_it(
    pool: asyncpg.Pool,
) -> None:
    """Migration 0004 moves the ids the text-keyed inbox held into the keyed one, computing
    in SQL the key `event_key` computes: a replay of what was counted before the upgrade
    counts nothing, whatever the id's characters."""
    consumer = sends_consumer().name
    at = T0 + timedelta(hours=4)
    before = sends(40, at, timedelta(seconds=7), "vor-ü-😀")
    before += sends(1, at, timedelta(seconds=1), "x" * 250)
    before_ids = [json.loads(r.value)["id"] for r in before]
    async with pool.acquire() as conn:
        # The inbox as the earlier schema kept it, holding the ids already counted.
        await conn.execute(
            "DROP TABLE inbox_days;"
            "CREATE TABLE inbox_daily (consumer text NOT NULL, event_day date NOT NULL,"
            " event_id text NOT NULL, PRIMARY KEY (consumer, event_day, event_id))"
            " PARTITION BY RANGE (event_day);"
            "CREATE TABLE inbox_daily_20260105 PARTITION OF inbox_daily"
            " FOR VALUES FROM ('2026-01-05') TO ('2026-01-06');"
        )
        await conn.executemany(
            "INSERT INTO inbox_daily VALUES ($1, $2, $3)",
            [(consumer, at.date(), event_id) for event_id in before_ids],
        )
        migration = Path(shared.__file__).parent / "migrations" / "0004_inbox_days.sql"
        await conn.execute(migration.read_text())
        moved = await conn.fetch("SELECT event_key::text AS key FROM inbox_days")
        assert await conn.fetchval("SELECT to_regclass('inbox_daily')") is None
    assert sorted(row["key"].replace("-", "") for row in moved) == sorted(
        event_key(consumer, event_id) for event_id in before_ids
    )

    pipeline = Pipeline(sends_consumer(), pool)
    after = sends(30, at, timedelta(seconds=11), "nach")
    assert await pipeline.process(before + after)
    assert await counters(pool) == expected(after)


async def test_a_redriven_refusal_of_a_send_is_forgotten_by_its_key_and_counted_again(
    pool: asyncpg.Pool,
) -> None:
    """`ipfleet dlq redrive` forgets a refused event's id in the consumer's inbox before
    sending it again; in the daily inbox the id is kept as its key, so the redrive must
    forget that key, or the fixed event would be skipped as a duplicate."""
    pipeline = Pipeline(sends_consumer(), pool)
    send = sends(1, T0 + timedelta(hours=5), timedelta(seconds=1), "refused-then-fixed")
    assert await pipeline.process(send)
    assert await counters(pool) == expected(send)
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE warmup_counters, warmup_daily_counts")
        letter = DeadLetter(
            topic="send.recorded",
            partition=0,
            offset=0,
            timestamp=T0,
            key=send[0].key,
            value=send[0].value,
            headers=(
                ("error.class", b"Unprocessable"),
                ("error.consumer", sends_consumer().name.encode()),
            ),
        )
        async with conn.transaction():
            await forget_refusal(conn, letter)
    assert await pipeline.process(send)  # redriven: applied again, not skipped
    assert await counters(pool) == expected(send)


async def test_a_large_batch_is_tallied_as_it_is_claimed_and_a_small_one_at_once(
    pool: asyncpg.Pool,
) -> None:
    """The handler of a large batch receives the sends already tallied chunk by chunk as
    they were claimed (repeats of an earlier batch and in-batch duplicates left out), and a
    small batch's tally is made at once; either is the tally of exactly the new sends."""
    given: list[tuple[int, int, set[str]]] = []

    def wrap(handle: Any) -> Callable[..., Awaitable[BatchResult]]:
        async def observed(
            conn: Any, fresh: list[Received], clocks: Any, *, digest: SendsRead
        ) -> BatchResult:
            built = SendsRead()
            built.add(fresh)
            owners = {address: Owner(ip_id, account) for ip_id, account, address in IPS}
            got = digest.tally.attribute(owners, lambda: [])
            want = built.tally.attribute(owners, lambda: [])
            assert (got.counted, got.latest, got.sends) == (want.counted, want.latest, want.sends)
            given.append((len(fresh), sum(got.counted.values()), digest.tally.addresses))
            return cast(BatchResult, await handle(conn, fresh, clocks, digest=digest))

        return observed

    pipeline = Pipeline(sends_consumer(wrap), pool)
    small = sends(30, T0 + timedelta(hours=3), timedelta(seconds=1), "s")
    assert await pipeline.process(small)
    large = sends(3 * OVERLAP_CHUNK, T0 + timedelta(hours=3), timedelta(seconds=1), "l")
    # Replayed sends of the small batch and a duplicate inside the batch are not new.
    assert await pipeline.process([*small[:10], *large, large[5]])

    assert [n for n, _, _ in given] == [30, 3 * OVERLAP_CHUNK]
    assert [t for _, t, _ in given] == [30, 3 * OVERLAP_CHUNK]
    assert given[1][2] == {address for _, _, address in IPS}
    assert await counters(pool) == expected(small + large)
