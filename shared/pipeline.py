"""The consumer pipeline every service stands on.

For each batch of Kafka records: parse → validate → deduplicate (inbox) → handle → write
state, emitted events and dead letters (outbox) in ONE Postgres transaction → only then
commit the Kafka offsets. A transient failure retries the whole batch with backoff and is
never skipped; a poison message is dead-lettered with its reason and the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache, cached_property
from typing import Any, Literal, Protocol

import asyncpg
import structlog
from pydantic import BaseModel, ValidationError, create_model

from shared import backoff, event_clock, outbox
from shared.contract.envelope import CloudEvent
from shared.messages import BatchResult, Cause, Emit, Received, Rejected, Unprocessable
from shared.sql import load_statements

log = structlog.get_logger(__name__)
SQL = load_statements("shared", "inbox.sql")

EventHandler = Callable[[asyncpg.Connection, Received], Awaitable[Sequence[Emit]]]
# A batch handler also receives the clock of each partition the batch read, after the batch:
# an entity is judged on its own partition's event time (shared.event_clock).
BatchHandler = Callable[
    [asyncpg.Connection, list[Received], Mapping[int, datetime]], Awaitable[BatchResult]
]
InvalidAnswer = Callable[[CloudEvent, Rejected], Sequence[Emit]]


def by_type(handlers: Mapping[str, EventHandler]) -> EventHandler:
    """One handler for a topic that carries several types: dispatch on `type`."""

    async def dispatch(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
        return await handlers[event.type](conn, event)

    return dispatch


class _NewDay(Exception):
    """A chunk of a batch needs an inbox partition that must be created first."""


class Record(Protocol):
    """The parts of an aiokafka ConsumerRecord the pipeline reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Consumer:
    """One service's subscription to one topic.

    `types` maps each event type this consumer applies to its data model. Types in
    `others` are known on the topic but belong to another service: skipped, not
    dead-lettered. Anything else is an unknown type and is dead-lettered.
    """

    service: str
    topic: str
    types: Mapping[str, type[Any]]
    handle: EventHandler | None = None
    handle_batch: BatchHandler | None = None
    others: Collection[str] = frozenset()
    # "keep": one inbox row per event, kept. "daily": partitioned by event day and
    # dropped after `retention_days` (for the high-volume streams).
    inbox: Literal["keep", "daily"] = "keep"
    retention_days: int = 7
    # Optional answer to the sender of an event whose envelope parsed but whose data did not
    # (it is dead-lettered all the same), e.g. `ip.request_rejected` with `invalid_request`.
    answer_invalid: InvalidAnswer | None = None
    # This subscription's own defaults for the fleet-wide batch and fetch settings (a
    # high-volume stream's tuning, beside it). None keeps the fleet-wide default; a fleet-wide
    # variable set explicitly wins over both (shared.runtime.subscription_options).
    batch_max_records: int | None = None
    batch_timeout_ms: int | None = None
    fetch_max_wait_ms: int | None = None
    max_partition_fetch_bytes: int | None = None

    def __post_init__(self) -> None:
        if (self.handle is None) == (self.handle_batch is None):
            raise ValueError(
                f"{self.service}/{self.topic}: give exactly one of handle, handle_batch"
            )

    @property
    def name(self) -> str:
        return f"{self.service}/{self.topic}"

    @cached_property
    def envelope(self) -> type[CloudEvent] | None:
        """For a consumer of one type: its CloudEvent with typed `data` (parse_record's fast
        path validates a record against it in one call); None otherwise."""
        if len(self.types) != 1:
            return None
        ((event_type, model),) = self.types.items()
        return _envelope(event_type, model)


Parsed = tuple["Record", Received | Rejected | None]
# Records parsed while the previous chunk's ids are claimed (see Pipeline._apply_overlapped).
OVERLAP_CHUNK = 1000

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and refused connections
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


