"""Writing to the transactional outbox: emitted events and dead letters, in the same
transaction as the state change that caused them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

import asyncpg
from pydantic import BaseModel

from shared import tracing
from shared.contract.envelope import build_event, derive_event_id
from shared.contract.topics import dead_letter
from shared.messages import Emit
from shared.sql import load_statements

SQL = load_statements("shared", "outbox.sql")


class OutboxRow(NamedTuple):
    topic: str
    key: str | None
    value: bytes
    headers: str  # JSON list of [name, value] pairs


def event_row(emit_topic: str, key: str, value: bytes) -> OutboxRow:
    headers = json.dumps([["content-type", "application/cloudevents+json"]])
    return OutboxRow(emit_topic, key, value, headers)


def emitted_rows(service: str, emits: Sequence[Emit]) -> list[OutboxRow]:
    """Turn `Emit`s into outbox rows, with ids derived from their cause."""
    rows: list[OutboxRow] = []
    # The applying batch's span, when tracing is on: the CloudEvents tracing extension.
    trace_parent = tracing.traceparent()
    for emit in emits:
        if emit.cause is None:
            raise ValueError(f"{emit.type} has no cause: its id could not be derived")
        data = emit.data.model_dump(mode="json") if isinstance(emit.data, BaseModel) else emit.data
        event = build_event(
            event_id=derive_event_id(emit.cause.id, emit.type, emit.discriminator),
            source=f"ipfleet/{service}",
            event_type=emit.type,
            time=emit.cause.time,
            subject=emit.key,
            data=data,
            causation_id=emit.cause.causation_id,
        )
        if trace_parent is not None:
            event = event.model_copy(update={"traceparent": trace_parent})
        rows.append(event_row(emit.topic, emit.key, event.to_json_bytes()))
    return rows


def dead_letter_row(
    *,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    consumer: str,
    error_class: str,
    message: str,
    partition: int,
    offset: int,
) -> OutboxRow:
    """The input message unchanged, with headers naming the error. The value is kept byte
    for byte; the key and header values are text to Postgres, so bytes it cannot store (bad
    UTF-8, NUL) become U+FFFD rather than failing the dead letter itself."""
    kept = [[_storable(name), _storable(raw.decode("utf-8", "replace"))] for name, raw in headers]
    kept += [
        ["error.class", error_class],
        ["error.message", _storable(message[:2000])],
        ["error.consumer", consumer],
        ["error.topic", topic],
        ["error.partition", str(partition)],
        ["error.offset", str(offset)],
    ]
    return OutboxRow(
        dead_letter(topic),
        _storable(key.decode("utf-8", "replace")) if key is not None else None,
        value or b"",
        json.dumps(kept),
    )


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


async def append(conn: asyncpg.Connection, relay: str, rows: Sequence[OutboxRow]) -> None:
    if not rows:
        return
    topics, keys, values, headers = zip(*rows, strict=True)
    await conn.execute(SQL.append, relay, list(topics), list(keys), list(values), list(headers))
