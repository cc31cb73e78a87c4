"""Running services: FastStream subscribers over the pipeline, outbox relays and sweeps,
with a graceful stop (stop fetching, finish the batch in hand, commit, exit)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared import database, event_clock, outbox
from shared.consumer import Consumer
from shared.contract.topics import dead_letter
from shared.daily_inbox import drop_expired_day_partitions
from shared.event_clock import Clocks
from shared.health import Subscription
from shared.kafka import ensure_topics, make_broker, make_producer
from shared.messages import Emit
from shared.operations import Operations
from shared.pipeline import Pipeline
from shared.relay import OutboxRelay
from shared.settings import Settings
from shared.sql import Statements, load_statements

log = structlog.get_logger(__name__)
SQL = load_statements("shared", "inbox.sql")

# A sweep reads the service's partition clocks (shared.event_clock), never the wall clock.
SweepRun = Callable[[asyncpg.Connection, Clocks], Awaitable[Sequence[Emit]]]


@dataclass(frozen=True)
class Sweep:
    """A periodic step on the service's event-time clocks (e.g. end cooldowns). It must be
    idempotent: it runs on every replica's timer, one at a time, and may run twice. It
    decides for an entity only on a clock safe for that entity's partition."""

    name: str
    run: SweepRun


@dataclass(frozen=True)
class Service:
    name: str
    consumers: Sequence[Consumer]
    sweeps: Sequence[Sweep] = ()
    # (topic, event types) this service emits, for topic creation and the AsyncAPI document.
    publishes: Sequence[tuple[str, Sequence[str]]] = ()
    on_start: Callable[[asyncpg.Pool, Settings], Awaitable[None]] | None = None
    # Gauges read from the service's own tables on scrape (its metrics.sql; shared/metrics.py).
    gauges: Statements | None = None


def group_id(service: str, topic: str) -> str:
    """Each (service, topic) subscription is its own consumer group, so replaying one topic
    for one service moves nothing else."""
    return f"ipfleet.{service}.{topic}"


async def _no_decode(_: Any) -> None:
    # The pipeline parses raw bytes itself, so that a non-JSON value reaches the DLQ path.
    return None


async def _batch_of_records(
    records: tuple[Any, ...], parse: Callable[[tuple[Any, ...]], Awaitable[Any]]
) -> Any:
    """FastStream's batch message without the body and header dict it builds for every
    record (4% of the warmup worker on 10,000-record batches): the pipeline reads the
    records themselves (`raw_message`), and acks and nacks go by them too. The message is
    FastStream's own, parsed from the first record, then given the whole batch."""
    message = await parse(records[:1])
    message.raw_message = records
    if len(records) > 1:
        first, last = records[0], records[-1]
        message.message_id = f"{first.offset}-{last.offset}-{first.timestamp}"
    return message


class _AssignmentListener(ConsumerRebalanceListener):
    """Tells its callback each time the subscription's group hands it an assignment."""

    def __init__(self, group: str, assigned: Callable[[str, set[TopicPartition]], None]) -> None:
        self._group = group
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned(self._group, assigned)


class _Listeners(ConsumerRebalanceListener):
    """Several rebalance listeners on one subscription (aiokafka takes one), told in order:
    the fleet's readiness and the health probes' view of the subscription."""

    def __init__(self, *listeners: ConsumerRebalanceListener) -> None:
        self._listeners = listeners

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for listener in self._listeners:
            await listener.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for listener in self._listeners:
            await listener.on_partitions_assigned(assigned)


# A subscription's own default (a Consumer field) and the fleet-wide setting it stands for.
_SUBSCRIPTION_DEFAULTS = {
    "batch_max_records": "batch_max_records",
    "batch_timeout_ms": "batch_timeout_ms",
    "fetch_max_wait_ms": "kafka_fetch_max_wait_ms",
    "max_partition_fetch_bytes": "kafka_max_partition_fetch_bytes",
}


