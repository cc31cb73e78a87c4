"""One recorded log of sends, consumed four ways, must give the same warm-up: the same state and
the same emitted events (ids, types, times and data), over the real broker and real Postgres.

(a) a restarted worker reads the whole log as a backlog, in large batches;
(b) the same backlog in tiny batches;
(c) one partition paused and read long after the others have been read to the end;
(d) two replicas share the backlog and one is killed (SIGKILL) in the middle.

The log covers eight IPs on three partitions over four event-time days, with hourly and daily
limits reached, advances, low-volume and bounce holds, a complaint spike that suspends an IP
and the automatic resume a day later, an IP whose first send comes on day 3, and an IP that
never sends (judged by the sweep on the slowest partition's clock).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from services.provisioner.service import build as build_provisioner
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.migrate import migrate
from shared.runtime import Fleet
from shared.settings import Settings
from tests.integration.processes import ServiceProcess
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
D1 = datetime(2026, 1, 5, tzinfo=UTC)
DAY, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
PARTITIONS = 3
ACCOUNTS = [f"acct_d{i}" for i in range(8)]
WARMUP_ENV = {"IPFLEET_WARMUP_SUSPEND_MIN_SENDS": "20"}


def partition_of(key: str) -> int:
    """The partition the producer's default partitioner gives a key (murmur2, as Kafka's)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def recorded_log(ips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log: each IP's sends, merged in event-time order, with fixed ids and outcomes."""
    rng = random.Random(20261202)
    sends: list[tuple[datetime, int, dict[str, Any]]] = []

    def emit(ip: dict[str, Any], at: datetime, outcome: str) -> None:
        n = len(sends)
        event = cloud_event(
            "send.recorded",
            {
                "account_id": ip["account_id"],
                "ip": ip["address"],
                "domain": "news.example.com",
                "outcome": outcome,
            },
            time=at,
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"determinism/{n}")),
        )
        sends.append((at, n, event))

    def hours(ip: dict[str, Any], day: int, first: int, last: int, per_hour: int, mix: Any) -> None:
        for hour in range(first, last + 1):
            for k in range(per_hour):
                at = D1 + day * DAY + hour * H + k * (H / per_hour) + rng.randrange(30) * 1e-3 * M
                emit(ip, at, mix(k))

    clean = lambda k: "deferred" if k == 7 else "delivered"  # noqa: E731
    steady, busy, busiest, quiet, bouncy, complainer, late, _idle = ips
    for day in range(4):
        hours(steady, day, 9, 13, 30, clean)  # limits on days 1-2, then held for low volume
        hours(busy, day, 9, 13, 40, clean)  # also reaches day 3's hourly limit
        hours(busiest, day, 9, 13, 60, clean)  # earns day 4
        hours(quiet, day, 10, 10, 3, clean)  # held for low volume every day
        # Bounces over 5% hold its first two days; clean after.
        bouncing = (lambda k: "bounced" if k % 5 == 0 else "delivered") if day < 2 else clean
        hours(bouncy, day, 9, 11, 30, bouncing)
        # Day 2's first hour is full of complaints: suspended at 10:00, resumed a day later.
        if day == 1:
            hours(complainer, day, 9, 9, 30, lambda k: "complained" if k % 10 == 0 else "delivered")
            hours(complainer, day, 10, 12, 30, clean)
        else:
            hours(complainer, day, 9, 12, 30, clean)
        if day >= 2:
            hours(late, day, 9, 12, 30, clean)  # its first send is on day 3
    # Day 4 closes for every IP that sends: each one's partition reads past its midnight.
    for ip in ips[:7]:
        emit(ip, D1 + 4 * DAY + H, "delivered")
    return [event for _, _, event in sorted(sends, key=lambda s: (s[0], s[1]))]


@dataclass
class Outcome:
    """What one way of consuming the log left behind."""

    states: dict[str, Any]  # ip_id -> (warm-up state, status, warm-up view, score)
    events: dict[str, tuple[str, str, str]]  # event id -> (type, time, data as JSON)


