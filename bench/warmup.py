"""Warmup throughput benchmark: how fast the warmup service, as a user installs it, counts a
backlog of `send.recorded`, against the raw ceiling of merely reading the same messages.

    .venv/bin/python -m bench.warmup --events 1000000
    .venv/bin/python -m bench.warmup --events 200000 --replicas 2   # 2 processes against 1
    .venv/bin/python -m bench.warmup --table                        # how the cost grows

What users get, by default:
- a durable Postgres: DATABASE_URL when set, else the embedded one with fsync ON (the
  embedded default for a temporary directory is off; `--no-fsync-line` adds one extra,
  labelled line measured with fsync off, never in place of the real one);
- the settings a fresh install ships: the service process inherits no ipfleet variable from
  this shell and reads no `.env`; it is given only where its broker, database and topics are.
  The flags `--batch`, `--batch-timeout-ms`, `--fetch-max-wait-ms`,
  `--max-partition-fetch-bytes`, `--session-timeout-ms`, `--partitions` override a default,
  and the printout then says the run is not on defaults.

In one run, on one broker and one database server:
1. provisions `--ips` IPs through the real provisioner and warmup (in this process), so each
   is registered and warming, then stops them;
2. pre-publishes `--events` `send.recorded` (a realistic mix of outcomes, in event-time order
   over `--days` days) to a prefixed topic; one identical copy per extra variant (replicas,
   no fsync), each on its own topic and groups, over a copy of the provisioned database;
3. (a) raw ceiling: one aiokafka consumer reads and json-decodes those same messages;
   (a') the floor with no database: the same reading, then the service's own per-send Python
   before Postgres (its parse, inbox digest and tally), under its collector settings;
4. (b) the warmup service as its own process(es) (`python -m services run warmup`), timed
   from process start until the last send's counter is committed in Postgres (polled every
   0.1 s). Peak RSS is the process's VmHWM; CPU is the process's own, and the Postgres
   server's (embedded only: its processes are ours alone) with its WAL bytes. "Bound by
   the start" is the ratio the run could print at best, had every send been counted at the
   raw ceiling's own rate from the group's assignment on (`best_ratio`): what the start
   alone (imports, group join) leaves of the ratio. "Needed" is the rate from the
   assignment on that the run would have had to count at to print 25% (`needed_rate`): a
   cell whose need is near or above its floor cannot print 25% after that start.

`--table` runs a grid instead (sizes at 200 IPs, IP counts at 200k sends; `--sizes`,
`--ip-counts` change it), each cell on its own database and topic.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench.databases import (
    copy_database,
    describe,
    drop_database,
    durable_postgres,
    fresh_database,
)
from bench.environment import (
    as_shipped,
    free_port,
    load_average,
    on_defaults_or_not,
    service_env,
)
from services.provisioner.service import build as build_provisioner
from services.settings import FleetSettings
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared import database
from shared.client import Publisher, cloud_event
from shared.consumer import Consumer
from shared.contract import topics
from shared.infrastructure import EmbeddedPostgresHandle, PostgresHandle, provide_kafka
from shared.kafka import client_options, ensure_topics
from shared.logging import configure_logging
from shared.runtime import Fleet, subscription_options

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
# The raw ceiling reads with fixed, generous settings, so it does not move with the service's.
CEILING_MAX_RECORDS = 10_000
CEILING_FETCH_BYTES = 8 * 1024 * 1024
# --table: sizes at the default IP count, IP counts at the smallest size.
TABLE_SIZES = (200_000, 500_000, 1_000_000)
TABLE_IP_COUNTS = (50, 1_000, 10_000)

COUNTED_SQL = (
    "SELECT coalesce(sum(delivered + deferred + bounced + complained + dropped), 0) "
    "FROM warmup_daily_counts"
)

# The flags that override a shipped default: (flag dest, variable).
OVERRIDES = (
    ("batch", "IPFLEET_BATCH_MAX_RECORDS"),
    ("batch_timeout_ms", "IPFLEET_BATCH_TIMEOUT_MS"),
    ("fetch_max_wait_ms", "KAFKA_FETCH_MAX_WAIT_MS"),
    ("max_partition_fetch_bytes", "KAFKA_MAX_PARTITION_FETCH_BYTES"),
    ("session_timeout_ms", "KAFKA_SESSION_TIMEOUT_MS"),
    ("partitions", "KAFKA_TOPIC_PARTITIONS"),
)


def send_consumer(settings: FleetSettings) -> Consumer:
    """The warmup service's `send.recorded` consumer, as the service builds it."""
    service = build_warmup(settings, WarmupSettings(_env_file=None))
    (consumer,) = [c for c in service.consumers if c.topic == topics.SEND_RECORDED]
    return consumer