def subscription_options(consumer: Consumer, settings: Settings) -> dict[str, int]:
    """The batch and fetch settings one subscription runs with: the fleet-wide variable when
    it is set explicitly (environment, `.env` or keyword), else the subscription's own
    default, else the fleet-wide default. So `IPFLEET_BATCH_MAX_RECORDS=1` still means one
    record at a time everywhere, while a fresh install gives each subscription its own."""
    options = {}
    for option, setting in _SUBSCRIPTION_DEFAULTS.items():
        own = getattr(consumer, option)
        explicit = setting in settings.model_fields_set
        options[option] = getattr(settings, setting) if explicit or own is None else own
    return options


def register(
    broker: KafkaBroker,
    consumer: Consumer,
    pipeline: Pipeline,
    settings: Settings,
    listener: ConsumerRebalanceListener | None = None,
    subscription: Subscription | None = None,
) -> Any:
    """Subscribe the pipeline to its topic; returns the FastStream subscriber. `listener`
    hears the group's rebalances; so does `subscription` (health, metrics, tracing), which is
    also told when each batch starts and ends."""
    if subscription is not None:
        listener = subscription if listener is None else _Listeners(listener, subscription)
    options = subscription_options(consumer, settings)
    subscriber = broker.subscriber(
        settings.kafka_topic_prefix + consumer.topic,
        group_id=settings.kafka_topic_prefix + group_id(consumer.service, consumer.topic),
        batch=True,
        max_records=options["batch_max_records"],
        batch_timeout_ms=options["batch_timeout_ms"],
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        fetch_max_wait_ms=options["fetch_max_wait_ms"],
        max_partition_fetch_bytes=options["max_partition_fetch_bytes"],
        parser=_batch_of_records,
        decoder=_no_decode,
        listener=listener,
        title=group_id(consumer.service, consumer.topic),
        description=f"{consumer.service} applies {', '.join(sorted(consumer.types))}",
    )
    if subscription is not None:
        subscription.subscriber = subscriber

    async def on_batch(message: KafkaMessage) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        if pipeline.partition_count is None:
            pipeline.partition_count = _partition_count(message, records)
        if not pipeline.accepting:
            # Stopping: not applied, not committed; the next owner reads it from the last
            # commit. Stopping is then prompt however deep the backlog.
            return
        applied: bool | None = None
        if subscription is not None:
            subscription.batch_started(len(records))
        try:
            applied = await pipeline.process(records)
        finally:
            if subscription is not None:
                subscription.batch_finished(applied)
        if applied:
            try:
                await message.ack()
            except (CommitFailedError, KafkaError) as error:
                # The group rebalanced under us: the new owner re-reads from the last
                # commit and the inbox absorbs what we already applied.
                log.warning("offset commit refused", consumer=consumer.name, error=repr(error))
        else:
            await message.nack()

    subscriber(on_batch)
    return subscriber


def _partition_count(message: KafkaMessage, records: Sequence[Any]) -> int | None:
    """How many partitions the batch's topic has, from the consumer's metadata."""
    consumer = getattr(message, "consumer", None)
    if consumer is None or not records or not hasattr(consumer, "partitions_for_topic"):
        return None
    partitions = consumer.partitions_for_topic(records[0].topic)
    return len(partitions) if partitions else None


