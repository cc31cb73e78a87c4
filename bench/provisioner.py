"""Provisioner latency benchmark: publish `ip.requested` at a fixed rate to a running
provisioner (its own process) and time each one until its `ip.provisioned` arrives.

    .venv/bin/python -m bench.provisioner --rate 100 --seconds 30
    .venv/bin/python -m bench.provisioner --find-max --seconds 10   # the highest rate held

Uses KAFKA_BOOTSTRAP_SERVERS when set, else the embedded broker, and a durable Postgres:
DATABASE_URL when set, else the embedded one with fsync ON. The provisioner runs on a fresh
install's settings (no ipfleet variable from this shell, no `.env`) but its inventory; the
flags `--batch-timeout-ms`, `--fetch-max-wait-ms`, `--batch` override a default, and the
printout then says the run is not on defaults. Prints throughput and p50/p90/p99/max latency
(publish → ip.provisioned received), with the load average.

`--find-max` steps the rate up (`--ramp`) on the same service process, `--seconds` per step
after `--warmup-seconds` not measured, and prints each step's achieved rate, p50/p90/p99 and
the highest rate whose p99 stayed under 250 ms (a step fails at p99 ≥ 250 ms, or when not
every request was answered within 30 s of its last send; the ramp stops there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.databases import describe, drop_database, durable_postgres, fresh_database
from bench.environment import as_shipped, load_average, on_defaults_or_not, service_env
from services.provisioner.service import build as build_provisioner
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.infrastructure import provide_kafka
from shared.logging import configure_logging
from shared.runtime import subscription_options
from shared.settings import Settings

# The flags that override a shipped default: (flag dest, variable).
OVERRIDES = (
    ("batch", "IPFLEET_BATCH_MAX_RECORDS"),
    ("batch_timeout_ms", "IPFLEET_BATCH_TIMEOUT_MS"),
    ("fetch_max_wait_ms", "KAFKA_FETCH_MAX_WAIT_MS"),
)


# The bound of `--find-max`: the highest rate whose p99 stays under it is the answer.
P99_BOUND_MS = 250.0
RAMP_RATES = "100,200,300,400,600,800,1000,1300,1600,2000"


def inventory_for(requests: int) -> str:
    """Room for one IP per request (each asks for an account of its own): as many /16
    ranges as that takes (the provisioner adds at most a /16 per range), at least one."""
    ranges = max(1, -(-requests // 65_534))
    return ",".join(f"global=10.{i}.0.0/16" for i in range(ranges))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Step:
    """One rate held for a while on the running service: what it asked and what it got."""

    rate: float
    sent: int  # every request of the step, warm-up included
    answered: int  # of those, answered
    elapsed: float  # first send to last answer (or to giving up)
    measured: int  # requests after the warm-up
    latencies_ms: list[float]  # the answered ones among them, in sending order
    relayed_ms: list[float]  # publish -> relayed by the outbox, likewise

    @property
    def achieved(self) -> float:
        """Requests provisioned per second over the step."""
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def p99(self) -> float:
        """p99 over every measured request; an unanswered one counts as infinitely late."""
        values = self.latencies_ms + [math.inf] * (self.measured - len(self.latencies_ms))
        return percentile(values, 0.99) if values else math.inf


class OtherWriters:
    """Samples, every 50 ms, the oldest open transaction holding a transaction id in another
    database of the same server. The relay publishes a committed outbox row only once every
    older transaction id on the server has ended (`next_batch` in shared/outbox.sql), so on a
    shared server such a transaction delays this service's events; this says how often."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.ages: list[float] = []

    async def run(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while True:
                age = await conn.fetchval(
                    "SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0)"
                    " FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                    " AND datname IS DISTINCT FROM current_database()"
                )
                self.ages.append(float(age))
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    def take(self) -> str:
        """What was seen since the last call: share of samples with such a transaction open
        for more than 20 ms, and the oldest."""
        ages, self.ages = self.ages, []
        held = [a for a in ages if a > 0.02]
        if not ages:
            return "n/a"
        return f"{len(held) / len(ages):.0%} of samples, oldest {max(ages) * 1000:.0f} ms"


class Timings:
    """Send and receive times by request id, filled by the publisher and one receiver."""

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.sent_wall: dict[str, float] = {}
        self.latencies: dict[str, float] = {}
        self.relayed: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def receive(self, seen: Follower) -> None:
        while True:
            for s in await seen.poll(timeout_ms=20):
                cause = s.event.get("causationid")
                if cause in self.sent_at and cause not in self.latencies:
                    self.latencies[cause] = time.perf_counter() - self.sent_at[cause]
                    # The record's timestamp is set by the relay's producer.
                    self.relayed[cause] = s.timestamp_ms / 1000 - self.sent_wall[cause]
                    self.arrived.set()


async def run_step(
    publisher: Publisher,
    timings: Timings,
    rate: float,
    seconds: float,
    warmup_seconds: float,
    label: str,
    patience: float,
) -> Step:
    """Publish at `rate` for `warmup_seconds + seconds`, then wait (at most `patience`
    seconds) for every answer. Latencies of the first `warmup_seconds` are left out."""
    total = int(rate * (seconds + warmup_seconds))
    ids: list[str] = []
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        account = f"bench_{label}_{i}"
        event = cloud_event("ip.requested", {"account_id": account, "plan": "enterprise"})
        ids.append(event["id"])
        timings.sent_at[event["id"]] = time.perf_counter()
        timings.sent_wall[event["id"]] = time.time()
        await publisher.send_soon(topics.IP_REQUESTED, event, key=account)
    deadline = time.perf_counter() + patience
    while time.perf_counter() < deadline:
        if sum(1 for e in ids if e in timings.latencies) == total:
            break
        timings.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(timings.arrived.wait(), timeout=0.5)
    answered = [e for e in ids if e in timings.latencies]
    if len(answered) == total:
        elapsed = max(timings.sent_at[e] + timings.latencies[e] for e in answered) - start
    else:
        elapsed = time.perf_counter() - start
    measured = ids[int(rate * warmup_seconds) :]
    kept = [e for e in measured if e in timings.latencies]
    return Step(
        rate=rate,
        sent=total,
        answered=len(answered),
        elapsed=elapsed,
        measured=len(measured),
        latencies_ms=[timings.latencies[e] * 1000 for e in kept],
        relayed_ms=[timings.relayed[e] * 1000 for e in kept],
    )


async def measure(
    rates: list[float],
    seconds: float,
    warmup_seconds: float,
    overrides: dict[str, str],
    find_max: bool,
) -> None:
    db = durable_postgres()
    kafka = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    log_path = Path(tempfile.mkdtemp(prefix="ipfleet-bench-")) / "provisioner.log"
    proc: subprocess.Popen[bytes] | None = None
    dsn: str | None = None
    measured = False
    try:
        dsn = await fresh_database(db.url)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(_env_file=None, KAFKA_TOPIC_PREFIX=prefix)
        # Its inventory is the one thing a provisioner cannot run without.
        env = service_env(dsn, kafka.bootstrap_servers, prefix, overrides)
        needed = sum(int(rate * (seconds + warmup_seconds)) for rate in rates) + 1
        env["IPFLEET_INVENTORY"] = inventory_for(needed)
        shipped = as_shipped(overrides)
        shown = (
            f"batch_max_records {shipped.batch_max_records}, batch_timeout_ms "
            f"{shipped.batch_timeout_ms}, fetch_max_wait_ms {shipped.kafka_fetch_max_wait_ms}, "
            f"outbox poll {shipped.outbox_poll_seconds}s, log level {shipped.log_level}"
        )
        requested = next(
            c
            for c in build_provisioner(shipped, shipped.provisioner).consumers
            if c.topic == topics.IP_REQUESTED
        )
        own = ", ".join(f"{k} {v}" for k, v in subscription_options(requested, shipped).items())
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
        print(f"ip.requested subscription: {own}")
        print(f"machine: {os.cpu_count()} CPUs; {load_average()}; log {log_path}", flush=True)
        async with Publisher(settings, kafka.bootstrap_servers, prefix) as publisher:
            # Wait until the provisioner answers at all (topics created, group joined).
            async with Follower(
                settings, kafka.bootstrap_servers, [topics.IP_PROVISIONED], prefix
            ) as seen:
                probe = cloud_event("ip.requested", {"account_id": "bench_probe", "plan": "max"})
                await publisher.send(topics.IP_REQUESTED, probe, key="bench_probe")
                await seen.wait_for(lambda s: True, timeout=120)
                timings = Timings()
                receiver = asyncio.create_task(timings.receive(seen))
                others = OtherWriters(dsn)
                sampler = asyncio.create_task(others.run())
                try:
                    if find_max:
                        await ramp(publisher, timings, others, rates, seconds, warmup_seconds)
                    else:
                        step = await run_step(
                            publisher, timings, rates[0], seconds, warmup_seconds, "0", 120
                        )
                        report(step, others)
                finally:
                    for task in (receiver, sampler):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        measured = True
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        # Measured: its database goes (a run that failed keeps it for a look).
        if measured and dsn is not None:
            await drop_database(db.url, dsn)
        kafka.close()
        db.close()


def report(step: Step, others: OtherWriters) -> None:
    if step.answered < step.sent:
        raise RuntimeError(f"only {step.answered} of {step.sent} requests answered")
    ms, to_relay = step.latencies_ms, step.relayed_ms
    print(
        f"requests: {step.sent} at {step.rate:.0f}/s target ({step.sent - step.measured} "
        "warm-up excluded from latency)"
    )
    print(
        f"throughput: {step.achieved:.1f} provisioned/s over {step.elapsed:.1f}s "
        "(first send to last answer)"
    )
    print(f"at the end: {load_average()}")
    print(f"write transactions of other databases on the server: {others.take()}")
    print(
        f"latency ms: p50 {percentile(ms, 0.5):.1f}  p90 {percentile(ms, 0.9):.1f}  "
        f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}  mean {statistics.fmean(ms):.1f}"
    )
    print(
        f"  of which publish -> relayed by the outbox: p50 {percentile(to_relay, 0.5):.1f}  "
        f"p99 {percentile(to_relay, 0.99):.1f}"
    )


