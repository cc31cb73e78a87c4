"""Prometheus metrics of an `ipfleet run` process, served at /metrics (shared/operations.py).

Two kinds, so that measuring costs the hot path nothing worth counting:
- counted by the pipeline and the relay once per batch (never per event): events applied,
  skipped as duplicates and dead-lettered, batch sizes and apply durations, relay publishes;
- read on scrape, at most every `IPFLEET_METRICS_REFRESH_SECONDS`, from Postgres (outbox
  backlog, event-time watermark, each service's own gauges in its `metrics.sql`) and from the
  subscriptions' Kafka consumers (lag per partition).

Label values are bounded: services, topics, event types of the contract, error classes,
partitions and statuses; never ids, addresses or domains.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared import event_clock
from shared.sql import Statements

if TYPE_CHECKING:
    from shared.consumer import Consumer
    from shared.messages import Received, Rejected
    from shared.parsing import Record

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN_TYPE = "unknown"

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

OUTBOX_SQL = """
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest
FROM outbox WHERE relay = $1
"""


async def event_time(
    conn: asyncpg.Connection, service: str
) -> tuple[datetime | None, datetime | None]:
    """(furthest, slowest) of a service's partition clocks (shared.event_clock): the latest
    event time any partition has read, and the least of its subscriptions' slowest clocks
    (each the minimum over its partitions; a subscription whose partitions are not all read
    yet, or that read nothing, is left out). None when nothing was read."""
    clocks = await event_clock.load(conn, service)
    slowest = [s.slowest() for s in clocks.subscriptions.values()]
    known = [t for t in slowest if t is not None]
    return clocks.latest, min(known) if known else None


class FleetMetrics:
    """The instruments of one process (one registry per Fleet, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        where = ["service", "topic"]
        self.applied = Counter(
            "ipfleet_events_applied",
            "Input events applied (new to the inbox), by event type.",
            [*where, "type"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "ipfleet_events_duplicate",
            "Input events skipped because their id was already applied.",
            where,
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "ipfleet_events_dead_lettered",
            "Input messages sent to <topic>.dlq, by event type (unknown when it did not parse) "
            "and error class.",
            [*where, "type", "reason"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ipfleet_batch_size",
            "Records per applied batch.",
            where,
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "ipfleet_batch_apply_seconds",
            "Time to apply one batch durably (parse, inbox, handler, outbox, commit), retries "
            "included.",
            where,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.relay_seconds = Histogram(
            "ipfleet_relay_publish_seconds",
            "Time for the outbox relay to publish one batch of rows until every ack.",
            ["service"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.relayed = Counter(
            "ipfleet_relay_published_events",
            "Outbox rows published by this process's relay (events and dead letters).",
            ["service"],
            registry=self.registry,
        )
        self.sampled = Sampled()
        self.registry.register(self.sampled)

    def observer(self, consumer: Consumer) -> PipelineMetrics:
        return PipelineMetrics(self, consumer)

    def relay_timer(self, service: str) -> Callable[[int, float], None]:
        """For OutboxRelay(on_published=...): one call per published batch."""
        seconds = self.relay_seconds.labels(service)
        count = self.relayed.labels(service)

        def published(rows: int, elapsed: float) -> None:
            seconds.observe(elapsed)
            count.inc(rows)

        return published

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class PipelineMetrics:
    """A pipeline's BatchObserver: tallies an attempt, counts it once the batch commits."""

    metrics: FleetMetrics
    consumer: Consumer
    _applied: Tally[str] = field(default_factory=Tally)
    _duplicates: int = 0
    _dead: Tally[tuple[str, str]] = field(default_factory=Tally)

    def __post_init__(self) -> None:
        labels = (self.consumer.service, self.consumer.topic)
        self._labels = labels
        self._size = self.metrics.batch_size.labels(*labels)
        self._seconds = self.metrics.batch_seconds.labels(*labels)
        self._duplicate = self.metrics.duplicates.labels(*labels)
        self._only_type = next(iter(self.consumer.types)) if len(self.consumer.types) == 1 else None
        self._known = set(self.consumer.types) | set(self.consumer.others)
        # Every series exists from the start: a rate() over a counter born mid-way misses
        # its first increments.
        for event_type in self.consumer.types:
            self.metrics.applied.labels(*labels, event_type)

    def attempt(self) -> None:
        if self._applied or self._duplicates or self._dead:
            self._applied.clear()
            self._dead.clear()
            self._duplicates = 0

    def applied(
        self, valid: Sequence[Received], fresh: Sequence[Received], expired: Sequence[Received]
    ) -> None:
        self._duplicates += len(valid) - len(fresh) - len(expired)
        if not fresh:
            return
        if self._only_type is not None:
            self._applied[self._only_type] += len(fresh)
        else:
            self._applied.update(item.event.type for item in fresh)

    def dead_lettered(self, record: Record, rejected: Rejected) -> None:
        self._dead[(self._event_type(record, rejected), rejected.error_class)] += 1

    def done(self, records: int, seconds: float) -> None:
        self._size.observe(records)
        self._seconds.observe(seconds)
        if self._duplicates:
            self._duplicate.inc(self._duplicates)
        for event_type, n in self._applied.items():
            self.metrics.applied.labels(*self._labels, event_type).inc(n)
        for (event_type, reason), n in self._dead.items():
            self.metrics.dead_lettered.labels(*self._labels, event_type, reason).inc(n)
        self.attempt()

    def _event_type(self, record: Record, rejected: Rejected) -> str:
        """The dead letter's type when it is one the topic carries; anything a sender wrote
        would make the label unbounded. Dead letters are rare: parsing again costs nothing."""
        if rejected.event is not None:
            event_type: Any = rejected.event.type
        else:
            try:
                event_type = json.loads(record.value or b"").get("type")
            except (ValueError, AttributeError):
                event_type = None
        return event_type if event_type in self._known else UNKNOWN_TYPE


# ---- read on scrape ------------------------------------------------------------------------


class Sampled(Collector):
    """Gauges refreshed by `Sampler.refresh` (outside the registry, since that reads over the
    network) and served as they were last read."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


@dataclass(frozen=True)
class ServiceGauges:
    """A service's own gauges (`Service.gauges`): the statements of its `metrics.sql`. Each
    statement is one gauge, `ipfleet_<statement name>`; its text columns are labels and its
    `value` column the value; the comment lines leading the statement are its help. Kept
    beside the service's tables, so that moving them moves their gauges along."""

    service: str
    statements: Statements

    def help(self, name: str) -> str:
        lines = getattr(self.statements, name).splitlines()
        words = []
        for line in lines:
            if not line.startswith("--"):
                break
            words.append(line.removeprefix("--").strip())
        return " ".join(words) or f"{self.service}: {name}"

    async def read(self, conn: asyncpg.Connection) -> list[Metric]:
        families: list[Metric] = []
        for name in self.statements.names():
            rows = await conn.fetch(getattr(self.statements, name), timeout=5)
            labels = [k for k in (rows[0].keys() if rows else ()) if k != "value"]
            family = GaugeMetricFamily(
                f"ipfleet_{name}", self.help(name), labels=["service", *labels]
            )
            for row in rows:
                family.add_metric([self.service, *(str(row[k]) for k in labels)], row["value"])
            families.append(family)
        return families


LagReader = Callable[[], Awaitable[list[tuple[str, str, int, int]]]]


@dataclass
class Sampler:
    """Refreshes the sampled gauges: Postgres through the caller's connection, Kafka lag
    through `read_lag` (the subscriptions' consumers live on the service's event loop)."""

    metrics: FleetMetrics
    services: Sequence[str]
    refresh_seconds: float = 10.0
    read_lag: LagReader | None = None
    gauges: Mapping[str, ServiceGauges] = field(default_factory=dict)
    _read_at: float = float("-inf")
    _lock: asyncio.Lock | None = None
    _lag: GaugeMetricFamily | None = None

    async def refresh(self, connect: Callable[[str], Awaitable[asyncpg.Connection | None]]) -> None:
        """Read everything again unless it was read less than `refresh_seconds` ago, each
        service's gauges on a connection to its own database and schema (`connect(service)`).
        What cannot be read (a database down, consumers busy) is left out of this scrape
        rather than shown stale, except the lag, which keeps its last reading. One refresh at
        a time: concurrent scrapes wait for it and share its connections in turn."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._read_at < self.refresh_seconds:
                return
            common = self._database_families()
            families: list[Metric] = [*common]
            for service in self.services:
                conn = await connect(service)
                if conn is None:
                    continue
                try:
                    families += await self._read_database(conn, service, common)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                    log.warning("metrics: database gauges not read", service=service, error=repr(e))
            families += await self._read_lag()
            self.metrics.sampled.families = families
            self._read_at = time.monotonic()

    @staticmethod
    def _database_families() -> list[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "ipfleet_outbox_pending",
            "Outbox rows (events and dead letters) not yet published.",
            labels=["service"],
        )
        oldest = GaugeMetricFamily(
            "ipfleet_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none).",
            labels=["service"],
        )
        watermark = GaugeMetricFamily(
            "ipfleet_event_time_watermark_seconds",
            "The service's partition clocks (latest event time read per subscription and "
            "partition), Unix seconds: clock=furthest is the furthest any partition has read, "
            "clock=slowest the slowest partition's clock of its slowest subscription.",
            labels=["service", "clock"],
        )
        trailing = GaugeMetricFamily(
            "ipfleet_event_time_lag_seconds",
            "How far each event-time clock (furthest, slowest) trails this process's wall clock.",
            labels=["service", "clock"],
        )
        return [pending, oldest, watermark, trailing]

    async def _read_database(
        self, conn: asyncpg.Connection, service: str, common: list[GaugeMetricFamily]
    ) -> list[Metric]:
        """Adds the service's samples to the families every service shares (`common`);
        returns the service's own gauges."""
        pending, oldest, watermark, trailing = common
        now = time.time()
        row = await conn.fetchrow(OUTBOX_SQL, service, timeout=5)
        furthest, slowest = await event_time(conn, service)
        gauges = self.gauges.get(service)
        own = await gauges.read(conn) if gauges is not None else []
        # Added once all is read: a service read halfway adds nothing.
        pending.add_metric([service], row["pending"])
        oldest.add_metric([service], float(row["oldest"]))
        for clock, at in (("furthest", furthest), ("slowest", slowest)):
            if at is not None:
                watermark.add_metric([service, clock], at.timestamp())
                trailing.add_metric([service, clock], max(now - at.timestamp(), 0.0))
        return own

    async def _read_lag(self) -> list[Metric]:
        if self.read_lag is None:
            return []
        try:
            rows = await self.read_lag()
        except Exception as error:  # a busy or rebalancing consumer: keep the last reading
            log.warning("metrics: consumer lag not read", error=repr(error))
            return [self._lag] if self._lag is not None else []
        lag = GaugeMetricFamily(
            "ipfleet_consumer_lag",
            "Messages not yet committed on each partition this process holds (end offset "
            "minus committed offset, never below 0).",
            labels=["service", "topic", "partition"],
        )
        for service, topic, partition, value in rows:
            lag.add_metric([service, topic, str(partition)], value)
        self._lag = lag
        return [lag]


def metric_names(exposition: str) -> set[str]:
    """Every metric name in a text exposition, samples' suffixes (_total, _bucket…) included."""
    return {
        match.group(1)
        for match in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.MULTILINE)
    }
