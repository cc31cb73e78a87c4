"""Warmup throughput benchmark: how fast the warmup service counts a backlog of `send.recorded`,
against the raw ceiling of merely reading and decoding the same messages.

    .venv/bin/python -m bench.warmup --events 1000000

In one run, on one broker and one database (DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set,
else the embedded stack):

1. provisions `--ips` IPs through the real provisioner and warmup (in this process), so each
   is registered and warming, then stops them;
2. pre-publishes `--events` `send.recorded` messages for those IPs (a realistic mix of
   outcomes, in event-time order over `--days` days) to a prefixed topic;
3. (a) raw ceiling: one aiokafka consumer reads and json-decodes them all;
4. (b) the warmup service as its own process (`python -m services run warmup`), timed from its
   start until every send is counted in Postgres; its peak RSS is its VmHWM.

Prints both rates, their ratio and the service's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench.databases import fresh_database
from services.provisioner.service import build as build_provisioner
from services.settings import FleetSettings as Settings
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared import database
from shared.client import Publisher, cloud_event
from shared.contract import topics
from shared.infrastructure import provide_kafka, provide_postgres
from shared.kafka import client_options, ensure_topics
from shared.runtime import Fleet

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# A platform's typical day: nearly everything delivered, a few deferrals and bounces, rare
# complaints (well under Gmail's 0.1%).
OUTCOME_MIX = {
    "delivered": 0.925,
    "deferred": 0.03,
    "bounced": 0.025,
    "dropped": 0.0196,
    "complained": 0.0004,
}


async def scalar(dsn: str, sql: str) -> Any:
    conn = await database.connect(dsn, "warmup")
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def provision(
    settings: Settings, dsn: str, bootstrap: str, n_ips: int
) -> list[dict[str, Any]]:
    """`n_ips` IPs through the real provisioner and warmup, all warming when this returns.

    `settings` should name a topic prefix of its own: the IPs land in the database, which the
    measured process shares, while its consumer groups stay fresh (the embedded broker makes
    a newcomer wait out members that left a group a moment ago)."""
    warmup = build_warmup(settings, WarmupSettings(_env_file=None))
    fleet = Fleet(
        [build_provisioner(settings, settings.provisioner), warmup], settings, dsn, bootstrap
    )
    await fleet.start()
    try:
        async with Publisher(settings, bootstrap, settings.kafka_topic_prefix) as publisher:
            for i in range(n_ips):
                account = f"bench_acct_{i // 5}"  # enterprise: 5 IPs per account
                request = cloud_event(
                    "ip.requested", {"account_id": account, "plan": "enterprise"}, time=T0
                )
                await publisher.send_soon(topics.IP_REQUESTED, request, key=account)
            await publisher.flush()
        deadline = time.monotonic() + 300
        while True:
            warming = await scalar(
                dsn, "SELECT count(*) FROM ip_warmup_views WHERE status = 'warming'"
            )
            if warming >= n_ips:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {warming} of {n_ips} IPs warming")
            await asyncio.sleep(0.2)
    finally:
        await fleet.stop()
    conn = await database.connect(dsn, "warmup")
    try:
        rows = await conn.fetch(
            "SELECT ip_id, account_id, address FROM warmup_ips ORDER BY address"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def publish_sends(
    settings: Settings, bootstrap: str, ips: list[dict[str, Any]], n: int, days: float
) -> float:
    """Pre-publish `n` sends in event-time order; returns the seconds it took."""
    rng = random.Random(42)
    outcomes = rng.choices(list(OUTCOME_MIX), weights=list(OUTCOME_MIX.values()), k=n)
    step = timedelta(days=days) / n
    producer = AIOKafkaProducer(
        **client_options(settings, bootstrap),
        enable_idempotence=False,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        acks=1,
    )
    topic = settings.kafka_topic_prefix + topics.SEND_RECORDED
    started = time.perf_counter()
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for i in range(n):
            ip = ips[rng.randrange(len(ips))]
            at = T0 + timedelta(hours=1) + i * step
            value = json.dumps(
                {
                    "specversion": "1.0",
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "source": "bench",
                    "type": "send.recorded",
                    "time": at.isoformat().replace("+00:00", "Z"),
                    "subject": ip["account_id"],
                    "datacontenttype": "application/json",
                    "data": {
                        "account_id": ip["account_id"],
                        "ip": ip["address"],
                        "domain": f"news{i % 7}.example.com",
                        "outcome": outcomes[i],
                        "message_id": f"<{i}@bench.example.com>",
                    },
                },
                separators=(",", ":"),
            ).encode()
            pending.append(await producer.send(topic, value, key=ip["address"].encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_ceiling(settings: Settings, bootstrap: str, n: int, max_records: int) -> float:
    """(a) Read and json-decode all `n` messages with one aiokafka consumer: msgs/s."""
    topic = settings.kafka_topic_prefix + topics.SEND_RECORDED
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)  # type: ignore[arg-type]
                seen += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _spawn(env: dict[str, str], log_path: Path, profile: Path | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services", "run", "warmup"]
    if profile is not None:
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_service(
    dsn: str,
    bootstrap: str,
    prefix: str,
    n: int,
    env_overrides: dict[str, str],
    log_path: Path,
    profile: Path | None = None,
) -> tuple[float, float, float, float]:
    """(b) The warmup service as its own process until all `n` sends are counted.
    Returns (seconds from start, seconds from the first count, peak RSS MiB, startup s)."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "LOG_FORMAT": "json",
        **env_overrides,
    }
    counted_sql = (
        "SELECT coalesce(sum(delivered + deferred + bounced + complained + dropped), 0) "
        "FROM warmup_daily_counts"
    )
    started = time.perf_counter()
    proc = _spawn(env, log_path, profile)
    first_count: float | None = None
    try:
        conn = await database.connect(dsn, "warmup")
        try:
            while True:
                counted = int(await conn.fetchval(counted_sql))
                now = time.perf_counter()
                if counted and first_count is None:
                    first_count = now
                if counted >= n:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"the warmup service exited; see {log_path}")
                await asyncio.sleep(0.25)
        finally:
            await conn.close()
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert first_count is not None
    return elapsed, time.perf_counter() - first_count, peak, first_count - started


