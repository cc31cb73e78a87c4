"""The consumer pipeline every service stands on: the general per-event path.

For each batch of Kafka records: parse (shared.parsing) → deduplicate (inbox) → handle →
write state, emitted events and dead letters (outbox) in ONE Postgres transaction → only
then commit the Kafka offsets. A transient failure retries the whole batch with backoff and
is never skipped; a batch broken for good is applied record by record, the broken one
dead-lettered with its reason. The high-volume stream's tuning lives beside this path, not
inside it: its day-partitioned inbox (shared.daily_inbox) and its overlapped parse and claim
(shared.ingest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

import asyncpg
import structlog

from shared import backoff, event_clock, ingest, outbox
from shared.consumer import BatchDigest, Consumer
from shared.daily_inbox import DailyInbox
from shared.messages import Cause, Emit, Received, Rejected, Unprocessable
from shared.parsing import Parsed, Record, parse_record
from shared.sql import load_statements

log = structlog.get_logger(__name__)
SQL = load_statements("shared", "inbox.sql")


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


class BatchObserver(Protocol):
    """Told what each batch did (metrics, tracing), once per call site and never per event:
    `attempt` as each attempt of a batch starts (what an earlier attempt reported is void),
    `applied` and `dead_lettered` inside the attempt, `done` once the batch is committed."""

    def attempt(self) -> None: ...

    def applied(
        self, valid: Sequence[Received], fresh: Sequence[Received], expired: Sequence[Received]
    ) -> None: ...

    def dead_lettered(self, record: Record, rejected: Rejected) -> None: ...

    def done(self, records: int, seconds: float) -> None: ...


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
    # The day-partitioned inbox of a high-volume stream; None for the kept inbox.
    daily: DailyInbox | None = None
    observer: BatchObserver | None = None
    _clocked_partitions: int = 0

    def __post_init__(self) -> None:
        if self.consumer.inbox == "daily" and self.daily is None:
            self.daily = DailyInbox(self.consumer.name, self.consumer.retention_days)

    async def process(self, records: Sequence[Record]) -> bool:
        """Apply a batch. True when it is durably applied (commit offsets); False when it
        kept failing transiently for `retry_max_seconds` (seek back and fetch again)."""
        await self.know_partitions()
        parsed: list[Parsed] = []
        overlap = ingest.worth_it(records)
        one_by_one = False
        waits = backoff.delays(first=0.05, jitter=True)
        delay = next(waits)
        started = asyncio.get_running_loop().time()
        deadline = started + self.retry_max_seconds
        while True:
            if self.observer is not None:
                self.observer.attempt()
            try:
                if one_by_one:
                    await self._apply_one_by_one(records)
                elif overlap:
                    overlap = False  # first attempt only: a retry takes the plain path
                    with ingest.collector_paused():
                        await self._apply_in_chunks(records, parsed)
                        # Freed while the collector still waits, or its first pass after
                        # the pause would scan the whole batch once more.
                        parsed.clear()
                else:
                    parsed.extend(self.parse(records[len(parsed) :]))
                    await self._apply(parsed)
                if self.observer is not None:
                    self.observer.done(len(records), asyncio.get_running_loop().time() - started)
                return True
            except ingest.NewDay:
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

    async def know_partitions(self) -> None:
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

    def parse(self, records: Sequence[Record]) -> list[Parsed]:
        return [(record, parse_record(record, self.consumer)) for record in records]

    async def _apply(self, parsed: list[Parsed]) -> None:
        """The five steps in one transaction: claim the ids, then `decide`."""
        valid = [item for _, item in parsed if isinstance(item, Received)]
        if self.daily is not None:
            await self.daily.ensure(self.pool, valid)
        async with self.pool.acquire() as conn, conn.transaction():
            fresh, expired = await self.claim(conn, valid)
            await self.decide(conn, parsed, valid, fresh, expired)

    async def _apply_in_chunks(self, records: Sequence[Record], parsed: list[Parsed]) -> None:
        """`_apply` for a large batch, overlapping parsing with the claim (shared.ingest)."""
        await ingest.apply_in_chunks(self, records, parsed)

    async def decide(
        self,
        conn: asyncpg.Connection,
        parsed: list[Parsed],
        valid: list[Received],
        fresh: list[Received],
        expired: list[Received],
        digest: BatchDigest | None = None,
    ) -> None:
        """Everything after the inbox claim, in the batch's transaction: dead letters, the
        partition clocks, the handler, the outbox. `digest`: the consumer's BatchDigest of
        `fresh` when it was built as the claim went (else it is built here)."""
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
            if consumer.digest is None:
                result = await consumer.handle_batch(conn, fresh, clocks)
            else:
                if digest is None:
                    digest = consumer.digest()
                    digest.add(fresh)
                result = await consumer.handle_batch(conn, fresh, clocks, digest=digest)
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
        if self.observer is not None:
            self.observer.applied(valid, fresh, expired)

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

    async def claim(
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
        if self.daily is not None:
            if horizon == "unread":
                horizon = await self.daily.horizon(conn)
            return await self.daily.claim(conn, valid, horizon)
        rows = await conn.fetch(SQL.claim, self.consumer.name, [v.id for v in valid])
        claimed = {row[0] for row in rows}
        fresh: list[Received] = []
        for item in valid:
            # The first occurrence in the batch wins; a duplicate inside it is dropped.
            if item.event.id in claimed:
                claimed.discard(item.event.id)
                fresh.append(item)
        return fresh, []

    def _dead_row(self, record: Record, rejected: Rejected) -> outbox.OutboxRow:
        if self.observer is not None:
            self.observer.dead_lettered(record, rejected)
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
