"""Provisioner latency benchmark: publish `ip.requested` at a fixed rate to a running
provisioner (its own process) and time each one until its `ip.provisioned` arrives.

    .venv/bin/python -m bench.provisioner --rate 100 --seconds 30

Uses KAFKA_BOOTSTRAP_SERVERS when set, else the embedded broker, and a durable Postgres:
DATABASE_URL when set, else the embedded one with fsync ON. The provisioner runs on a fresh
install's settings (no ipfleet variable from this shell, no `.env`) but its inventory; the
flags `--batch-timeout-ms`, `--fetch-max-wait-ms`, `--batch` override a default, and the
printout then says the run is not on defaults. Prints throughput and p50/p90/p99/max latency
(publish → ip.provisioned received), with the load average.
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

from bench.databases import describe, durable_postgres, fresh_database
from bench.environment import as_shipped, load_average, on_defaults_or_not, service_env
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.infrastructure import provide_kafka
from shared.logging import configure_logging
from shared.settings import Settings

# The flags that override a shipped default: (flag dest, variable).
OVERRIDES = (
    ("batch", "IPFLEET_BATCH_MAX_RECORDS"),
    ("batch_timeout_ms", "IPFLEET_BATCH_TIMEOUT_MS"),
    ("fetch_max_wait_ms", "KAFKA_FETCH_MAX_WAIT_MS"),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(
    rate: float, seconds: float, warmup_seconds: float, overrides: dict[str, str]
) -> None:
    db = durable_postgres()
    kafka = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    log_path = Path(tempfile.mkdtemp(prefix="ipfleet-bench-")) / "provisioner.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        dsn = await fresh_database(db.url)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(_env_file=None, KAFKA_TOPIC_PREFIX=prefix)  # type: ignore[call-arg]
        # Its inventory is the one thing a provisioner cannot run without.
        env = service_env(dsn, kafka.bootstrap_servers, prefix, overrides)
        env["IPFLEET_INVENTORY"] = "global=10.0.0.0/16"
        shipped = as_shipped(overrides)
        shown = (
            f"batch_max_records {shipped.batch_max_records}, batch_timeout_ms "
            f"{shipped.batch_timeout_ms}, fetch_max_wait_ms {shipped.kafka_fetch_max_wait_ms}, "
            f"outbox poll {shipped.outbox_poll_seconds}s, log level {shipped.log_level}"
        )
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
                [sys.executable, "-m", "services", "run", "provisioner"],
                env=env,
                stdout=log,
                stderr=log,
                cwd=log_path.parent,  # no `.env` from here
            )
        print(f"postgres: {db.kind} ({await describe(db.url)}); kafka: {kafka.kind}")
        print(on_defaults_or_not(overrides, shown))
        print(f"machine: {os.cpu_count()} CPUs; {load_average()}; log {log_path}")
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
        print(f"at the end: {load_average()}")
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
    for dest, variable in OVERRIDES:
        parser.add_argument(
            "--" + dest.replace("_", "-"),
            dest=dest,
            type=int,
            default=None,
            help=f"{variable} (the printout then says: NOT ON DEFAULTS)",
        )
    args = parser.parse_args()
    overrides = {v: str(getattr(args, d)) for d, v in OVERRIDES if getattr(args, d) is not None}
    configure_logging("pretty", os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    asyncio.run(measure(args.rate, args.seconds, args.warmup_seconds, overrides))


if __name__ == "__main__":
    main()
