"""`ipfleet status`: one screen per service, read from Kafka and Postgres from the outside
(no service needs to run): members and lag of each subscription's group, the outbox backlog
and its oldest row, the event-time clocks (the furthest and the slowest partition clock, and
how far each trails the wall clock), and dead letters per topic in the last 24 h. Each
service is read in its own database and schema."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from shared import database, dead_letters
from shared.kafka import client_options
from shared.metrics import OUTBOX_SQL, event_time
from shared.runtime import Service, group_id
from shared.settings import Settings

DEAD_LETTER_WINDOW = timedelta(hours=24)


@dataclass
class SubscriptionStatus:
    topic: str
    group: str
    members: int | None  # None: the broker would not say
    lag: int
    partitions: dict[int, dict[str, int | None]] = field(default_factory=dict)


@dataclass
class ServiceStatus:
    service: str
    subscriptions: list[SubscriptionStatus]
    outbox_pending: int | None
    outbox_oldest_seconds: float | None
    # The furthest any partition clock has read (shared.event_clock's Clocks.latest).
    watermark: datetime | None
    watermark_behind_seconds: float | None
    dead_letters_24h: dict[str, int]
    dead_letter_reasons_24h: dict[str, dict[str, int]]
    # The slowest partition clock of the slowest subscription (shared.metrics.event_time).
    slowest_watermark: datetime | None = None
    slowest_behind_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("watermark", "slowest_watermark"):
            when = getattr(self, name)
            data[name] = when.isoformat() if when else None
        return data


def _behind(now: datetime, when: datetime | None) -> float | None:
    return round((now - when).total_seconds(), 1) if when is not None else None


async def gather(
    settings: Settings,
    bootstrap: str,
    databases: Mapping[str, str] | str,
    services: Sequence[Service],
) -> list[ServiceStatus]:
    """`databases`: one DSN for every service, or one per service (each in its schema)."""
    now = datetime.now(UTC)
    admin = AIOKafkaAdminClient(**client_options(settings, bootstrap), client_id="ipfleet-status")
    await admin.start()
    dead_by_topic: dict[str, list[dead_letters.DeadLetter]] = {}
    try:
        statuses = []
        for service in services:
            subscriptions = [
                await _subscription(settings, bootstrap, admin, service.name, c.topic)
                for c in service.consumers
            ]
            dsn = databases if isinstance(databases, str) else databases[service.name]
            conn = await database.connect(dsn, service.name)
            try:
                row = await conn.fetchrow(OUTBOX_SQL, service.name)
                furthest, slowest = await event_time(conn, service.name)
            finally:
                await conn.close()
            counts: dict[str, int] = {}
            reasons: dict[str, dict[str, int]] = {}
            for consumer in service.consumers:
                if consumer.topic not in dead_by_topic:
                    dead_by_topic[consumer.topic] = [
                        d
                        async for d in dead_letters.read(
                            settings, bootstrap, consumer.topic, since=now - DEAD_LETTER_WINDOW
                        )
                    ]
                mine = [d for d in dead_by_topic[consumer.topic] if d.consumer == consumer.name]
                counts[consumer.topic] = len(mine)
                if mine:
                    reasons[consumer.topic] = dict(Counter(d.error_class for d in mine))
            statuses.append(
                ServiceStatus(
                    service=service.name,
                    subscriptions=subscriptions,
                    outbox_pending=int(row["pending"]),
                    outbox_oldest_seconds=round(float(row["oldest"]), 1),
                    watermark=furthest,
                    watermark_behind_seconds=_behind(now, furthest),
                    dead_letters_24h=counts,
                    dead_letter_reasons_24h=reasons,
                    slowest_watermark=slowest,
                    slowest_behind_seconds=_behind(now, slowest),
                )
            )
        return statuses
    finally:
        await admin.close()


async def _subscription(
    settings: Settings, bootstrap: str, admin: AIOKafkaAdminClient, service: str, topic: str
) -> SubscriptionStatus:
    group = settings.kafka_topic_prefix + group_id(service, topic)
    wire = settings.kafka_topic_prefix + topic
    members: int | None = None
    with contextlib.suppress(Exception):  # an older broker may not describe groups
        [response] = await admin.describe_consumer_groups([group])
        for described in response.groups:
            members = len(described[5])
    consumer = AIOKafkaConsumer(**client_options(settings, bootstrap), group_id=group)
    await consumer.start()
    try:
        found = consumer.partitions_for_topic(wire)
        if not found:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(wire) or set()
        tps = [TopicPartition(wire, p) for p in sorted(found)]
        ends = await consumer.end_offsets(tps) if tps else {}
        begins = await consumer.beginning_offsets(tps) if tps else {}
        partitions: dict[int, dict[str, int | None]] = {}
        total = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            # The embedded broker's end offset can read one low: never below 0.
            lag = max(ends[tp] - (committed if committed is not None else begins[tp]), 0)
            total += lag
            partitions[tp.partition] = {"committed": committed, "end": ends[tp], "lag": lag}
        return SubscriptionStatus(topic, group, members, total, partitions)
    finally:
        await consumer.stop()


def render(statuses: Sequence[ServiceStatus]) -> str:
    lines: list[str] = []
    for s in statuses:
        lines.append(f"== {s.service} " + "=" * max(0, 60 - len(s.service)))
        lines.append(f"  {'SUBSCRIPTION':<28} {'MEMBERS':>7} {'LAG':>9}  PER PARTITION")
        for sub in s.subscriptions:
            members = "?" if sub.members is None else str(sub.members)
            per = " ".join(f"{p}:{v['lag']}" for p, v in sub.partitions.items())
            lines.append(f"  {sub.topic:<28} {members:>7} {sub.lag:>9}  {per}")
        oldest = f", oldest {s.outbox_oldest_seconds:g}s" if s.outbox_pending else ""
        lines.append(f"  outbox: {s.outbox_pending} pending{oldest}")
        if s.watermark is not None:
            lines.append(
                f"  event time: furthest {s.watermark:%Y-%m-%dT%H:%M:%SZ} "
                f"({_duration(s.watermark_behind_seconds or 0)} behind the wall clock)"
            )
            if s.slowest_watermark is not None:
                lines.append(
                    f"              slowest  {s.slowest_watermark:%Y-%m-%dT%H:%M:%SZ} "
                    f"({_duration(s.slowest_behind_seconds or 0)} behind the wall clock)"
                )
            else:
                lines.append("              slowest  not known: a partition is not read yet")
        else:
            lines.append("  event time: nothing applied yet")
        dead = {t: n for t, n in s.dead_letters_24h.items() if n}
        if dead:
            for topic, n in dead.items():
                why = ", ".join(
                    f"{r} {c}" for r, c in s.dead_letter_reasons_24h.get(topic, {}).items()
                )
                lines.append(f"  dead letters (24 h): {topic}: {n} ({why})")
        else:
            lines.append("  dead letters (24 h): none")
    return "\n".join(lines)


def render_json(statuses: Sequence[ServiceStatus]) -> str:
    return json.dumps([s.as_json() for s in statuses], indent=2)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


async def show(
    settings: Settings,
    bootstrap: str,
    databases: Mapping[str, str] | str,
    services: Sequence[Service],
    *,
    as_json: bool = False,
) -> str:
    """The status screen (or JSON) of `services`, for `ipfleet status`."""
    statuses = await gather(settings, bootstrap, databases, services)
    return render_json(statuses) if as_json else render(statuses)