@dataclass(frozen=True)
class RunSettings:
    """What the measured service runs with: the variables given to it beyond where things
    are, and its settings as it will read them (defaults unless overridden)."""

    overrides: dict[str, str]
    effective: FleetSettings

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunSettings:
        overrides = {
            variable: str(getattr(args, dest))
            for dest, variable in OVERRIDES
            if getattr(args, dest) is not None
        }
        if "KAFKA_SESSION_TIMEOUT_MS" in overrides:
            # Kafka wants the heartbeat at a third of the session timeout at most.
            session = int(overrides["KAFKA_SESSION_TIMEOUT_MS"])
            overrides["KAFKA_HEARTBEAT_INTERVAL_MS"] = str(max(100, session // 10))
        return cls(overrides, as_shipped(overrides))

    @property
    def on_defaults(self) -> bool:
        return not self.overrides

    @property
    def partitions(self) -> int:
        return self.effective.kafka_topic_partitions

    def send_subscription(self) -> dict[str, int]:
        """The batch and fetch settings of the `send.recorded` subscription, as the service
        will run it (its own defaults, or the overrides)."""
        return subscription_options(send_consumer(self.effective), self.effective)

    def describe(self) -> str:
        s = self.effective
        sub = ", ".join(f"{k} {v}" for k, v in self.send_subscription().items())
        text = (
            f"send.recorded subscription: {sub}; session timeout "
            f"{s.kafka_session_timeout_ms} ms, heartbeat {s.kafka_heartbeat_interval_ms} ms, "
            f"partitions {s.kafka_topic_partitions}, log level {s.log_level}"
        )
        return on_defaults_or_not(self.overrides, text)


async def scalar(dsn: str, sql: str) -> Any:
    conn = await database.connect(dsn, "warmup")
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def inventory_for(n_ips: int) -> str:
    return "global=10.0.0.0/20" if n_ips <= 4000 else "global=10.0.0.0/16"


def setup_settings(prefix: str, partitions: int, n_ips: int) -> FleetSettings:
    """The bench's own settings, for provisioning and publishing (never the service's)."""
    return FleetSettings(
        _env_file=None,
        KAFKA_TOPIC_PREFIX=prefix,
        KAFKA_TOPIC_PARTITIONS=partitions,
        IPFLEET_INVENTORY=inventory_for(n_ips),
        IPFLEET_OUTBOX_POLL_SECONDS=0.2,
        IPFLEET_SWEEP_SECONDS=0.5,
        KAFKA_SESSION_TIMEOUT_MS=6000,
        KAFKA_HEARTBEAT_INTERVAL_MS=500,
        IPFLEET_HTTP_PORT=0,  # not measured; another bench may hold 8080
    )


async def provision(
    settings: FleetSettings, dsn: str, bootstrap: str, n_ips: int
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
        deadline = time.monotonic() + 600
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


def send_messages(ips: list[dict[str, Any]], n: int, days: float) -> Iterator[tuple[bytes, bytes]]:
    """The bench's `n` sends over `ips` in event-time order, as (key, value): a realistic mix
    of outcomes, a random IP each. The same arguments give the same bytes (fixed seed)."""
    rng = random.Random(42)
    outcomes = rng.choices(list(OUTCOME_MIX), weights=list(OUTCOME_MIX.values()), k=n)
    step = timedelta(days=days) / n
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
        yield ip["address"].encode(), value


async def publish_sends(
    settings: FleetSettings, bootstrap: str, ips: list[dict[str, Any]], n: int, days: float
) -> float:
    """Pre-publish `n` sends in event-time order (`send_messages`); returns the seconds it
    took."""
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
        for key, value in send_messages(ips, n, days):
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def read_all(
    settings: FleetSettings, bootstrap: str, n: int, each_batch: Callable[[list[Any]], None]
) -> float:
    """Read all `n` messages of the send topic from the beginning with one aiokafka consumer
    (fixed, generous settings), handing each fetched batch to `each_batch`: msgs/s."""
    topic = settings.kafka_topic_prefix + topics.SEND_RECORDED
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=CEILING_FETCH_BYTES,
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
            batches = await consumer.getmany(timeout_ms=1000, max_records=CEILING_MAX_RECORDS)
            for records in batches.values():
                each_batch(records)
                seen += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def raw_ceiling(settings: FleetSettings, bootstrap: str, n: int) -> float:
    """(a) Read and json-decode all `n` messages with one aiokafka consumer: msgs/s."""

    def decode(records: list[Any]) -> None:
        for record in records:
            json.loads(record.value)

    return await read_all(settings, bootstrap, n, decode)


async def floor_without_database(settings: FleetSettings, bootstrap: str, n: int) -> float:
    """(a') The raw ceiling's reading, then the Python the service runs on every send before
    it asks Postgres anything: its own parse (`parse_record`, with the send decoder), the
    inbox key of each id, and the tally (`SendsRead`), a batch of the service's size at a time
    with the collector paused and tuned, as the service runs them. msgs/s. The service runs
    this same Python on one core, so it cannot count faster: this is the floor of its own
    per-send cost, with no inbox claim, no counting, no settling and no commit."""
    from shared.daily_inbox import digests_of
    from shared.ingest import collector_paused
    from shared.messages import Received
    from shared.parsing import parse_record
    from shared.runtime import tune_garbage_collector

    sends = send_consumer(FleetSettings(_env_file=None))
    make_digest = sends.digest
    assert make_digest is not None
    key_of = digests_of(sends.name)

    def as_the_service(records: list[Any]) -> None:
        with collector_paused():
            parsed = [parse_record(record, sends) for record in records]
            valid = [item for item in parsed if isinstance(item, Received)]
            keys = b"".join([key_of(item.event.id) for item in valid])
            digest = make_digest()
            digest.add(valid)
            del parsed, valid, keys, digest

    threshold = gc.get_threshold()
    tune_garbage_collector()  # as `ipfleet run` does once started
    try:
        return await read_all(settings, bootstrap, n, as_the_service)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _spawn(env: dict[str, str], log_path: Path, profile: Path | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services", "run", "warmup"]
    if profile is not None:
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    with log_path.open("wb") as log:
        # In a directory of its own: no `.env` from here reaches it.
        return subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=log_path.parent)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(db: PostgresHandle) -> float | None:
    """CPU seconds of the embedded Postgres (postmaster and every backend, the exited ones
    included through the children's counters), or None for a server not ours alone."""
    if not isinstance(db, EmbeddedPostgresHandle) or db.server._proc is None:
        return None
    import psutil

    postmaster = psutil.Process(db.server._proc.pid)
    total = 0.0
    for proc in [postmaster, *postmaster.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


async def wal_lsn(server_url: str) -> int:
    conn = await asyncpg.connect(server_url)
    try:
        return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


@dataclass
class Result:
    replicas: int
    seconds: float
    startup: float  # process start to first counter committed
    steady: float  # first counter committed to last
    peak_rss: list[float]
    service_cpu: float
    pg_cpu: float | None
    wal_bytes: int
    commits: int
    assignments: list[str] = field(default_factory=list)
    # The start, split (first process): launch -> its fleet starting -> send.recorded
    # assigned by its group -> first counter committed; None when its log lacks the line.
    start_split: tuple[float, float, float] | None = None


def start_split(
    log_path: Path, launched: float, first_count: float
) -> tuple[float, float, float] | None:
    """Where the start went, from the process's log (wall-clock times): launch to the fleet's
    start (interpreter, imports, settings), the fleet's start to `send.recorded`'s first
    assignment (pools, topics, the group join), that assignment to the first counter
    committed (first fetch and batch, and this bench's 0.1 s polling)."""
    for line in log_path.read_text(errors="replace").splitlines():
        if '"subscription assigned"' in line and topics.SEND_RECORDED in line:
            try:
                event = json.loads(line)
                assigned = datetime.fromisoformat(event["timestamp"]).timestamp()
                fleet_start = assigned - float(event["seconds"])
            except (ValueError, KeyError):
                return None
            return (fleet_start - launched, assigned - fleet_start, first_count - assigned)
    return None


def send_assignment(log_path: Path) -> str:
    """The `send.recorded` partitions this process was last assigned (from its log)."""
    last = "?"
    for line in log_path.read_text(errors="replace").splitlines():
        if '"subscription assigned"' in line and topics.SEND_RECORDED in line:
            try:
                parts = json.loads(line).get("partitions", [])
            except ValueError:
                continue
            last = ",".join(p.rsplit(":", 1)[1] for p in parts) or "none"
    return last


async def run_service(
    db: PostgresHandle,
    dsn: str,
    bootstrap: str,
    prefix: str,
    n: int,
    overrides: dict[str, str],
    log_dir: Path,
    replicas: int = 1,
    profile: Path | None = None,
) -> Result:
    """(b) The warmup service as `replicas` processes of one consumer group, from their
    start until all `n` sends are counted."""
    env = service_env(dsn, bootstrap, prefix, overrides)
    conn = await database.connect(dsn, "warmup")
    commits_sql = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    procs: list[subprocess.Popen[bytes]] = []
    logs = [log_dir / f"warmup-{prefix.strip('.')}-{i}.log" for i in range(replicas)]
    try:
        commits_before = int(await conn.fetchval(commits_sql))
        wal_before = await wal_lsn(db.url)
        pg_before = server_cpu_seconds(db)
        started = time.perf_counter()
        launched = time.time()
        for i in range(replicas):
            # Each process its own health port: two on one port, the second would not start.
            own = env if i == 0 else {**env, "IPFLEET_HTTP_PORT": str(free_port())}
            procs.append(_spawn(own, logs[i], profile if i == 0 else None))
        first_count: float | None = None
        first_count_wall = 0.0
        while True:
            counted = int(await conn.fetchval(COUNTED_SQL))
            now = time.perf_counter()
            if counted and first_count is None:
                first_count = now
                first_count_wall = time.time()
            if counted >= n:
                break
            for proc, log_path in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"a warmup process exited; see {log_path}")
            await asyncio.sleep(0.1)
        ended = time.perf_counter()
        pg_after = server_cpu_seconds(db)
        wal_after = await wal_lsn(db.url)
        peaks = [peak_rss_mb(p.pid) for p in procs]
        service_cpu = sum(cpu_seconds(p.pid) for p in procs)
        commits = int(await conn.fetchval(commits_sql)) - commits_before
    finally:
        await conn.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert first_count is not None
    return Result(
        replicas=replicas,
        seconds=ended - started,
        startup=first_count - started,
        steady=ended - first_count,
        peak_rss=peaks,
        service_cpu=service_cpu,
        pg_cpu=None if pg_before is None or pg_after is None else pg_after - pg_before,
        wal_bytes=wal_after - wal_before,
        commits=commits,
        assignments=[send_assignment(p) for p in logs],
        start_split=start_split(logs[0], launched, first_count_wall),
    )


def best_ratio(n: int, raw: float, before_assigned: float) -> float:
    """The highest service / raw ceiling a run of `n` sends could print, given the seconds
    its process took from launch to its group's assignment: every send then counted at the
    raw ceiling's own rate. What the start alone leaves of the ratio."""
    return n / (before_assigned + n / raw) / raw


def needed_rate(target: float, n: int, raw: float, before_assigned: float) -> float:
    """The counting rate, from the group's assignment on, that a run of `n` sends needs to
    print `target` of the raw ceiling, given the seconds from launch to its assignment
    (infinite when the start alone takes longer than the whole run may)."""
    left = n / (target * raw) - before_assigned
    return n / left if left > 0 else float("inf")


def describe_result(label: str, n: int, result: Result, raw: float) -> list[str]:
    rate = n / result.seconds
    steady = f"{n / result.steady:,.0f}/s" if result.steady >= 0.5 else "n/a (under 0.5 s)"
    pg = (
        f"{result.pg_cpu / n * 1e6:.0f} µs/send ({result.pg_cpu / result.seconds:.2f} cores)"
        if result.pg_cpu is not None
        else "n/a (not our server alone)"
    )
    rss = " + ".join(f"{p:.0f}" for p in result.peak_rss)
    lines = [
        f"(b) {label}: {n:,} sends counted in {result.seconds:.1f}s = {rate:,.0f} sends/s "
        f"from process start to last counter committed (start to first count "
        f"{result.startup:.1f}s; {steady} after it)  [{load_average()}]",
        f"    service / raw ceiling: {rate / raw:.1%}; peak RSS (VmHWM): {rss} MiB",
        f"    CPU: service {result.service_cpu / n * 1e6:.0f} µs/send "
        f"({result.service_cpu / result.seconds:.2f} cores); Postgres {pg}; "
        f"WAL {result.wal_bytes / n:.0f} B/send; {result.commits} commits "
        f"({n / max(result.commits, 1):,.0f} sends/commit)",
    ]
    if result.start_split is not None:
        to_fleet, to_assigned, to_count = result.start_split
        lines.append(
            f"    start: {to_fleet:.2f}s launch to the fleet's start (imports, settings), "
            f"{to_assigned:.2f}s to send.recorded assigned (pools, topics, group join), "
            f"{to_count:.2f}s to the first count (fetch, first batch, 0.1 s polling)"
        )
        lines.append(
            f"    bound by the start: {best_ratio(n, raw, to_fleet + to_assigned):.1%} of the "
            "raw ceiling, if every send were counted at the ceiling's own rate from the "
            "assignment on"
        )
        needed = needed_rate(0.25, n, raw, to_fleet + to_assigned)
        lines.append(
            f"    to print 25% after this start, it would have to count {needed:,.0f} sends/s "
            f"({needed / raw:.0%} of the raw ceiling) from the assignment on"
        )
    if result.replicas > 1:
        lines.append(f"    send.recorded partitions per replica: {result.assignments}")
    return lines


@dataclass
class Variant:
    label: str
    replicas: int = 1
    fsync: bool = True


def set_fsync(db: PostgresHandle, on: bool) -> None:
    """Restart the embedded server with fsync on or off, on the same data and port. (Its
    command line sets fsync, which ALTER SYSTEM cannot override.)"""
    if not isinstance(db, EmbeddedPostgresHandle):
        raise ValueError("fsync can be switched only on the embedded Postgres")
    db.server._fsync = on
    db.restart()


async def measure_cell(
    db: PostgresHandle,
    bootstrap: str,
    service: RunSettings,
    n_events: int,
    n_ips: int,
    days: float,
    variants: list[Variant],
    log_dir: Path,
    profile: Path | None = None,
    verbose: bool = True,
) -> tuple[float, float, list[tuple[Variant, Result]]]:
    """One measurement: provision, publish (once per variant), ceiling, the floor with no
    database, then each variant. Returns the ceiling, the floor and each variant's result."""

    def say(text: str) -> None:
        if verbose:
            print(text, flush=True)

    dsn = await fresh_database(db.url)
    base = f"bench{uuid.uuid4().hex[:6]}."
    partitions = service.partitions
    setup = setup_settings(f"{base}setup.", partitions, n_ips)
    took = time.perf_counter()
    ips = await provision(setup, dsn, bootstrap, n_ips)
    say(f"provisioned and warming: {len(ips)} IPs in {time.perf_counter() - took:.1f}s")
    runs: list[tuple[Variant, str, str]] = []
    for i, variant in enumerate(variants):
        prefix = base if i == 0 else f"{base}v{i}."
        # Each variant counts into its own copy of the provisioned database.
        target = dsn if i == 0 else await copy_database(db.url, dsn)
        settings = setup_settings(prefix, partitions, n_ips)
        await ensure_topics(settings, bootstrap, [prefix + topics.SEND_RECORDED])
        took = await publish_sends(settings, bootstrap, ips, n_events, days)
        say(f"published: {n_events:,} send.recorded in {took:.1f}s ({n_events / took:,.0f}/s)")
        runs.append((variant, prefix, target))

    raw = await raw_ceiling(setup_settings(base, partitions, n_ips), bootstrap, n_events)
    say(
        f"(a) raw ceiling (one aiokafka consumer, getmany {CEILING_MAX_RECORDS:,}, "
        f"json.loads) on the same messages: {raw:,.0f} msgs/s  [{load_average()}]"
    )
    floor = await floor_without_database(
        setup_settings(base, partitions, n_ips), bootstrap, n_events
    )
    say(
        f"(a') the service's own per-send Python with no database (the same reading, then "
        f"parse, inbox key, tally) on the same messages: {floor:,.0f} msgs/s = "
        f"{floor / raw:.1%} of the raw ceiling  [{load_average()}]"
    )
    results = []
    for variant, prefix, target in runs:
        if not variant.fsync:
            set_fsync(db, False)
            say(f"    for the next line only, the server runs with {await describe(db.url)}")
        try:
            result = await run_service(
                db,
                target,
                bootstrap,
                prefix,
                n_events,
                service.overrides,
                log_dir,
                variant.replicas,
                profile if variant is variants[0] else None,
            )
        finally:
            if not variant.fsync:
                set_fsync(db, True)
        results.append((variant, result))
        for line in describe_result(variant.label, n_events, result, raw):
            say(line)
        await check(target, n_events, say)
    # Measured: the databases go (a run that failed before here keeps them for a look).
    for target in {dsn, *(target for _, _, target in runs)}:
        await drop_database(db.url, target)
    return raw, floor, results


async def check(dsn: str, n: int, say: Any) -> None:
    conn = await database.connect(dsn, "warmup")
    try:
        unknown = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM unknown_ip_sends")
        counted = int(await conn.fetchval(COUNTED_SQL))
        # What one send leaves behind for the deduplication window: its inbox row and index.
        inbox = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
            "WHERE i.inhparent = 'inbox_days'::regclass"
        )
        counts = await conn.fetchval("SELECT pg_total_relation_size('warmup_daily_counts')")
    finally:
        await conn.close()
    say(
        f"    checks: counted {counted:,} of {n:,}; unknown-IP sends {unknown}; inbox "
        f"{inbox / n:.0f} B/send kept for the dedup window; daily counts {counts / 1e6:.1f} MB"
    )


async def measure(args: argparse.Namespace) -> None:
    service = RunSettings.from_args(args)
    if args.no_fsync_line and os.environ.get("DATABASE_URL"):
        raise SystemExit("--no-fsync-line needs the embedded Postgres (unset DATABASE_URL)")
    db = durable_postgres()
    kafka = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    log_dir = Path(tempfile.mkdtemp(prefix="ipfleet-bench-"))
    try:
        print(f"postgres: {db.kind} ({await describe(db.url)}); kafka: {kafka.kind}")
        print(service.describe())
        print(f"machine: {os.cpu_count()} CPUs; {load_average()}; logs {log_dir}", flush=True)
        if args.table:
            await table(db, kafka.bootstrap_servers, service, args, log_dir)
            return
        variants = [Variant("warmup service, 1 process")]
        if args.replicas > 1:
            variants.append(
                Variant(f"warmup service, {args.replicas} processes, one group", args.replicas)
            )
        if args.no_fsync_line:
            variants.append(Variant("EXTRA, NOT WHAT USERS GET: 1 process, fsync OFF", 1, False))
        await measure_cell(
            db,
            kafka.bootstrap_servers,
            service,
            args.events,
            args.ips,
            args.days,
            variants,
            log_dir,
            args.profile,
        )
    finally:
        kafka.close()
        db.close()


async def table(
    db: PostgresHandle,
    bootstrap: str,
    service: RunSettings,
    args: argparse.Namespace,
    log_dir: Path,
) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    ip_counts = [int(s) for s in args.ip_counts.split(",")]
    cells = [(n, args.ips) for n in sizes]
    cells += [(sizes[0], ips) for ips in ip_counts if ips != args.ips]
    print(
        f"grid: {', '.join(f'{n:,}' for n in sizes)} sends at {args.ips} IPs; "
        f"{', '.join(str(i) for i in ip_counts)} IPs at {sizes[0]:,} sends; one process"
    )
    print(
        "| sends | IPs | raw ceiling/s | service/s (start to last count) | ratio | bound by "
        "the start | start to first count | after first count/s | needed after the start for "
        "25% | no-database floor/s | peak RSS MiB | service CPU µs/send | Postgres CPU "
        "µs/send | WAL B/send | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, ips in cells:
        raw, floor, [(_, r)] = await measure_cell(
            db, bootstrap, service, n, ips, args.days, [Variant("cell")], log_dir, verbose=False
        )
        pg = f"{r.pg_cpu / n * 1e6:.0f}" if r.pg_cpu is not None else "n/a"
        steady = f"{n / r.steady:,.0f}" if r.steady >= 0.5 else "n/a"
        bound = needed = "n/a"
        if r.start_split is not None:
            before_assigned = r.start_split[0] + r.start_split[1]
            bound = f"{best_ratio(n, raw, before_assigned):.1%}"
            rate = needed_rate(0.25, n, raw, before_assigned)
            needed = f"{rate:,.0f} ({rate / raw:.0%})"
        print(
            f"| {n:,} | {ips:,} | {raw:,.0f} | {n / r.seconds:,.0f} | {n / r.seconds / raw:.1%} "
            f"| {bound} | {r.startup:.1f}s | {steady} | {needed} "
            f"| {floor:,.0f} ({floor / raw:.0%}) | {max(r.peak_rss):.0f} "
            f"| {r.service_cpu / n * 1e6:.0f} | {pg} | {r.wal_bytes / n:.0f} "
            f"| {os.getloadavg()[0]:.2f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ips", type=int, default=200)
    parser.add_argument("--days", type=float, default=2.0, help="event-time span of the sends")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="also run the service as this many processes of one group, on a copy of the "
        "same messages and database, after the one-process run",
    )
    parser.add_argument(
        "--no-fsync-line",
        action="store_true",
        help="add an extra, labelled run with fsync off (embedded Postgres only)",
    )
    parser.add_argument("--table", action="store_true", help="run the grid of sizes and IPs")
    parser.add_argument("--sizes", default=",".join(str(n) for n in TABLE_SIZES))
    parser.add_argument("--ip-counts", default=",".join(str(n) for n in TABLE_IP_COUNTS))
    overrides = parser.add_argument_group(
        "overrides of the shipped defaults (the printout then says: NOT ON DEFAULTS)"
    )
    for dest, variable in OVERRIDES:
        overrides.add_argument(
            "--" + dest.replace("_", "-"), dest=dest, type=int, default=None, help=variable
        )
    parser.add_argument(
        "--profile", type=Path, default=None, help="run the service under cProfile, stats here"
    )
    args = parser.parse_args()
    # This process's own log (provisioning, topic creation) would drown the figures.
    configure_logging("pretty", os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
