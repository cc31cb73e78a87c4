"""The batch message the subscriber hands the pipeline: FastStream's own message class,
parsed from the first record only, carrying every record of the batch."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.kafka.message import KafkaAckableMessage
from faststream.kafka.parser import AioKafkaBatchParser

from shared.runtime import _batch_of_records


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="send.recorded",
        partition=partition,
        offset=offset,
        timestamp=1_700_000_000_000 + offset,
        timestamp_type=0,
        key=b"k",
        value=b'{"id": "x"}',
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=11,
        headers=[("traceparent", b"00-abc-def-01")],
    )


async def test_the_batch_message_carries_every_record_and_is_parsed_from_one() -> None:
    parser = AioKafkaBatchParser(msg_class=KafkaAckableMessage, regex=None)
    asked: list[int] = []

    async def parse(records: tuple[Any, ...]) -> Any:
        asked.append(len(records))
        return await parser.parse_batch(records)

    records = (record(0, 5), record(2, 9), record(0, 6))
    message = await _batch_of_records(records, parse)
    full = await parser.parse_batch(records)

    assert asked == [1]
    assert isinstance(message, KafkaAckableMessage)
    assert message.raw_message is records
    assert message.message_id == full.message_id == "5-6-1700000000005"
    assert message.headers == full.headers  # the first record's, as FastStream takes them


async def test_a_batch_of_one_is_faststreams_own_message() -> None:
    parser = AioKafkaBatchParser(msg_class=KafkaAckableMessage, regex=None)
    records = (record(1, 3),)
    message = await _batch_of_records(records, parser.parse_batch)
    full = await parser.parse_batch(records)
    assert (message.raw_message, message.message_id, message.body) == (
        full.raw_message,
        full.message_id,
        full.body,
    )