@dataclass
class Fleet:
    """One process running one or more services. `databases` is one DSN for every service,
    or a DSN per service; either way each service works in its own schema (named after it)
    through its own pool."""

    services: Sequence[Service]
    settings: Settings
    databases: Mapping[str, str] | str
    bootstrap: str
    pools: dict[str, asyncpg.Pool] = field(default_factory=dict)
    broker: KafkaBroker | None = None
    relays: list[OutboxRelay] = field(default_factory=list)
    pipelines: list[Pipeline] = field(default_factory=list)
    _subscribers: list[tuple[Any, Pipeline]] = field(default_factory=list)
    # Health probes, metrics and their HTTP server (IPFLEET_HTTP_PORT).
    ops: Operations | None = None
    # Set once every subscription has had its first assignment from its group (an empty one
    # counts: a replica beyond the partition count is assigned nothing). Not cleared by later
    # rebalances.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # The partitions each subscription (by group id) holds, as its group last assigned them.
    assignments: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _unassigned: set[str] = field(default_factory=set)
    _started_at: float = 0.0
    _ready_after: float | None = None

    async def wait_ready(self, timeout: float | None = None) -> float:
        """Wait until every subscription has its assignment; returns the seconds it took
        from the start of `start()`."""
        await asyncio.wait_for(self.ready.wait(), timeout)
        assert self._ready_after is not None
        return self._ready_after

    def _assigned(self, group: str, partitions: set[TopicPartition]) -> None:
        seconds = time.monotonic() - self._started_at
        log.info(
            "subscription assigned",
            group=group,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in partitions),
            seconds=round(seconds, 3),
        )
        self.assignments[group] = frozenset(partitions)
        self._unassigned.discard(group)
        self._set_ready_once_all_assigned()

    def _set_ready_once_all_assigned(self) -> None:
        if not self._unassigned and not self.ready.is_set():
            self._ready_after = time.monotonic() - self._started_at
            self.ready.set()

    def dsn(self, service: str) -> str:
        """The DSN of `service`'s database (a secret: never log it)."""
        if isinstance(self.databases, str):
            return self.databases
        return self.databases[service]

    async def start(self) -> None:
        self._started_at = time.monotonic()
        settings = self.settings
        names = "+".join(s.name for s in self.services)
        # First: binding the HTTP port fails at once when it is taken.
        self.ops = ops = Operations(
            settings,
            {s.name: self.dsn(s.name) for s in self.services},
            {s.name: s.gauges for s in self.services if s.gauges is not None},
        )
        for service in self.services:
            self.pools[service.name] = await database.create_pool(
                self.dsn(service.name), service.name
            )
        if settings.kafka_create_topics:
            topics = [c.topic for s in self.services for c in s.consumers]
            topics += [dead_letter(t) for t in topics]
            topics += [t for s in self.services for t, _ in s.publishes]
            await ensure_topics(
                settings, self.bootstrap, [settings.kafka_topic_prefix + t for t in topics]
            )
        for service in self.services:
            if service.on_start is not None:
                await service.on_start(self.pools[service.name], settings)
        self.broker = make_broker(settings, self.bootstrap, client_id=f"ipfleet-{names}")
        for service in self.services:
            for consumer in service.consumers:
                pipeline = Pipeline(consumer, self.pools[service.name], settings.retry_max_seconds)
                pipeline.observer = ops.pipeline_observer(consumer)
                self.pipelines.append(pipeline)
                group = settings.kafka_topic_prefix + group_id(consumer.service, consumer.topic)
                self._unassigned.add(group)
                subscriber = register(
                    self.broker,
                    consumer,
                    pipeline,
                    settings,
                    listener=_AssignmentListener(group, self._assigned),
                    subscription=ops.subscription(service.name, consumer.topic),
                )
                self._subscribers.append((subscriber, pipeline))
            relay = OutboxRelay(
                relay=service.name,
                dsn=self.dsn(service.name),
                schema=service.name,
                producer_factory=partial(
                    make_producer,
                    settings,
                    self.bootstrap,
                    client_id=f"ipfleet-{service.name}-relay",
                ),
                poll_seconds=settings.outbox_poll_seconds,
                topic_prefix=settings.kafka_topic_prefix,
                on_published=ops.relay_observer(service.name),
            )
            self.relays.append(relay)
            self._tasks.append(asyncio.create_task(relay.run(), name=f"relay:{service.name}"))
            for sweep in [*service.sweeps, *_retention_sweeps(service)]:
                self._tasks.append(
                    asyncio.create_task(
                        self._sweep_loop(service.name, sweep),
                        name=f"sweep:{service.name}:{sweep.name}",
                    )
                )
        await ops.start()
        await self.broker.start()
        await self._know_partition_counts()
        log.info("services started", services=[s.name for s in self.services])
        # aiokafka's consumer start() returns once its group has assigned it, so this is
        # normally set already; the listeners are the evidence, not that assumption.
        self._set_ready_once_all_assigned()  # a fleet with no subscription at all
        seconds = await self.wait_ready()
        log.info(
            "services ready",
            services=[s.name for s in self.services],
            subscriptions=len(self.pipelines),
            seconds=round(seconds, 2),
        )

    async def stop(self) -> None:
        """Stop fetching, let in-flight batches finish and commit, then stop relays."""
        if self.ops is not None:
            self.ops.probes.stopping = True
        for pipeline in self.pipelines:
            pipeline.accepting = False
        if self.broker is not None:
            await self.broker.stop()
        for relay in self.relays:
            relay.stop()
        for task in self._tasks:
            if not task.get_name().startswith("relay:"):
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)
        for pool in self.pools.values():
            await pool.close()
        if self.ops is not None:
            await self.ops.stop()
        log.info("services stopped", services=[s.name for s in self.services])

    async def run_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        tune_garbage_collector()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _know_partition_counts(self) -> None:
        """Tell each pipeline how many partitions its topic has, from its consumer's metadata,
        before the first sweep: the clock safe for every partition needs to know them all."""
        for subscriber, pipeline in self._subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None or pipeline.partition_count is not None:
                continue
            found = consumer.partitions_for_topic(
                self.settings.kafka_topic_prefix + pipeline.consumer.topic
            )
            if found:
                pipeline.partition_count = len(found)
                await pipeline.know_partitions()

    async def _sweep_loop(self, service: str, sweep: Sweep) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            try:
                await run_sweep(self.pools[service], service, sweep)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("sweep failed; will retry", sweep=sweep.name, error=repr(error))


