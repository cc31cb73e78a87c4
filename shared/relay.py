"""The outbox relay: publishes outbox rows with their keys, in order, then forgets them.

One relay per service leads at a time (a session advisory lock on its own connection);
other replicas stand by and take over when the leader's connection goes. Order per key holds
because the leader reads rows in commit order (`txid`, then `position`) and one producer
sends them in that order. Delivery is at least once: a crash between publishing and
forgetting re-publishes the same event ids, which consumers' inboxes absorb.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from shared import backoff, database, tracing
from shared.sql import load_statements

log = structlog.get_logger(__name__)
SQL = load_statements("shared", "outbox.sql")


class OutboxRelay:
    def __init__(
        self,
        *,
        relay: str,
        dsn: str,
        schema: str,
        producer_factory: Callable[[], AIOKafkaProducer],
        poll_seconds: float = 1.0,
        batch_size: int = 1000,
        topic_prefix: str = "",
        on_published: Callable[[int, float], None] | None = None,
    ) -> None:
        self._topic_prefix = topic_prefix
        # Told (rows, seconds from the first send to the last ack) per published batch.
        self._on_published = on_published
        self.relay = relay
        self._dsn = dsn
        self._schema = schema
        self._producer_factory = producer_factory
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.published = 0

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Lead (or wait to lead) and publish until stopped; reconnects on any failure."""
        producer = self._producer_factory()
        await producer.start()
        try:
            waits = backoff.delays()
            while not self._stopping.is_set():
                try:
                    await self._lead(producer)
                    waits = backoff.delays()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("outbox relay interrupted", relay=self.relay, error=repr(error))
                    await self._sleep(next(waits))
        finally:
            await producer.stop()

    async def _lead(self, producer: AIOKafkaProducer) -> None:
        conn: asyncpg.Connection = await database.connect(self._dsn, self._schema)
        try:
            while not await conn.fetchval(SQL.try_lead, self.relay):
                if self._stopping.is_set():
                    return
                await self._sleep(self._poll_seconds * 2)
            log.info("outbox relay leading", relay=self.relay)
            await conn.add_listener(f"ipfleet_outbox_{self._schema}", lambda *_: self._wake.set())
            while not self._stopping.is_set():
                self._wake.clear()
                sent = await self._publish_batch(conn, producer)
                if sent < self._batch_size:
                    await self._sleep(self._poll_seconds)
        finally:
            await conn.close(timeout=2)

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows = await conn.fetch(SQL.next_batch, self.relay, self._batch_size)
        if not rows:
            return 0
        started = asyncio.get_running_loop().time()
        started_ns = time.time_ns()
        pending = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
            pending.append(
                await producer.send(
                    self._topic_prefix + row["topic"],
                    value=bytes(row["value"]),
                    key=row["key"].encode() if row["key"] is not None else None,
                    headers=headers,
                )
            )
        await asyncio.gather(*pending)
        if self._on_published is not None:
            self._on_published(len(rows), asyncio.get_running_loop().time() - started)
        tracer = tracing.active()
        if tracer is not None:
            tracer.relayed(self.relay, rows, started_ns, self._topic_prefix)
        await conn.execute(SQL.forget, [row["position"] for row in rows])
        self.published += len(rows)
        return len(rows)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
