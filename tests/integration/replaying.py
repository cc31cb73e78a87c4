"""Reading one recorded log in several ways, each on a fresh database and topic prefix, for
the tests that the state and the emitted events come out the same whatever the batching,
the replicas, or how far one partition is read ahead of another."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from services.fleet import SERVICES, migrate
from services.settings import FleetSettings
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.runtime import Fleet, Service
from tests.integration.waiting import wait_until

PARTITIONS = 3
REQUESTED_AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def partition_of(key: str) -> int:
    """The partition the producer's default partitioner gives a key (murmur2, as Kafka's)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


# event id -> (type, time, data as JSON, causationid)
Events = dict[str, tuple[str, str, str, str | None]]


@dataclass
class Outcome:
    """What one way of reading the log left behind."""

    state: Any  # whatever the test reads from the database at the end
    events: Events


class Replay:
    """One way of reading the log: a fresh database (migrated) and topic prefix."""

    def __init__(self, server_url: str, bootstrap: str, tmp_path: Path, name: str) -> None:
        self.server_url = server_url
        self.bootstrap = bootstrap
        self.tmp_path = tmp_path
        self.name = name
        self.prefix = f"rp{uuid.uuid4().hex[:8]}."
        self.dsn = ""

    async def __aenter__(self) -> Replay:
        database = f"rp_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        self.dsn = self.server_url.rpartition("/")[0] + "/" + database
        await migrate(self.dsn)
        return self

    async def __aexit__(self, *_: object) -> None:
        admin = await asyncpg.connect(self.server_url)
        try:
            name = self.dsn.rpartition("/")[2]
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    def settings(self, **overrides: Any) -> FleetSettings:
        values = {
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "KAFKA_TOPIC_PARTITIONS": PARTITIONS,
            "IPFLEET_SWEEP_SECONDS": 0.2,
            "IPFLEET_OUTBOX_POLL_SECONDS": 0.2,
            "IPFLEET_INVENTORY": "global=198.51.100.0/24",
            "KAFKA_FETCH_MAX_WAIT_MS": 10,
            "KAFKA_SESSION_TIMEOUT_MS": 2000,
            "KAFKA_HEARTBEAT_INTERVAL_MS": 100,
            # No health endpoint: another fleet (or anything else) may hold the default port.
            "IPFLEET_HTTP_PORT": 0,
        } | overrides
        return FleetSettings(_env_file=None, **values)  # type: ignore[call-arg]

    def process_env(self, **overrides: str) -> dict[str, str]:
        """The same settings for a service run as its own process."""
        return {
            "DATABASE_URL": self.dsn,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
            "IPFLEET_OUTBOX_POLL_SECONDS": "0.2",
            "IPFLEET_SWEEP_SECONDS": "0.2",
            "KAFKA_FETCH_MAX_WAIT_MS": "10",
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
            "LOG_LEVEL": "WARNING",
        } | overrides

    def fleet(self, services: Sequence[Service], settings: FleetSettings) -> Fleet:
        return Fleet(services, settings, self.dsn, self.bootstrap)

    def publisher(self) -> Publisher:
        return Publisher(self.settings(), self.bootstrap, self.prefix)

    def follower(self, watched: list[str]) -> Follower:
        return Follower(self.settings(), self.bootstrap, watched, self.prefix)

    async def request_ips(self, seen: Follower, accounts: Sequence[str]) -> list[dict[str, Any]]:
        """One `ip.requested` per entry of `accounts` (an account named twice gets two IPs),
        each answered before the next is sent and each with a fixed id, so every way of
        reading gets the same IPs at the same addresses. Their `ip.provisioned` data."""
        provisioned = []
        async with self.publisher() as publisher:
            for n, account in enumerate(accounts):
                request = cloud_event(
                    "ip.requested",
                    {"account_id": account, "plan": "enterprise"},
                    time=REQUESTED_AT,
                    event_id=f"request-{n}",
                )
                await publisher.send(topics.IP_REQUESTED, request, key=account)
                [done] = await seen.wait_for(
                    lambda s, r=request: (
                        s.topic == topics.IP_PROVISIONED and s.event.get("causationid") == r["id"]
                    )
                )
                provisioned.append(done.event["data"])
        return provisioned

    async def publish(self, topic: str, log: Sequence[dict[str, Any]], key: str) -> None:
        """Publish `log` to `topic`, each event keyed by `data[key]`."""
        async with self.publisher() as publisher:
            for event in log:
                await publisher.send_soon(topic, event, key=event["data"][key])
            await publisher.flush()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of `sql`, which names each table with its service's schema."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    async def until_still(self, read: Callable[[], Awaitable[Any]], seconds: float = 5.0) -> Any:
        """Wait until `read()` has not changed for `seconds` (and nothing waits in the outbox);
        returns its last value. Generous: on a loaded machine a worker can stall for seconds
        between its last batch and its last sweep."""
        loop = asyncio.get_running_loop()
        last: Any = None
        since = loop.time()
        while loop.time() - since < seconds:
            await asyncio.sleep(0.3)
            pending = " + ".join(f"(SELECT count(*) FROM {name}.outbox)" for name in SERVICES)
            now = (await read(), await self.fetch(f"SELECT {pending}"))
            if now != last:
                last, since = now, loop.time()
        return last[0]

    async def applied(self, consumer: str, event_ids: list[str]) -> int:
        """How many of `event_ids` the consumer (service/topic) has applied (its inbox)."""
        schema = consumer.partition("/")[0]
        [(count,)] = await self.fetch(
            f"SELECT count(*) FROM {schema}.inbox WHERE consumer = $1 AND event_id = ANY($2)",
            consumer,
            event_ids,
        )
        return int(count)

    async def events(self, topics: list[str]) -> Events:
        """Every event on `topics`, by id; a repeat (at least once) must be the same event."""
        found: Events = {}
        async with self.follower(topics) as seen:

            async def some() -> bool:
                await seen.poll()
                return bool(seen.seen)

            await wait_until(some, 30, f"{self.name}: events to be readable")
            for _ in range(10):
                await seen.poll(500)
            for item in seen.seen:
                event = item.event
                body = (
                    event["type"],
                    event["time"],
                    json.dumps(event["data"]),
                    event.get("causationid"),
                )
                assert found.setdefault(item.event["id"], body) == body, item.event["id"]
        return found