def tune_garbage_collector() -> None:
    """For a long-running consumer process. A batch allocates thousands of short-lived objects
    (records, envelopes, models); at the default gen-0 threshold of 700 the cyclic collector
    runs dozens of times per batch and keeps rescanning what start-up allocated. Freeze the
    start-up heap and collect less often (measured on send.recorded batches: GC time per
    event 12.8 µs -> 1.1 µs)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def run_sweep(pool: asyncpg.Pool, service: str, sweep: Sweep) -> int:
    """Run one sweep if no other replica is running it; returns events emitted."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtext($1))",
            f"ipfleet.sweep.{service}.{sweep.name}",
        ):
            return 0
        clocks = await event_clock.load(conn, service)
        if clocks.latest is None:
            return 0
        emits = await sweep.run(conn, clocks)
        await outbox.append(conn, service, outbox.emitted_rows(service, emits))
        if emits:
            log.info("sweep emitted", sweep=sweep.name, events=len(emits))
        return len(emits)


def _retention_sweeps(service: Service) -> list[Sweep]:
    daily = [c for c in service.consumers if c.inbox == "daily"]
    if not daily:
        return []
    keep = max(c.retention_days for c in daily)

    async def drop(conn: asyncpg.Connection, clocks: Clocks) -> Sequence[Emit]:
        # On the slowest partition's clock: a day is dropped only once every partition has
        # read past the window (the pipeline's claim judges expiry on the same clock).
        slowest = [clocks.of(c.name).slowest() for c in daily]
        if any(s is None for s in slowest):
            return []
        oldest = min(s for s in slowest if s is not None)
        dropped = await drop_expired_day_partitions(conn, oldest.date() - timedelta(days=keep))
        if dropped:
            log.info("inbox partitions dropped", partitions=dropped)
        return []

    return [Sweep("inbox-retention", drop)]
