"""Reading and redriving dead letters (`ipfleet dlq list` / `ipfleet dlq redrive`).

A dead letter is the input message unchanged (value, key, headers) on `<topic>.dlq`, with
`error.*` headers naming why (shared/outbox.py). Redriving re-publishes the original bytes,
key and headers (minus `error.*`) to the source topic, where the consumers take it as any
input: what is still invalid is dead-lettered again, as a new dead letter.

No dead letter is re-published twice. Each is claimed in Postgres (`dead_letter_redrives`,
by DLQ topic, partition and offset), in the database and schema of the service whose consumer
dead-lettered it (its `error.consumer` header), before it is sent, and the claim is confirmed
once the broker acknowledged it. A run interrupted between the two leaves claims unconfirmed: they
are reported and not re-sent, unless the operator asks (`--retry-unconfirmed`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from shared import database
from shared.contract.topics import dead_letter
from shared.daily_inbox import event_key
from shared.kafka import client_options
from shared.settings import Settings
from shared.sql import load_statements

SQL = load_statements("shared", "dead_letters.sql")

# Error classes given while parsing, before the inbox claims an id: nothing to forget.
PARSE_ERRORS = frozenset(
    {"InvalidJson", "NotACloudEvent", "UnknownEventType", "ValidationFailed", "OutsideRetention"}
)
# How long a read waits for more once every partition's end offset is reached (the embedded
# broker's end offset can read one low).
DRAIN_MS = 300


@dataclass(frozen=True)
class DeadLetter:
    topic: str  # the source topic, contract name (no prefix)
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def error_class(self) -> str:
        return self.header("error.class") or "?"

    @property
    def error_message(self) -> str:
        return self.header("error.message") or ""

    @property
    def consumer(self) -> str:
        """`service/topic` of the consumer that dead-lettered it."""
        return self.header("error.consumer") or "?"

    @property
    def service(self) -> str:
        """The service that dead-lettered it: its schema holds the inbox and the claim."""
        return self.consumer.partition("/")[0]

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith("error.")]

    def event(self) -> tuple[str | None, str | None, datetime | None]:
        """(id, type, time) of the CloudEvent inside, as far as it parses."""
        try:
            payload = json.loads(self.value)
        except ValueError:
            return None, None, None
        if not isinstance(payload, dict):
            return None, None, None
        when: datetime | None = None
        try:
            when = datetime.fromisoformat(str(payload.get("time")).replace("Z", "+00:00"))
        except ValueError:
            pass
        event_id, event_type = payload.get("id"), payload.get("type")
        return (
            event_id if isinstance(event_id, str) else None,
            event_type if isinstance(event_type, str) else None,
            when,
        )


def source_topic(topic: str) -> str:
    """Accept the input topic or its DLQ: `ip.requested` and `ip.requested.dlq` both name
    ip.requested's dead letters."""
    return topic.removesuffix(".dlq")