class Scenario:
    """A fresh database and topic prefix, the IPs provisioned and registered, then the log."""

    def __init__(self, server_url: str, bootstrap: str, tmp_path: Path, name: str) -> None:
        self.server_url = server_url
        self.bootstrap = bootstrap
        self.tmp_path = tmp_path
        self.name = name
        self.prefix = f"det{uuid.uuid4().hex[:8]}."
        self.dsn = ""

    def settings(self, **overrides: Any) -> Settings:
        values = {
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "KAFKA_TOPIC_PARTITIONS": PARTITIONS,
            "IPFLEET_SWEEP_SECONDS": 0.2,
            "IPFLEET_OUTBOX_POLL_SECONDS": 0.2,
            "IPFLEET_INVENTORY": "global=198.51.100.0/24",
            "KAFKA_FETCH_MAX_WAIT_MS": 10,
            "KAFKA_SESSION_TIMEOUT_MS": 2000,
            "KAFKA_HEARTBEAT_INTERVAL_MS": 100,
        } | overrides
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def warmup(self) -> WarmupSettings:
        return WarmupSettings(_env_file=None, suspend_min_sends=20)  # type: ignore[call-arg]

    async def create_database(self) -> None:
        name = f"det_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.dsn = self.server_url.rpartition("/")[0] + "/" + name
        await migrate(self.dsn)

    async def drop_database(self) -> None:
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(
                f'DROP DATABASE IF EXISTS "{self.dsn.rpartition("/")[2]}" WITH (FORCE)'
            )
        finally:
            await admin.close()

    async def provision(self) -> list[dict[str, Any]]:
        """The eight IPs, one request after another (so each gets the same address every
        time), each registered and warming before the log is published."""
        settings = self.settings()
        fleet = Fleet(
            [build_provisioner(settings), build_warmup(settings, self.warmup())],
            settings,
            self.dsn,
            self.bootstrap,
        )
        await fleet.start()
        ips = []
        try:
            async with self.follower([topics.IP_PROVISIONED, topics.IP_STATE_CHANGED]) as seen:
                async with self.publisher() as publisher:
                    for n, account in enumerate(ACCOUNTS):
                        request = cloud_event(
                            "ip.requested",
                            {"account_id": account, "plan": "enterprise"},
                            time=T0,
                            event_id=f"determinism-request-{n}",
                        )
                        await publisher.send(topics.IP_REQUESTED, request, key=account)
                        [done] = await seen.wait_for(
                            lambda s, r=request: (
                                s.topic == topics.IP_PROVISIONED
                                and s.event["causationid"] == r["id"]
                            )
                        )
                        ips.append(done.event["data"])
                await seen.wait_for(
                    lambda s: s.event["type"] == "ip.warmup_started", count=len(ACCOUNTS)
                )
        finally:
            await fleet.stop()
        return ips

    def publisher(self) -> Publisher:
        return Publisher(self.settings(), self.bootstrap, self.prefix)

    def follower(self, watched: list[str]) -> Follower:
        return Follower(self.settings(), self.bootstrap, watched, self.prefix)

    async def publish(self, log: list[dict[str, Any]]) -> None:
        async with self.publisher() as publisher:
            for event in log:
                await publisher.send_soon(topics.SEND_RECORDED, event, key=event["data"]["ip"])
            await publisher.flush()

    async def counted(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT coalesce(sum(delivered + deferred + bounced + complained + dropped), 0)"
                    " FROM warmup_counters"
                )
            )
        finally:
            await conn.close()

    async def settled(self, total: int) -> None:
        """Every send counted, then nothing more to decide or publish for a while."""

        async def all_counted() -> bool:
            return await self.counted() >= total

        await wait_until(all_counted, 180, f"{self.name}: every send to be counted")
        last: Any = None
        stable_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - stable_since < 3.0:
            await asyncio.sleep(0.3)
            now = await self.snapshot_state()
            if now != last:
                last, stable_since = now, asyncio.get_running_loop().time()

    async def snapshot_state(self) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                """SELECT w.ip_id, w.state::text AS state, w.status, v.warmup::text AS view,
                          v.reputation_score, (SELECT count(*) FROM outbox) AS pending
                   FROM warmup_ips w LEFT JOIN ip_warmup_views v USING (ip_id)
                   ORDER BY w.ip_id"""
            )
        finally:
            await conn.close()
        return [tuple(r) for r in rows]

    async def outcome(self) -> Outcome:
        states = {
            row[0]: (json.loads(row[1]), row[2], json.loads(row[3] or "null"), row[4])
            for row in await self.snapshot_state()
        }
        events: dict[str, tuple[str, str, str]] = {}
        async with self.follower([topics.IP_STATE_CHANGED]) as seen:
            await wait_until(
                lambda: _has_any(seen), 30, f"{self.name}: ip.state_changed to be readable"
            )
            for _ in range(10):
                await seen.poll(500)
            for item in seen.seen:
                body = (item.event["type"], item.event["time"], json.dumps(item.event["data"]))
                # At least once: a repeat must be the very same event.
                assert events.setdefault(item.event["id"], body) == body, item.event["id"]
        return Outcome(states, events)


async def _has_any(seen: Follower) -> bool:
    await seen.poll()
    return bool(seen.seen)


async def run_in_process(
    scenario: Scenario, log: list[dict[str, Any]], before: Callable[[Fleet], Awaitable[None]] | None
) -> Outcome:
    """The warmup worker in this process, started on the backlog (or, with `before`, given a
    chance to act once it has its partitions, before the log is published)."""
    batch = 5 if scenario.name == "tiny batches" else 10_000
    settings = scenario.settings(IPFLEET_BATCH_MAX_RECORDS=batch)
    fleet = Fleet(
        [build_warmup(settings, scenario.warmup())], settings, scenario.dsn, scenario.bootstrap
    )
    if before is None:
        await scenario.publish(log)
    await fleet.start()
    try:
        if before is not None:
            await before(fleet)
            await scenario.publish(log)
        await scenario.settled(len(log))
    finally:
        await fleet.stop()
    return await scenario.outcome()