async def ramp(
    publisher: Publisher,
    timings: Timings,
    others: OtherWriters,
    rates: list[float],
    seconds: float,
    warmup_seconds: float,
) -> None:
    """Step the rate up on the same service until p99 reaches the bound (or the service
    falls behind); print each step and the highest rate held with p99 under it."""
    print(
        f"ramp: {seconds:.0f}s per step ({warmup_seconds:.0f}s more first, not measured); "
        f"bound p99 < {P99_BOUND_MS:.0f} ms"
    )
    print(
        "| target/s | achieved/s | p50 ms | p90 ms | p99 ms | max ms | relayed p99 ms | load "
        "| other databases' write transactions |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    best: Step | None = None
    for n, rate in enumerate(rates):
        step = await run_step(
            publisher, timings, rate, seconds, warmup_seconds, str(n), patience=30
        )
        ms = step.latencies_ms
        cells = (
            [percentile(ms, q) for q in (0.5, 0.9)] + [step.p99, max(ms, default=math.inf)]
            if ms
            else [math.inf] * 4
        )
        relayed = percentile(step.relayed_ms, 0.99) if step.relayed_ms else math.inf
        print(
            f"| {rate:.0f} | {step.achieved:.1f} | "
            + " | ".join(f"{v:.1f}" for v in cells)
            + f" | {relayed:.1f} | {os.getloadavg()[0]:.2f} | {others.take()} |",
            flush=True,
        )
        if step.p99 >= P99_BOUND_MS or step.answered < step.sent:
            break
        best = step
    if best is None:
        print(f"highest rate with p99 < {P99_BOUND_MS:.0f} ms: none of the steps")
    else:
        print(
            f"highest rate with p99 < {P99_BOUND_MS:.0f} ms: {best.rate:.0f}/s target "
            f"({best.achieved:.1f}/s achieved, p99 {best.p99:.1f} ms); the next step "
            + ("was not run (end of the ramp)" if best.rate == rates[-1] else "failed")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument(
        "--find-max",
        action="store_true",
        help=f"step the rate up (--ramp) on the same service, --seconds per step, until p99 "
        f"reaches {P99_BOUND_MS:.0f} ms; print each step and the highest rate under it",
    )
    parser.add_argument(
        "--ramp", default=RAMP_RATES, help="the rates of --find-max, requests per second"
    )
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
    rates = [float(r) for r in args.ramp.split(",")] if args.find_max else [args.rate]
    asyncio.run(measure(rates, args.seconds, args.warmup_seconds, overrides, args.find_max))


if __name__ == "__main__":
    main()
