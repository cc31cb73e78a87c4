"""A batch the pipeline hands back (it kept failing transiently) is read again from its
earliest record on every partition it spans, over the real broker: the subscriber's batch
message carries every record of the batch, not only the one FastStream parsed it from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from shared.client import Publisher, cloud_event
from shared.consumer import Consumer
from shared.contract.events import SendRecorded
from shared.kafka import ensure_topics, make_broker
from shared.parsing import Record
from shared.pipeline import Pipeline
from shared.runtime import register
from shared.settings import Settings
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

MESSAGES = 90


class HandsBackTheFirstBatch(Pipeline):
    """Takes no database: records what it is given; the first batch is handed back."""

    def __init__(self, consumer: Consumer) -> None:
        super().__init__(consumer, pool=None)  # type: ignore[arg-type]
        self.batches: list[list[tuple[int, int]]] = []

    async def process(self, records: Sequence[Record]) -> bool:
        self.batches.append([(r.partition, r.offset) for r in records])
        return len(self.batches) > 1


async def test_a_batch_handed_back_is_read_again_from_every_partition_it_spans(
    kafka_server: Any, topic_prefix: str, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(IPFLEET_BATCH_MAX_RECORDS=1000, IPFLEET_BATCH_TIMEOUT_MS=500)
    bootstrap = kafka_server.bootstrap_servers
    await ensure_topics(settings, bootstrap, [topic_prefix + "send.recorded"], 3)
    async with Publisher(settings, bootstrap, topic_prefix) as publisher:
        for n in range(MESSAGES):
            event = cloud_event(
                "send.recorded",
                {
                    "account_id": "acct",
                    "ip": "192.0.2.1",
                    "domain": "example.com",
                    "outcome": "delivered",
                },
            )
            await publisher.send_soon("send.recorded", event, key=f"key-{n}")
        await publisher.flush()

    consumer = Consumer(
        service="handback",
        topic="send.recorded",
        types={"send.recorded": SendRecorded},
        handle_batch=lambda *_: None,
    )
    pipeline = HandsBackTheFirstBatch(consumer)
    broker = make_broker(settings, bootstrap, "handback-test")
    register(broker, consumer, pipeline, settings)
    await broker.start()
    try:

        async def all_applied() -> bool:
            applied = {r for batch in pipeline.batches[1:] for r in batch}
            return len(applied) >= MESSAGES

        await wait_until(all_applied, 60, "every message to be applied after the hand-back")
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()

    handed_back = pipeline.batches[0]
    partitions = {partition for partition, _ in handed_back}
    assert len(partitions) > 1, "the first batch should span several partitions"
    applied = {r for batch in pipeline.batches[1:] for r in batch}
    assert set(handed_back) <= applied
    assert len(applied) == MESSAGES