def paused_partition(partition: int, others_done: Callable[[], Awaitable[bool]]) -> Any:
    """Pause `partition` of send.recorded once assigned; resume it once the others are read
    to the end and counted, and the sweeps have had their say."""

    async def act(fleet: Fleet) -> None:
        [subscriber] = [
            s for s, p in fleet._subscribers if p.consumer.topic == topics.SEND_RECORDED
        ]

        async def assigned() -> bool:
            consumer = subscriber.consumer
            return consumer is not None and len(consumer.assignment()) == PARTITIONS

        await wait_until(assigned, 60, "the worker to be assigned every partition")
        [tp] = [t for t in subscriber.consumer.assignment() if t.partition == partition]
        subscriber.consumer.pause(tp)

        async def resume_later() -> None:
            await wait_until(others_done, 120, "the other partitions to be counted")
            await asyncio.sleep(2.0)  # several sweeps run with the partition still unread
            subscriber.consumer.resume(TopicPartition(tp.topic, tp.partition))

        asyncio.get_running_loop().create_task(resume_later())

    return act


async def run_two_replicas_one_killed(scenario: Scenario, log: list[dict[str, Any]]) -> Outcome:
    env = {
        "DATABASE_URL": scenario.dsn,
        "KAFKA_BOOTSTRAP_SERVERS": scenario.bootstrap,
        "KAFKA_TOPIC_PREFIX": scenario.prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "IPFLEET_BATCH_MAX_RECORDS": "200",
        "IPFLEET_OUTBOX_POLL_SECONDS": "0.2",
        "IPFLEET_SWEEP_SECONDS": "0.2",
        "KAFKA_FETCH_MAX_WAIT_MS": "10",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
        "LOG_LEVEL": "WARNING",
        **WARMUP_ENV,
    }
    replicas = [
        ServiceProcess(["warmup"], env, scenario.tmp_path / f"replica{n}.log") for n in range(2)
    ]
    await scenario.publish(log)
    for replica in replicas:
        replica.start()
    try:

        async def some_counted() -> bool:
            return await scenario.counted() > len(log) // 4

        await wait_until(some_counted, 120, "a quarter of the sends to be counted")
        replicas[0].kill()
        assert await scenario.counted() < len(log), "the kill came too late to test anything"
        await scenario.settled(len(log))
        assert replicas[1].terminate() == 0
    finally:
        for replica in replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.kill()
    return await scenario.outcome()


async def test_a_recorded_log_gives_the_same_warmup_however_it_is_read(
    postgres_server: Any, kafka_server: Any, tmp_path: Path
) -> None:
    outcomes: dict[str, Outcome] = {}
    for name in (
        "large batches",
        "tiny batches",
        "one partition paused",
        "two replicas, one killed",
    ):
        scenario = Scenario(postgres_server.url, kafka_server.bootstrap_servers, tmp_path, name)
        await scenario.create_database()
        try:
            ips = await scenario.provision()
            log = recorded_log(ips)
            if name == "one partition paused":
                # The complainer's partition: its suspension and resume are read last.
                paused = partition_of(ips[5]["address"])
                others = [e for e in log if partition_of(e["data"]["ip"]) != paused]

                async def others_done(s: Scenario = scenario, n: int = len(others)) -> bool:
                    return await s.counted() >= n

                outcomes[name] = await run_in_process(
                    scenario, log, paused_partition(paused, others_done)
                )
            elif name == "two replicas, one killed":
                outcomes[name] = await run_two_replicas_one_killed(scenario, log)
            else:
                outcomes[name] = await run_in_process(scenario, log, None)
        finally:
            await scenario.drop_database()

    reference = outcomes["large batches"]
    kinds = {event[0] for event in reference.events.values()}
    # The log exercises what it is meant to.
    assert {
        "ip.warmup_started",
        "ip.hourly_limit_reached",
        "ip.daily_limit_reached",
        "ip.warmup_advanced",
        "ip.suspended",
        "ip.resumed",
    } <= kinds, kinds
    holds = {state[2]["hold_reason"] for state in reference.states.values() if state[2]}
    assert any(h and h.startswith("low_volume") for h in holds), holds
    assert len({p for p in (partition_of(ip) for ip in _addresses(reference))}) > 1

    for name, outcome in outcomes.items():
        assert outcome.states == reference.states, f"{name}: the warm-up state differs"
        missing = reference.events.keys() - outcome.events.keys()
        extra = outcome.events.keys() - reference.events.keys()
        assert not missing and not extra, (
            f"{name}: events differ; missing {[reference.events[i][:2] for i in missing]}, "
            f"extra {[outcome.events[i][:2] for i in extra]}"
        )
        for event_id, body in reference.events.items():
            assert outcome.events[event_id] == body, f"{name}: {body[:2]} differs"


def _addresses(outcome: Outcome) -> list[str]:
    return [
        json.loads(data)["address"]
        for kind, _, data in outcome.events.values()
        if kind == "ip.warmup_started"
    ]
