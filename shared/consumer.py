"""One service's subscription to one topic: which event types it applies, with which
handler, and how it deduplicates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol

import asyncpg

from shared.contract.envelope import CloudEvent, envelope_of
from shared.messages import BatchResult, Emit, Envelope, Received, Rejected

EventHandler = Callable[[asyncpg.Connection, Received], Awaitable[Sequence[Emit]]]
# A batch handler also receives the clock of each partition the batch read, after the batch:
# an entity is judged on its own partition's event time (shared.event_clock); and, keyword
# `digest`, its BatchDigest of the batch when the consumer declares one.
BatchHandler = Callable[..., Awaitable[BatchResult]]
InvalidAnswer = Callable[[CloudEvent, Rejected], Sequence[Emit]]


class BatchDigest(Protocol):
    """What a batch handler works out from a batch's new events without the database,
    taken part by part in the order read: for a large batch, each part as soon as the inbox
    has claimed it, while Postgres claims the next (shared.ingest). A consumer that declares
    one (`Consumer.digest`) receives it, complete, as its batch handler's `digest`."""

    def add(self, fresh: Sequence[Received]) -> None: ...


# A cheaper decoder of one type's common wire shape: the event with the values
# `Consumer.envelope` would validate it to (its attributes and its data's fields, each equal),
# or None to leave the record to the full path. It must never accept what the envelope rejects.
FastDecoder = Callable[[bytes], Envelope | None]


def by_type(handlers: Mapping[str, EventHandler]) -> EventHandler:
    """One handler for a topic that carries several types: dispatch on `type`."""

    async def dispatch(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
        return await handlers[event.type](conn, event)

    return dispatch


@dataclass(frozen=True)
class Consumer:
    """One service's subscription to one topic.

    `types` maps each event type this consumer applies to its data model. Types in
    `others` are known on the topic but belong to another service: skipped, not
    dead-lettered. Anything else is an unknown type and is dead-lettered.
    """

    service: str
    topic: str
    types: Mapping[str, type[Any]]
    handle: EventHandler | None = None
    handle_batch: BatchHandler | None = None
    others: Collection[str] = frozenset()
    # "keep": one inbox row per event, kept. "daily": partitioned by event day and
    # dropped after `retention_days` (for the high-volume streams).
    inbox: Literal["keep", "daily"] = "keep"
    retention_days: int = 7
    # Optional answer to the sender of an event whose envelope parsed but whose data did not
    # (it is dead-lettered all the same), e.g. `ip.request_rejected` with `invalid_request`.
    answer_invalid: InvalidAnswer | None = None
    # This subscription's own defaults for the fleet-wide batch and fetch settings (a
    # high-volume stream's tuning, beside it). None keeps the fleet-wide default; a fleet-wide
    # variable set explicitly wins over both (shared.runtime.subscription_options).
    batch_max_records: int | None = None
    batch_timeout_ms: int | None = None
    fetch_max_wait_ms: int | None = None
    max_partition_fetch_bytes: int | None = None
    # For a high-volume consumer of one type: its FastDecoder, tried before the envelope.
    fast_decode: FastDecoder | None = None
    # For a batch handler: a new BatchDigest for each attempt at a batch; the handler is
    # then called with `digest=` the batch's, every new event added.
    digest: Callable[[], BatchDigest] | None = None

    def __post_init__(self) -> None:
        if (self.handle is None) == (self.handle_batch is None):
            raise ValueError(
                f"{self.service}/{self.topic}: give exactly one of handle, handle_batch"
            )
        if self.digest is not None and self.handle_batch is None:
            raise ValueError(f"{self.service}/{self.topic}: a digest is for a batch handler")
        if self.fast_decode is not None and self.envelope is None:
            raise ValueError(f"{self.service}/{self.topic}: a fast decoder needs one typed type")

    @property
    def name(self) -> str:
        return f"{self.service}/{self.topic}"

    @cached_property
    def envelope(self) -> type[CloudEvent] | None:
        """For a consumer of one type: its CloudEvent with typed `data` (parse_record's fast
        path validates a record against it in one call); None otherwise."""
        if len(self.types) != 1:
            return None
        ((event_type, model),) = self.types.items()
        return envelope_of(event_type, model)  # type: ignore[arg-type]  # a class is hashable