def parse_record(record: Record, consumer: Consumer) -> Received | Rejected | None:
    """Decode and validate one record. None means: a type for another service, skip it.

    Fast paths first: whatever they refuse takes the full path, which classifies it (dead
    letter and reason, or another service's type) exactly as it always did. A consumer of one
    type validates envelope and data from the bytes in one call; its `Received.event` is then
    that type's envelope (a CloudEvent whose `data` is the typed model, as `Received.data`).
    """
    value = record.value or b""
    envelope = consumer.envelope
    if envelope is not None:
        try:
            event = envelope.model_validate_json(value)
        except ValidationError:
            pass
        else:
            key = record.key.decode("utf-8", "replace") if record.key is not None else None
            return Received(event, event.data, record.topic, key, record.partition)
    try:
        event = CloudEvent.model_validate_json(value)
    except ValidationError:
        return _parse_in_full(record, consumer)
    return _typed(record, consumer, event)


@cache
def _envelope(event_type: str, model: type[Any]) -> type[CloudEvent] | None:
    """The CloudEvent of one type with its typed `data`, validated in one call."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    envelope: type[CloudEvent] = create_model(
        f"{model.__name__}Envelope",
        __base__=CloudEvent,
        type=(Literal[event_type], ...),  # type: ignore[valid-type]
        data=(model, ...),
    )
    return envelope


def _parse_in_full(record: Record, consumer: Consumer) -> Received | Rejected | None:
    try:
        payload = json.loads(record.value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return Rejected("InvalidJson", f"value is not JSON: {error}")
    if not isinstance(payload, dict):
        return Rejected("NotACloudEvent", "value is JSON but not an object")
    try:
        event = CloudEvent.model_validate(payload)
    except ValidationError as error:
        return Rejected("NotACloudEvent", _short(error))
    return _typed(record, consumer, event)


def _typed(record: Record, consumer: Consumer, event: CloudEvent) -> Received | Rejected | None:
    model = consumer.types.get(event.type)
    if model is None:
        if event.type in consumer.others:
            return None
        return Rejected(
            "UnknownEventType", f"{event.type!r} is not an event type of {record.topic}"
        )
    try:
        data = model.model_validate(event.data)
    except ValidationError as error:
        return Rejected("ValidationFailed", f"{event.type}: {_short(error)}", event)
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return Received(event, data, record.topic, key, record.partition)


def _short(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "value"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclass
class Pipeline:
    """Runs one consumer's batches against Postgres. One instance per subscription."""

    consumer: Consumer
    pool: asyncpg.Pool
    retry_max_seconds: float = 60.0
    # False once the process is stopping: batches fetched after that are left uncommitted
    # for the group's next owner instead of being applied (see runtime.register).
    accepting: bool = True
    # How many partitions the topic has (from the consumer's metadata), so that partitions
    # nothing was read on yet hold back the slowest clock; None until known.
    partition_count: int | None = None
    _known_partitions: set[str] = field(default_factory=set)
    _clocked_partitions: int = 0

    async def process(self, records: Sequence[Record]) -> bool:
        """Apply a batch. True when it is durably applied (commit offsets); False when it
        kept failing transiently for `retry_max_seconds` (seek back and fetch again)."""
        await self._know_partitions()
        parsed: list[Parsed] = []
        overlap = len(records) >= 2 * OVERLAP_CHUNK
        one_by_one = False
        waits = backoff.delays(first=0.05, jitter=True)
        delay = next(waits)
        deadline = asyncio.get_running_loop().time() + self.retry_max_seconds
        while True:
            try:
                if one_by_one:
                    await self._apply_one_by_one(records)
                elif overlap:
                    overlap = False  # first attempt only: a retry takes the plain path
                    await self._apply_overlapped(records, parsed)
                else:
                    parsed.extend(self._parse(records[len(parsed) :]))
                    await self._apply(parsed)
                return True
            except _NewDay:
                continue  # a day partition is needed first: the plain path creates it
            except Exception as error:
                if not is_transient(error) and not one_by_one:
                    # Something in the batch breaks it for good (a value Postgres refuses,
                    # a handler bug): find it by applying the records one at a time.
                    log.exception(
                        "batch failed for good; applying its records one by one",
                        consumer=self.consumer.name,
                        records=len(records),
                    )
                    one_by_one = True
                    continue
                if not is_transient(error):
                    raise
                if asyncio.get_running_loop().time() + delay > deadline:
                    log.warning(
                        "batch still failing, handing it back",
                        consumer=self.consumer.name,
                        error=repr(error),
                    )
                    return False
                log.warning(
                    "transient failure, retrying batch",
                    consumer=self.consumer.name,
                    error=repr(error),
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay)
                delay = next(waits)

    async def _know_partitions(self) -> None:
        """Give every partition of the topic a clock row once (outside the batch's
        transaction: the rows hold no state), so an unread one holds the slowest clock."""
        count = self.partition_count
        if count is None or count <= self._clocked_partitions:
            return
        async with self.pool.acquire() as conn:
            await event_clock.know_partitions(conn, self.consumer.name, count)
        self._clocked_partitions = count

    async def _apply_one_by_one(self, records: Sequence[Record]) -> None:
        """Each record in its own transaction; one that fails for good is dead-lettered with
        the error as its reason, and the rest are applied. What an earlier attempt of the
        batch applied is in the inbox already, so nothing is applied twice. A transient
        failure is raised: the caller retries (or hands back) the batch."""
        for record in records:
            item = parse_record(record, self.consumer)
            try:
                await self._apply([(record, item)])
            except Exception as error:
                if is_transient(error):
                    raise
                rejected = Rejected(type(error).__name__, str(error) or repr(error))
                event = item.event if isinstance(item, Received) else None
                log.error(
                    "dead-lettered",
                    consumer=self.consumer.name,
                    event_id=event.id if event else None,
                    event_type=event.type if event else None,
                    key=item.key if isinstance(item, Received) else None,
                    reason=rejected.error_class,
                    detail=rejected.message,
                    partition=record.partition,
                    offset=record.offset,
                )
                async with self.pool.acquire() as conn, conn.transaction():
                    await outbox.append(
                        conn, self.consumer.service, [self._dead_row(record, rejected)]
                    )

    def _parse(self, records: Sequence[Record]) -> list[Parsed]:
        return [(record, parse_record(record, self.consumer)) for record in records]

    async def _apply(self, parsed: list[Parsed]) -> None:
        valid = [item for _, item in parsed if isinstance(item, Received)]
        if self.consumer.inbox == "daily":
            await self._ensure_day_partitions(valid)
        async with self.pool.acquire() as conn, conn.transaction():
            fresh, expired = await self._claim(conn, valid)
            await self._decide(conn, parsed, valid, fresh, expired)

    async def _apply_overlapped(self, records: Sequence[Record], parsed: list[Parsed]) -> None:
        """`_apply` for a large batch: it is parsed chunk by chunk inside the transaction, and
        each chunk's ids are claimed in the inbox while the next chunk is parsed, so Postgres
        and Python work at the same time. Parsed records accumulate in `parsed` for a retry.
        Raises `_NewDay` (rolling back) when a chunk needs a day partition not known yet:
        partitions are created before a transaction opens, never inside one."""
        valid: list[Received] = []
        fresh: list[Received] = []
        expired: list[Received] = []
        claiming: asyncio.Future[tuple[list[Received], list[Received]]] | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            daily = self.consumer.inbox == "daily"
            horizon = await self._retention_horizon(conn) if daily else None
            try:
                for start in range(0, len(records), OVERLAP_CHUNK):
                    chunk = self._parse(records[start : start + OVERLAP_CHUNK])
                    parsed.extend(chunk)
                    if claiming is not None:
                        claimed, too_old = await claiming
                        fresh += claimed
                        expired += too_old
                        claiming = None
                    chunk_valid = [item for _, item in chunk if isinstance(item, Received)]
                    if daily and self._missing_days(chunk_valid):
                        raise _NewDay
                    valid += chunk_valid
                    claiming = asyncio.ensure_future(self._claim(conn, chunk_valid, horizon))
                    await asyncio.sleep(0)  # let it send its query before parsing on
                if claiming is not None:
                    claimed, too_old = await claiming
                    fresh += claimed
                    expired += too_old
                    claiming = None
            finally:
                if claiming is not None and not claiming.done():
                    claiming.cancel()
                    with contextlib.suppress(BaseException):
                        await claiming
            await self._decide(conn, parsed, valid, fresh, expired)

    def _missing_days(self, valid: list[Received]) -> bool:
        days = {v.event.time.date() for v in valid}
        return any(partition_name(day) not in self._known_partitions for day in days)

    async def _decide(
        self,
        conn: asyncpg.Connection,
        parsed: list[Parsed],
        valid: list[Received],
        fresh: list[Received],
        expired: list[Received],
    ) -> None:
        """Everything after the inbox claim, in the batch's transaction: dead letters, the
        handler, the outbox, the clock."""
        consumer = self.consumer
        dead: list[outbox.OutboxRow] = []
        for record, item in parsed:
            if isinstance(item, Rejected):
                dead.append(self._dead_row(record, item))
                log.warning(
                    "dead-lettered",
                    consumer=consumer.name,
                    reason=item.error_class,
                    detail=item.message,
                    partition=record.partition,
                    offset=record.offset,
                )
        by_id: dict[int, Record] = {}

        def record_of(item: Received) -> Record:
            # Only a batch with a dead letter pays for the index.
            if not by_id:
                by_id.update((id(i), r) for r, i in parsed)
            return by_id[id(item)]

        for item in expired:
            dead.append(
                self._dead_row(
                    record_of(item),
                    Rejected(
                        "OutsideRetention",
                        f"event day {item.time.date()} is older than the "
                        f"{consumer.retention_days}-day deduplication window; it cannot be told "
                        "apart from a replay",
                    ),
                )
            )
        emits: list[Emit] = []
        if consumer.answer_invalid is not None:
            for _, item in parsed:
                if isinstance(item, Rejected) and item.event is not None:
                    cause = Cause(item.event.id, item.event.time, item.event.id)
                    emits.extend(
                        _with_cause(e, cause) for e in consumer.answer_invalid(item.event, item)
                    )
        clocks = await self._advance_clocks(conn, valid)
        if consumer.handle is not None:
            for item in fresh:
                emitted, rejected = await self._handle_one(conn, item)
                emits.extend(emitted)
                if rejected is not None:
                    dead.append(self._dead_row(record_of(item), rejected))
        elif fresh:
            assert consumer.handle_batch is not None
            result = await consumer.handle_batch(conn, fresh, clocks)
            emits.extend(result.emits)
            for item, rejected in result.rejected:
                log.warning(
                    "dead-lettered",
                    consumer=consumer.name,
                    event_id=item.id,
                    event_type=item.type,
                    key=item.key,
                    reason=rejected.error_class,
                    detail=rejected.message,
                )
                dead.append(self._dead_row(record_of(item), rejected))
        rows = outbox.emitted_rows(consumer.service, emits) + dead
        await outbox.append(conn, consumer.service, rows)

    async def _advance_clocks(
        self, conn: asyncpg.Connection, valid: list[Received]
    ) -> dict[int, datetime]:
        """Move the clock of each partition the batch read (every valid event counts, a
        repeat included: it was read there); returns those partitions' clocks."""
        return await event_clock.advance(
            conn, self.consumer.name, ((v.partition, v.event.time) for v in valid)
        )

    async def _handle_one(
        self, conn: asyncpg.Connection, item: Received
    ) -> tuple[list[Emit], Rejected | None]:
        assert self.consumer.handle is not None
        bound = structlog.contextvars.bound_contextvars(
            event_id=item.id, event_type=item.type, key=item.key
        )
        with bound:
            try:
                async with conn.transaction():  # a savepoint: a poison event undoes only itself
                    emitted = await self.consumer.handle(conn, item)
            except Unprocessable as error:
                log.warning("dead-lettered", consumer=self.consumer.name, reason=str(error))
                return [], Rejected("Unprocessable", str(error))
            except Exception as error:
                if is_transient(error):
                    raise
                log.exception(
                    "handler failed; dead-lettering the event", consumer=self.consumer.name
                )
                return [], Rejected(type(error).__name__, str(error) or repr(error))
            log.info("applied", consumer=self.consumer.name, emitted=[e.type for e in emitted])
        cause = Cause.of(item)
        return [e if e.cause is not None else _with_cause(e, cause) for e in emitted], None

    async def _claim(
        self,
        conn: asyncpg.Connection,
        valid: list[Received],
        horizon: date | Literal["unread"] | None = "unread",
    ) -> tuple[list[Received], list[Received]]:
        """Record the batch's ids in the inbox; return (not seen before, too old to judge).
        `horizon` is the daily inbox's retention horizon when already read in this
        transaction."""
        if not valid:
            return [], []
        if self.consumer.inbox == "keep":
            rows = await conn.fetch(SQL.claim, self.consumer.name, [v.id for v in valid])
            claimed = {row[0] for row in rows}
            fresh: list[Received] = []
            for item in valid:
                # The first occurrence in the batch wins; a duplicate inside it is dropped.
                if item.event.id in claimed:
                    claimed.discard(item.event.id)
                    fresh.append(item)
            return fresh, []

        if horizon == "unread":
            horizon = await self._retention_horizon(conn)
        judged: list[Received] = []
        expired: list[Received] = []
        ids: set[str] = set()
        days: list[str] = []
        iso: dict[date, str] = {}
        for item in valid:
            day = item.event.time.date()
            if horizon is not None and day < horizon:
                expired.append(item)
                continue
            if item.event.id in ids:
                continue  # the first occurrence in the batch wins
            ids.add(item.event.id)
            judged.append(item)
            text = iso.get(day)
            if text is None:
                text = iso[day] = day.isoformat()
            days.append(text)
        if not judged:
            return [], expired
        seen_before = set(
            await conn.fetchval(
                SQL.claim_daily,
                self.consumer.name,
                json.dumps(days),
                json.dumps([item.event.id for item in judged]),
            )
        )
        if not seen_before:
            return judged, expired
        return [item for n, item in enumerate(judged, 1) if n not in seen_before], expired

    async def _retention_horizon(self, conn: asyncpg.Connection) -> date | None:
        """Days before this are outside the deduplication window. On the slowest partition's
        clock, as inbox retention drops them: a partition read ahead of the others must not
        expire the days a slower one is still reading."""
        clock = await event_clock.load_subscription(conn, self.consumer.name)
        watermark = clock.slowest()
        if watermark is None:
            return None
        return watermark.date() - timedelta(days=self.consumer.retention_days)

    async def _ensure_day_partitions(self, valid: list[Received]) -> None:
        days = {v.time.date() for v in valid}
        missing = {d for d in days if partition_name(d) not in self._known_partitions}
        if not missing:
            return
        async with self.pool.acquire() as conn:
            self._known_partitions.update(r["name"] for r in await conn.fetch(SQL.daily_partitions))
            for day in sorted(
                d for d in missing if partition_name(d) not in self._known_partitions
            ):
                await create_day_partition(conn, day)
                self._known_partitions.add(partition_name(day))

    def _dead_row(self, record: Record, rejected: Rejected) -> outbox.OutboxRow:
        return outbox.dead_letter_row(
            topic=self.consumer.topic,  # the contract name: the relay adds any topic prefix
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
            consumer=self.consumer.name,
            error_class=rejected.error_class,
            message=rejected.message,
            partition=record.partition,
            offset=record.offset,
        )


def _with_cause(emit: Emit, cause: Cause) -> Emit:
    return Emit(
        topic=emit.topic,
        key=emit.key,
        type=emit.type,
        data=emit.data,
        subject=emit.subject,
        discriminator=emit.discriminator,
        cause=cause,
    )


def partition_name(day: date) -> str:
    return f"inbox_daily_{day:%Y%m%d}"


async def create_day_partition(conn: asyncpg.Connection, day: date) -> None:
    """Create the inbox partition of one UTC day; harmless when it exists."""
    nxt = day + timedelta(days=1)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF inbox_daily "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')"
        )
    except asyncpg.DuplicateTableError:
        pass  # another replica created it between our check and our CREATE


async def drop_expired_day_partitions(conn: asyncpg.Connection, before: date) -> list[str]:
    """Drop whole inbox partitions of days before `before`: retention in bulk, not by row."""
    dropped = []
    for row in await conn.fetch(SQL.daily_partitions):
        name: str = row["name"]
        day = datetime.strptime(name.removeprefix("inbox_daily_"), "%Y%m%d").date()
        if day < before:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    return dropped