async def read(
    settings: Settings,
    bootstrap: str,
    topic: str,
    *,
    since: datetime | None = None,
    reason: str | None = None,
    timeout: float = 60.0,
) -> AsyncIterator[DeadLetter]:
    """The dead letters of `topic` (oldest first per partition) from `since`, optionally of
    one error class, up to what the DLQ held when the read began. Reads without a group."""
    source = source_topic(topic)
    wire = settings.kafka_topic_prefix + dead_letter(source)
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    began_ms = int(time.time() * 1000)
    await consumer.start()
    try:
        found = consumer.partitions_for_topic(wire)
        if not found:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(wire)
        if not found:
            return  # no dead letter was ever written for this topic
        partitions = [TopicPartition(wire, p) for p in sorted(found)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        if since is not None:
            at = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            for tp in partitions:
                hit = at.get(tp)
                starts[tp] = ends[tp] if hit is None or hit.timestamp < 0 else hit.offset
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        open_ = {tp for tp in partitions if starts[tp] < ends[tp]}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        drained = False
        while not drained and loop.time() < deadline:
            if not open_:
                drained = True  # one last short read: an end offset can read one low
            batches = await consumer.getmany(
                *partitions, timeout_ms=DRAIN_MS if drained else 500, max_records=1000
            )
            for tp, records in batches.items():
                for r in records:
                    if r.offset < starts[tp]:
                        continue
                    if r.offset >= ends[tp] and r.timestamp >= began_ms:
                        # Appended since the read began (a redriven message dead-lettered
                        # again): not this run's. Past the end but older is the record an
                        # end offset reading one low hid.
                        continue
                    letter = DeadLetter(
                        topic=source,
                        partition=r.partition,
                        offset=r.offset,
                        timestamp=datetime.fromtimestamp(r.timestamp / 1000, UTC),
                        key=r.key,
                        value=r.value or b"",
                        headers=tuple(r.headers or ()),
                    )
                    if since is not None and letter.timestamp < since:
                        continue
                    if reason is None or letter.error_class == reason:
                        yield letter
                if await consumer.position(tp) >= ends[tp]:
                    open_.discard(tp)
    finally:
        await consumer.stop()


@dataclass
class RedriveReport:
    matched: int = 0
    sent: int = 0
    already_sent: int = 0
    unconfirmed: int = 0  # claimed by an interrupted run: not re-sent
    would_send: int = 0  # --dry-run
    unowned: int = 0  # dead-lettered by no service given a database: not sent


class _Schemas:
    """A connection per service, to its database and schema, opened when first needed."""

    def __init__(self, databases: Mapping[str, str]) -> None:
        self.databases = databases
        self.open: dict[str, asyncpg.Connection] = {}

    async def of(self, service: str) -> asyncpg.Connection:
        if service not in self.open:
            self.open[service] = await database.connect(self.databases[service], service)
        return self.open[service]

    async def close(self) -> None:
        for conn in self.open.values():
            await conn.close()


async def redrive(
    settings: Settings,
    bootstrap: str,
    databases: Mapping[str, str],
    topic: str,
    *,
    since: datetime | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    retry_unconfirmed: bool = False,
    batch_size: int = 200,
    progress: Callable[[str], None] = print,
) -> RedriveReport:
    """Re-publish the matching dead letters of `topic` to it; see the module docstring.
    `databases`: the DSN of each service whose dead letters may be redriven (by service
    name, which is also its schema); a dead letter of another service is not sent."""
    source = source_topic(topic)
    dlq = dead_letter(source)
    report = RedriveReport()
    schemas = _Schemas(databases)
    producer: AIOKafkaProducer | None = None
    try:
        unconfirmed: set[tuple[int, int]] = set()
        for service in databases:
            conn = await schemas.of(service)
            unconfirmed |= _positions(await conn.fetch(SQL.unconfirmed, dlq))
        if unconfirmed and not retry_unconfirmed:
            progress(
                f"{len(unconfirmed)} dead letter(s) were claimed by an interrupted run and may "
                "or may not have been sent: they are not sent again (--retry-unconfirmed to "
                "send them)"
            )
        if not dry_run:
            producer = AIOKafkaProducer(
                **client_options(settings, bootstrap),
                client_id="ipfleet-dlq-redrive",
                acks="all",
                enable_idempotence=False,
                linger_ms=5,
            )
            await producer.start()
        batch: list[DeadLetter] = []
        async for letter in read(settings, bootstrap, source, since=since, reason=reason):
            report.matched += 1
            if letter.service not in databases:
                report.unowned += 1
                continue
            if (letter.partition, letter.offset) in unconfirmed:
                if not retry_unconfirmed:
                    report.unconfirmed += 1
                    continue
                if not dry_run:
                    conn = await schemas.of(letter.service)
                    await conn.execute(SQL.release, dlq, [letter.partition], [letter.offset])
            batch.append(letter)
            if len(batch) >= batch_size:
                await _send(schemas, producer, settings, dlq, batch, report)
                batch = []
                progress(f"  {report.matched} read, {report.sent} sent")
        if batch:
            await _send(schemas, producer, settings, dlq, batch, report)
        if report.unowned:
            progress(
                f"{report.unowned} dead letter(s) of a consumer of no service given are not "
                f"sent (services: {', '.join(databases)})"
            )
        if dry_run:
            progress(
                f"dry run: {report.would_send} of {report.matched} dead letter(s) would be "
                f"sent to {source} ({report.already_sent} already redriven)"
            )
        else:
            progress(
                f"redrove {report.sent} of {report.matched} dead letter(s) to {source} "
                f"({report.already_sent} already redriven, {report.unconfirmed} unconfirmed)"
            )
        return report
    finally:
        if producer is not None:
            await producer.stop()
        await schemas.close()


async def _send(
    schemas: _Schemas,
    producer: AIOKafkaProducer | None,
    settings: Settings,
    dlq: str,
    batch: Sequence[DeadLetter],
    report: RedriveReport,
) -> None:
    """Each service's letters of the batch, claimed and confirmed in its own schema."""
    by_service: dict[str, list[DeadLetter]] = {}
    for letter in batch:
        by_service.setdefault(letter.service, []).append(letter)
    for service, letters in by_service.items():
        await _send_own(await schemas.of(service), producer, settings, dlq, letters, report)


async def _send_own(
    conn: asyncpg.Connection,
    producer: AIOKafkaProducer | None,
    settings: Settings,
    dlq: str,
    batch: Sequence[DeadLetter],
    report: RedriveReport,
) -> None:
    partitions = [d.partition for d in batch]
    offsets = [d.offset for d in batch]
    if producer is None:  # dry run: claim nothing, say what a run would send
        claimed_before = _positions(await conn.fetch(SQL.claimed, dlq, partitions, offsets))
        fresh = [d for d in batch if (d.partition, d.offset) not in claimed_before]
        report.would_send += len(fresh)
        report.already_sent += len(batch) - len(fresh)
        return
    claimed = _positions(await conn.fetch(SQL.claim, dlq, partitions, offsets))
    mine = [d for d in batch if (d.partition, d.offset) in claimed]
    report.already_sent += len(batch) - len(mine)
    if not mine:
        return
    for letter in mine:
        await forget_refusal(conn, letter)
    pending = [
        await producer.send(
            settings.kafka_topic_prefix + letter.topic,
            value=letter.value,
            key=letter.key,
            headers=letter.original_headers,
        )
        for letter in mine
    ]
    await asyncio.gather(*pending)
    await conn.execute(SQL.confirm, dlq, [d.partition for d in mine], [d.offset for d in mine])
    report.sent += len(mine)


def _positions(rows: Sequence[asyncpg.Record]) -> set[tuple[int, int]]:
    return {(row["partition"], row["offset"]) for row in rows}


async def forget_refusal(conn: asyncpg.Connection, letter: DeadLetter) -> None:
    """A handler's refusal left the event's id in the consumer's inbox (claimed in the same
    transaction as the dead letter): forget it so that the redriven message is applied, not
    skipped as a duplicate. A parse error never reached the inbox: nothing to forget."""
    if letter.error_class in PARSE_ERRORS:
        return
    event_id, _, when = letter.event()
    if event_id is None:
        return
    await conn.execute(SQL.forget_inbox, letter.consumer, event_id)
    if when is not None:
        await conn.execute(
            SQL.forget_inbox_daily, when.date(), event_key(letter.consumer, event_id)
        )


async def print_list(
    settings: Settings,
    bootstrap: str,
    topic: str,
    *,
    since: datetime | None,
    reason: str | None,
    as_json: bool,
    echo: Callable[[str], None] = print,
) -> int:
    """`ipfleet dlq list`: one line (or JSON object) per dead letter; returns how many."""
    n = 0
    if not as_json:
        echo(f"{'TIME':<20} {'PART:OFFSET':<12} {'CONSUMER':<28} {'CLASS':<18} {'TYPE':<22} KEY")
    async for d in read(settings, bootstrap, topic, since=since, reason=reason):
        n += 1
        event_id, event_type, _ = d.event()
        key = d.key.decode("utf-8", "replace") if d.key is not None else ""
        if as_json:
            echo(
                json.dumps(
                    {
                        "topic": d.topic,
                        "partition": d.partition,
                        "offset": d.offset,
                        "timestamp": d.timestamp.isoformat(),
                        "key": key,
                        "event_id": event_id,
                        "event_type": event_type,
                        "consumer": d.consumer,
                        "error_class": d.error_class,
                        "error_message": d.error_message,
                    }
                )
            )
        else:
            echo(
                f"{d.timestamp:%Y-%m-%dT%H:%M:%SZ} {f'{d.partition}:{d.offset}':<12} "
                f"{d.consumer:<28} {d.error_class:<18} {(event_type or '-')[:22]:<22} {key}"
            )
            echo(f"    {d.error_message[:160]}")
    if not as_json:
        echo(f"{n} dead letter(s)")
    return n
