"""Liveness and readiness of an `ipfleet run` process (served by shared/operations.py).

Live: the event loop runs (a heartbeat on it is recent) and no pipeline has held one batch
past its retry budget (`IPFLEET_RETRY_MAX_SECONDS`, after which a batch must have been handed
back, plus `IPFLEET_LIVENESS_BATCH_GRACE_SECONDS`). A failing liveness probe restarts the
process: only for what a restart cures.

Ready: every subscription has joined its consumer group, the database answers, and the
process is not stopping. Readiness gates nothing for a consumer (it serves no traffic) but
tells a rollout when a replica is really working and an operator when it cannot.

The probes are read from the HTTP server's own thread, so that a blocked event loop is
reported (503) instead of leaving the probe unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from shared import database, tracing

HEARTBEAT_SECONDS = 0.2


class Subscription(ConsumerRebalanceListener):
    """One (service, topic) subscription as the probes and metrics see it: whether it has
    joined its group, the partitions it holds, and since when it holds a batch."""

    def __init__(self, service: str, topic: str) -> None:
        self.service = service
        self.topic = topic
        self.joined = False
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.batch_since: float | None = None  # time.monotonic() when the batch in hand came
        self.subscriber: Any = None  # FastStream's subscriber: `.consumer` is aiokafka's
        self._span: Any = None

    @property
    def name(self) -> str:
        return f"{self.service}/{self.topic}"

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.assigned = self.assigned - set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Called after every join, also with no partition (more replicas than partitions):
        # a member without partitions has joined all the same.
        self.assigned = frozenset(assigned)
        self.joined = True

    def batch_started(self, records: int = 0) -> None:
        self.batch_since = time.monotonic()
        tracer = tracing.active()
        if tracer is not None:  # the batch's span, current while the pipeline runs
            group = f"ipfleet.{self.service}.{self.topic}"  # as runtime.group_id names it
            self._span = tracer.batch_started(self.service, self.topic, group, records)

    def batch_finished(self, applied: bool | None = None) -> None:
        self.batch_since = None
        span, self._span = self._span, None
        tracer = tracing.active()
        if span is not None and tracer is not None:
            tracer.batch_finished(span, applied)

    async def lag(self) -> list[tuple[str, str, int, int]]:
        """(service, topic, partition, lag) for each partition held. Runs on the service's
        event loop (the consumer's). The end offset of some brokers (the embedded one) reads
        one low: lag is never shown below 0."""
        consumer = getattr(self.subscriber, "consumer", None)
        held = sorted(self.assigned, key=lambda tp: (tp.topic, tp.partition))
        if consumer is None or not held:
            return []
        ends = await consumer.end_offsets(held)
        missing = []
        committed: dict[TopicPartition, int] = {}
        for tp in held:
            offset = await consumer.committed(tp)
            if offset is None:
                missing.append(tp)
            else:
                committed[tp] = offset
        if missing:  # nothing committed yet: the group starts from the earliest offset
            committed |= await consumer.beginning_offsets(missing)
        return [
            (self.service, self.topic, tp.partition, max(ends[tp] - committed[tp], 0))
            for tp in held
        ]


class Heartbeat:
    """A task on the service's event loop noting the time at each turn. Its age, read from
    another thread, is how long the loop has not run."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="health:heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def age(self) -> float:
        return time.monotonic() - self.last

    async def _beat(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)


class DatabaseCheck:
    """A connection of its own (on the HTTP thread's loop) to one service's database and
    schema, so that the answer does not depend on the service's pool being free. Reconnects
    after a failure; answers are kept a second."""

    def __init__(self, dsn: str, schema: str, timeout: float = 2.0) -> None:
        self._dsn = dsn
        self.schema = schema
        self._timeout = timeout
        self.conn: asyncpg.Connection | None = None
        self._answer: tuple[float, bool, str] | None = None
        self._lock: asyncio.Lock | None = None

    async def answers(self) -> tuple[bool, str]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._answer is not None and time.monotonic() - self._answer[0] < 1.0:
                return self._answer[1], self._answer[2]
            ok, detail = await self._ask()
            self._answer = (time.monotonic(), ok, detail)
            return ok, detail

    async def connection(self) -> asyncpg.Connection | None:
        """The connection when the database answers, for the gauges read on scrape."""
        ok, _ = await self.answers()
        return self.conn if ok else None

    async def _connected(self) -> asyncpg.Connection:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncio.wait_for(
                database.connect(self._dsn, self.schema), self._timeout
            )
        return self.conn

    async def _ask(self) -> tuple[bool, str]:
        try:
            conn = await self._connected()
            # The schema is there (migrated): its outbox is what every service writes.
            found = await conn.fetchval(
                "SELECT to_regclass('outbox') IS NOT NULL", timeout=self._timeout
            )
            return (True, "ok") if found else (False, f"schema {self.schema} is not migrated")
        except Exception as error:  # any failure is an answer: not reachable
            await self.close()
            return False, f"{type(error).__name__}: {error}"[:300]

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)


@dataclass
class Probes:
    subscriptions: Sequence[Subscription]
    heartbeat: Heartbeat
    databases: Mapping[str, DatabaseCheck]  # by service
    loop_stall_seconds: float
    batch_budget_seconds: float
    stopping: bool = False
    _started: float = field(default_factory=time.monotonic)

    def live(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        stalled = self.heartbeat.age
        checks["event_loop"] = (
            "ok"
            if stalled <= self.loop_stall_seconds
            else f"blocked for {stalled:.1f}s (limit {self.loop_stall_seconds:g}s)"
        )
        now = time.monotonic()
        for sub in self.subscriptions:
            since = sub.batch_since
            held = now - since if since is not None else 0.0
            if held > self.batch_budget_seconds:
                checks[sub.name] = (
                    f"one batch in hand for {held:.1f}s (budget {self.batch_budget_seconds:g}s)"
                )
        return all(v == "ok" for v in checks.values()), checks

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        if self.stopping:
            checks["process"] = "stopping"
        for sub in self.subscriptions:
            checks[sub.name] = "joined" if sub.joined else "not joined its group yet"
        answers = [(name, *await check.answers()) for name, check in self.databases.items()]
        failing = [f"{name}: {detail}" for name, ok, detail in answers if not ok]
        # "ok" when every service's database and schema answer; else which do not, and why.
        checks["database"] = "; ".join(failing) or "ok"
        healthy = not self.stopping and all(s.joined for s in self.subscriptions) and not failing
        return healthy, checks