async def measure(args: argparse.Namespace) -> None:
    db = provide_postgres(os.environ.get("DATABASE_URL") or None)
    kafka = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    log_path = Path(tempfile.mkdtemp(prefix="ipfleet-bench-")) / "warmup.log"
    try:
        dsn = await fresh_database(db.url)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            KAFKA_TOPIC_PREFIX=prefix,
            KAFKA_TOPIC_PARTITIONS=args.partitions,
            IPFLEET_INVENTORY="global=10.0.0.0/20",
            IPFLEET_OUTBOX_POLL_SECONDS=0.2,
            IPFLEET_SWEEP_SECONDS=0.5,
            KAFKA_SESSION_TIMEOUT_MS=6000,
            KAFKA_HEARTBEAT_INTERVAL_MS=500,
        )
        print(f"postgres: {db.kind}; kafka: {kafka.kind}; log {log_path}")
        await ensure_topics(settings, kafka.bootstrap_servers, [prefix + topics.SEND_RECORDED])
        setup = settings.model_copy(update={"kafka_topic_prefix": f"{prefix}setup."})
        ips = await provision(setup, dsn, kafka.bootstrap_servers, args.ips)
        print(f"provisioned and warming: {len(ips)} IPs")

        took = await publish_sends(settings, kafka.bootstrap_servers, ips, args.events, args.days)
        print(
            f"published: {args.events} send.recorded in {took:.1f}s ({args.events / took:,.0f}/s)"
        )

        raw = await raw_ceiling(settings, kafka.bootstrap_servers, args.events, args.batch)
        print(f"(a) raw ceiling (aiokafka read + json.loads): {raw:,.0f} msgs/s")

        env = {
            "KAFKA_SESSION_TIMEOUT_MS": str(args.session_timeout_ms),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(max(100, args.session_timeout_ms // 10)),
            "KAFKA_TOPIC_PARTITIONS": str(args.partitions),
            "IPFLEET_BATCH_MAX_RECORDS": str(args.batch),
            "IPFLEET_BATCH_TIMEOUT_MS": str(args.batch_timeout_ms),
            "KAFKA_MAX_PARTITION_FETCH_BYTES": str(args.max_partition_fetch_bytes),
            "IPFLEET_OUTBOX_POLL_SECONDS": "0.5",
        }
        elapsed, steady, peak, startup = await run_service(
            dsn, kafka.bootstrap_servers, prefix, args.events, env, log_path, args.profile
        )
        rate = args.events / elapsed
        print(
            f"(b) warmup service: {args.events} sends counted in {elapsed:.1f}s = "
            f"{rate:,.0f} sends/s end to end (startup {startup:.1f}s; "
            f"{args.events / steady:,.0f}/s after the first count)"
        )
        print(f"service / raw ceiling: {rate / raw:.1%}")
        print(f"service peak RSS (VmHWM): {peak:.0f} MiB")

        conn = await database.connect(dsn, "warmup")
        try:
            unknown = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM unknown_ip_sends")
            claimed = await conn.fetchval(
                "SELECT count(*) FROM inbox_daily WHERE consumer = 'warmup/send.recorded'"
            )
            emitted = await conn.fetchval(
                "SELECT count(*) FROM ip_warmup_views WHERE status IN ('warming', 'completed')"
            )
        finally:
            await conn.close()
        print(
            f"checks: unknown sends {unknown}, inbox ids {claimed}, IPs with a view {emitted}; "
            f"settings: batch {args.batch}, batch timeout {args.batch_timeout_ms} ms, "
            f"partitions {args.partitions}, max partition fetch {args.max_partition_fetch_bytes}, "
            f"session timeout {args.session_timeout_ms} ms"
        )
    finally:
        kafka.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ips", type=int, default=200)
    parser.add_argument("--days", type=float, default=2.0, help="event-time span of the sends")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10000, help="IPFLEET_BATCH_MAX_RECORDS")
    parser.add_argument("--batch-timeout-ms", type=int, default=200)
    parser.add_argument("--max-partition-fetch-bytes", type=int, default=8 * 1024 * 1024)
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=2000,
        help="KAFKA_SESSION_TIMEOUT_MS of the service; the embedded broker's group joins take "
        "a multiple of it (tests/integration/conftest.py uses 2000 for the same reason)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="run the service under cProfile, stats here"
    )
    args = parser.parse_args()
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
