"""A small Kafka client for the people and tools around ipfleet: publish CloudEvents to
its input topics and follow what it emits. Used by `ipfleet dev --demo`, the benchmark and
the tests; the services themselves never use it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from shared.kafka import client_options
from shared.settings import Settings


def cloud_event(
    event_type: str,
    data: dict[str, Any],
    *,
    time: datetime | None = None,
    event_id: str | None = None,
    source: str = "ipfleet-client",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "subject": data.get("account_id"),
        "datacontenttype": "application/json",
        "data": data,
    }


@dataclass(frozen=True)
class Seen:
    """A message read from a topic."""

    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str]
    offset: int
    partition: int
    timestamp_ms: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.value)


class Publisher:
    def __init__(self, settings: Settings, bootstrap: str, topic_prefix: str = "") -> None:
        self._producer = AIOKafkaProducer(
            **client_options(settings, bootstrap),
            enable_idempotence=False,
            linger_ms=5,
            max_batch_size=512 * 1024,
        )
        self._prefix = topic_prefix

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(self, topic: str, event: dict[str, Any] | bytes, key: str | None) -> None:
        """Publish one message and wait for the broker's acknowledgement."""
        await (await self.send_soon(topic, event, key))

    async def send_soon(
        self, topic: str, event: dict[str, Any] | bytes, key: str | None
    ) -> asyncio.Future[Any]:
        """Queue one message; returns the future of its acknowledgement (for batching)."""
        value = event if isinstance(event, bytes) else json.dumps(event).encode()
        return await self._producer.send(
            self._prefix + topic, value=value, key=key.encode() if key is not None else None
        )

    async def flush(self) -> None:
        await self._producer.flush()


class Follower:
    """Reads topics from their beginning (no consumer group), collecting what arrives."""

    def __init__(
        self, settings: Settings, bootstrap: str, topics: Iterable[str], topic_prefix: str = ""
    ) -> None:
        self._topics = [topic_prefix + t for t in topics]
        self._prefix = topic_prefix
        self._consumer = AIOKafkaConsumer(
            **client_options(settings, bootstrap),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        self.seen: list[Seen] = []

    async def __aenter__(self) -> Follower:
        await self._consumer.start()
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            for _ in range(100):  # a topic may not exist until the service creates it
                found = self._consumer.partitions_for_topic(topic)
                if found:
                    break
                await self._consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError(f"topic {topic} did not appear")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> list[Seen]:
        fresh: list[Seen] = []
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        for records in batches.values():
            for r in records:
                fresh.append(
                    Seen(
                        topic=r.topic.removeprefix(self._prefix),
                        key=r.key.decode() if r.key is not None else None,
                        value=r.value or b"",
                        headers={k: v.decode("utf-8", "replace") for k, v in r.headers},
                        offset=r.offset,
                        partition=r.partition,
                        timestamp_ms=r.timestamp,
                    )
                )
        self.seen.extend(fresh)
        return fresh

    async def wait_for(
        self,
        predicate: Callable[[Seen], bool],
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[Seen]:
        """Poll until `count` collected messages satisfy `predicate`; TimeoutError if not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matching = [s for s in self.seen if predicate(s)]
            if len(matching) >= count:
                return matching
            if loop.time() > deadline:
                raise TimeoutError(
                    f"saw {len(matching)} of {count} expected messages in {timeout}s "
                    f"({len(self.seen)} messages in all)"
                )
            await self.poll()

    def of_type(self, event_type: str, topic: str | None = None) -> list[dict[str, Any]]:
        out = []
        for s in self.seen:
            if topic is not None and s.topic != topic:
                continue
            if s.topic.endswith(".dlq"):
                continue
            event = s.event
            if event.get("type") == event_type:
                out.append(event)
        return out
