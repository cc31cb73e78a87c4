"""The warmup service killed mid-stream: it double-counts nothing and emits nothing twice
(under two ids), over the real broker and real Postgres."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.database import connect as connect_schema
from shared.settings import Settings
from tests.integration.processes import ServiceProcess
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# No complaints: this test is about counting, not about suspensions.
OUTCOMES = ["delivered"] * 94 + ["deferred"] * 3 + ["bounced"] * 2 + ["dropped"]
SENDS = 24_000
IPS = 4


def process_env(database: str, kafka_server: Any, prefix: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_server.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": "3",
        "IPFLEET_BATCH_MAX_RECORDS": "300",
        "IPFLEET_OUTBOX_POLL_SECONDS": "0.2",
        "IPFLEET_SWEEP_SECONDS": "0.3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
        "LOG_LEVEL": "WARNING",
    }


async def counters(dsn: str) -> dict[tuple[str, str, int, str], int]:
    conn = await connect_schema(dsn, "warmup")
    try:
        rows = await conn.fetch("SELECT * FROM warmup_counters")
    finally:
        await conn.close()
    found: dict[tuple[str, str, int, str], int] = {}
    for row in rows:
        for outcome in ("delivered", "deferred", "bounced", "complained", "dropped"):
            if row[outcome]:
                found[(row["ip_id"], row["day"].isoformat(), row["hour"], outcome)] = row[outcome]
    return found


async def total(dsn: str) -> int:
    return sum((await counters(dsn)).values())


async def test_a_warmup_worker_killed_mid_stream_double_counts_nothing(
    database: str,
    kafka_server: Any,
    topic_prefix: str,
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    tmp_path: Path,
) -> None:
    settings = settings_for()
    await start_fleet([build_provisioner(settings, settings.provisioner)], settings)
    warmup = ServiceProcess(
        ["warmup"], process_env(database, kafka_server, topic_prefix), tmp_path / "warmup.log"
    )
    warmup.start()
    try:
        async with follow([topics.IP_PROVISIONED, topics.IP_STATE_CHANGED]) as seen:
            ips = []
            for i in range(IPS):
                account = f"acct_k{i}"
                request = cloud_event(
                    "ip.requested", {"account_id": account, "plan": "enterprise"}, time=T0
                )
                await publisher.send(topics.IP_REQUESTED, request, key=account)
            provisioned = await seen.wait_for(lambda s: s.topic == topics.IP_PROVISIONED, count=IPS)
            ips = [p.event["data"] for p in provisioned]
            await seen.wait_for(
                lambda s: s.event["type"] == "ip.warmup_started", count=IPS, timeout=60
            )

            # Two days of sends (event time), in time order, spread over the IPs.
            rng = random.Random(7)
            expected: Counter[tuple[str, str, int, str]] = Counter()
            step = timedelta(days=2) / SENDS
            for n in range(SENDS):
                ip = ips[n % IPS]
                at = T0 + timedelta(hours=1) + n * step
                outcome = rng.choice(OUTCOMES)
                event = cloud_event(
                    "send.recorded",
                    {
                        "account_id": ip["account_id"],
                        "ip": ip["address"],
                        "domain": "news.example.com",
                        "outcome": outcome,
                    },
                    time=at,
                )
                expected[(ip["ip_id"], at.date().isoformat(), at.hour, outcome)] += 1
                await publisher.send_soon(topics.SEND_RECORDED, event, key=ip["address"])
            await publisher.flush()

            async def some_counted() -> bool:
                return await total(database) > SENDS // 5

            await wait_until(some_counted, 60, "the first sends to be counted")
            warmup.kill()
            killed_at = await total(database)
            assert killed_at < SENDS, "the kill came too late to test anything"
            print(f"killed with {killed_at} of {SENDS} sends counted")
            warmup.start()

            async def all_counted() -> bool:
                return await total(database) >= SENDS

            await wait_until(all_counted, 90, "every send to be counted")
            await asyncio.sleep(2.0)  # let redelivered batches, if any, be absorbed
            assert warmup.terminate() == 0
            await seen.poll()
            await asyncio.sleep(0.5)
            await seen.poll()
    finally:
        if warmup.proc and warmup.proc.poll() is None:
            warmup.proc.kill()

    assert await counters(database) == dict(expected)
    conn = await connect_schema(database, "warmup")
    try:
        claimed = await conn.fetchval("SELECT count(*) FROM inbox_days")
    finally:
        await conn.close()
    assert claimed == SENDS
    # Every transition is emitted under one id, however often it reached the wire.
    ids_per_transition: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for s in seen.seen:
        event = s.event
        if s.topic == topics.IP_STATE_CHANGED and event["source"] == "ipfleet/warmup":
            ids_per_transition[(s.key or "", event["type"], event["time"])].add(event["id"])
    assert ids_per_transition
    assert {k: v for k, v in ids_per_transition.items() if len(v) > 1} == {}
    # Once per IP and UTC day, once per IP and UTC hour.
    daily = Counter(
        (ip, time[:10]) for ip, kind, time in ids_per_transition if kind.startswith("ip.daily")
    )
    assert daily and max(daily.values()) == 1
    kinds = Counter(kind for _, kind, _ in ids_per_transition)
    assert kinds["ip.hourly_limit_reached"] >= IPS
