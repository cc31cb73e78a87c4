"""Provisioner latency benchmark: publish `ip.requested` at a fixed rate to a running
provisioner (its own process) and time each one until its `ip.provisioned` arrives.

    .venv/bin/python -m bench.provisioner --rate 100 --seconds 30

Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set, else the embedded stack. Prints
throughput and p50/p90/p99/max latency (publish → ip.provisioned received).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.databases import fresh_database
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.infrastructure import provide_kafka, provide_postgres
from shared.settings import Settings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(rate: float, seconds: float, warmup_seconds: float) -> None:
    db = provide_postgres(os.environ.get("DATABASE_URL") or None)
    kafka = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    log_path = Path(tempfile.mkdtemp(prefix="ipfleet-bench-")) / "provisioner.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        dsn = await fresh_database(db.url)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(_env_file=None, KAFKA_TOPIC_PREFIX=prefix)  # type: ignore[call-arg]
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": prefix,
            "IPFLEET_INVENTORY": "global=10.0.0.0/16",
            "IPFLEET_BATCH_TIMEOUT_MS": "5",
            # Tansu holds a fetch for its whole max wait even when data has arrived.
            "KAFKA_FETCH_MAX_WAIT_MS": os.environ.get("KAFKA_FETCH_MAX_WAIT_MS", "10"),
            "IPFLEET_OUTBOX_POLL_SECONDS": "0.5",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
                [sys.executable, "-m", "services", "run", "provisioner"],
                env=env,
                stdout=log,
                stderr=log,
            )
        print(
            f"postgres: {db.kind}; kafka: {kafka.kind}; provisioner pid {proc.pid}; log {log_path}"
        )
        async with Publisher(settings, kafka.bootstrap_servers, prefix) as publisher:
            # Wait until the provisioner answers at all (topics created, group joined).
            async with Follower(
                settings, kafka.bootstrap_servers, [topics.IP_PROVISIONED], prefix
            ) as seen:
                probe = cloud_event("ip.requested", {"account_id": "bench_probe", "plan": "max"})
                await publisher.send(topics.IP_REQUESTED, probe, key="bench_probe")
                await seen.wait_for(lambda s: True, timeout=120)
                sent_at: dict[str, float] = {}
                sent_wall: dict[str, float] = {}
                latencies: dict[str, float] = {}
                relayed: dict[str, float] = {}
                total = int(rate * (seconds + warmup_seconds))
                start = time.perf_counter()

                async def receive() -> None:
                    while len(latencies) < total:
                        for s in await seen.poll(timeout_ms=20):
                            cause = s.event.get("causationid")
                            if cause in sent_at and cause not in latencies:
                                latencies[cause] = time.perf_counter() - sent_at[cause]
                                # The record's timestamp is set by the relay's producer.
                                relayed[cause] = s.timestamp_ms / 1000 - sent_wall[cause]

                receiver = asyncio.create_task(receive())
                for i in range(total):
                    due = start + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    event = cloud_event(
                        "ip.requested", {"account_id": f"bench_{i}", "plan": "enterprise"}
                    )
                    sent_at[event["id"]] = time.perf_counter()
                    sent_wall[event["id"]] = time.time()
                    await publisher.send_soon(topics.IP_REQUESTED, event, key=f"bench_{i}")
                await asyncio.wait_for(receiver, timeout=120)
                elapsed = time.perf_counter() - start
        skip = int(rate * warmup_seconds)
        ordered = [latencies[e] for e in sent_at][skip:]
        ms = [v * 1000 for v in ordered]
        to_relay = [relayed[e] * 1000 for e in sent_at][skip:]
        print(f"requests: {total} at {rate:.0f}/s target ({skip} warm-up excluded from latency)")
        print(f"throughput: {total / elapsed:.1f} provisioned/s over {elapsed:.1f}s")
        print(
            f"latency ms: p50 {percentile(ms, 0.5):.1f}  p90 {percentile(ms, 0.9):.1f}  "
            f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}  mean {statistics.fmean(ms):.1f}"
        )
        print(
            f"  of which publish -> relayed by the outbox: p50 {percentile(to_relay, 0.5):.1f}  "
            f"p99 {percentile(to_relay, 0.99):.1f}"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        kafka.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(measure(args.rate, args.seconds, args.warmup_seconds))


if __name__ == "__main__":
    main()