def pause_partition(
    topic: str, partition: int, others_done: Callable[[], Awaitable[bool]]
) -> Callable[[Fleet], Awaitable[None]]:
    """For a fleet in this process: once its `topic` subscriber has every partition, pause
    `partition`; resume it once `others_done()` and a few sweeps later, so it is read long
    after the others."""

    async def act(fleet: Fleet) -> None:
        [subscriber] = [s for s, p in fleet._subscribers if p.consumer.topic == topic]

        async def assigned() -> bool:
            consumer = subscriber.consumer
            return consumer is not None and len(consumer.assignment()) == PARTITIONS

        await wait_until(assigned, 60, "the worker to be assigned every partition")
        [tp] = [t for t in subscriber.consumer.assignment() if t.partition == partition]
        subscriber.consumer.pause(tp)

        async def resume_later() -> None:
            await wait_until(others_done, 120, "the other partitions to be read")
            await asyncio.sleep(2.0)  # several sweeps run with the partition still unread
            subscriber.consumer.resume(TopicPartition(tp.topic, tp.partition))

        asyncio.get_running_loop().create_task(resume_later())

    return act


def assert_same(outcomes: dict[str, Outcome], reference: str) -> None:
    """Every way of reading ended in the reference's state, with the reference's events."""
    expected = outcomes[reference]
    for name, outcome in outcomes.items():
        difference = _difference(outcome.state, expected.state)
        assert outcome.state == expected.state, f"{name}: the state differs: {difference}"
        missing = expected.events.keys() - outcome.events.keys()
        extra = outcome.events.keys() - expected.events.keys()
        assert not missing and not extra, (
            f"{name}: events differ; missing {[expected.events[i][:2] for i in missing]}, "
            f"extra {[outcome.events[i][:2] for i in extra]}"
        )
        for event_id, body in expected.events.items():
            got = outcome.events[event_id]
            assert got[3] == body[3], f"{name}: {body[:2]} names cause {got[3]}, not {body[3]}"
            assert got == body, f"{name}: {body[:2]} differs: {got[2]} != {body[2]}"


def _difference(got: Any, want: Any) -> str:
    """The first entries that differ, for the failure message."""
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(set(got) | set(want), key=str)
        return "; ".join(
            f"{k}: {got.get(k)!r} != {want.get(k)!r}" for k in keys if got.get(k) != want.get(k)
        )[:3000]
    if isinstance(got, list) and isinstance(want, list):
        pairs = [(g, w) for g, w in zip(got, want, strict=False) if g != w]
        return f"{len(got)} vs {len(want)} rows; first differing: {pairs[:3]!r}"[:3000]
    return f"{got!r} != {want!r}"[:3000]
