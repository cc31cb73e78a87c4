"""Decoding one Kafka record into a typed input event, or the reason it is dead-lettered.

The first step of every consumer: a record becomes `Received` (valid, with its typed
`data`), `Rejected` (the dead letter's class and message), or None (a type another service
applies on the same topic, skipped).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from shared.contract.envelope import CloudEvent
from shared.messages import Received, Rejected

if TYPE_CHECKING:
    from shared.consumer import Consumer


class Record(Protocol):
    """The parts of an aiokafka ConsumerRecord the pipeline reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


# A record and what it parsed to.
Parsed = tuple[Record, Received | Rejected | None]


def parse_record(record: Record, consumer: Consumer) -> Received | Rejected | None:
    """Decode and validate one record. None means: a type for another service, skip it.

    Fast paths first: whatever they refuse takes the full path, which classifies it (dead
    letter and reason, or another service's type) exactly as it always did. A consumer of one
    type validates envelope and data from the bytes in one call; its `Received.event` is then
    that type's envelope (a CloudEvent whose `data` is the typed model, as `Received.data`).
    Before that, its `fast_decode` (if any) may take the common shape, decoding the same
    values more cheaply into an event of its own (see `shared.messages.Envelope`).
    """
    value = record.value or b""
    decode = consumer.fast_decode
    if decode is not None:
        decoded = decode(value)
        if decoded is not None:
            key = record.key.decode("utf-8", "replace") if record.key is not None else None
            return Received(decoded, decoded.data, record.topic, key, record.partition)
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
