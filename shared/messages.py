"""What handlers receive and what they hand back to the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

from shared.contract.envelope import CloudEvent


class Envelope(Protocol):
    """What the pipeline and handlers read of a valid event: a CloudEvent as pydantic
    validates it, or a consumer's cheaper decoding of its common shape (a `FastDecoder`'s,
    e.g. shared.contract.sends.SendEvent) with the same values."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def time(self) -> datetime: ...

    @property
    def data(self) -> Any: ...


class Received(NamedTuple):
    """One valid input event, with its typed `data`. A named tuple rather than a frozen
    dataclass: one is built per record on the hottest path, and a tuple is built in a third
    of the time."""

    event: Envelope
    data: Any
    topic: str
    key: str | None
    # The Kafka partition it was read from: its entity's event-time clock (shared.event_clock).
    partition: int = 0

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def time(self) -> datetime:
        return self.event.time


@dataclass(frozen=True, slots=True)
class Cause:
    """Why an event is emitted: the id its own id derives from, and the event time it carries.

    For a handled input event this is the input; a periodic sweep names a stable seed of its
    own (for example the cooldown it ends) so that running it twice emits the same id.
    """

    id: str
    time: datetime
    causation_id: str | None = None

    @classmethod
    def of(cls, received: Received) -> Cause:
        return cls(id=received.id, time=received.time, causation_id=received.id)


@dataclass(frozen=True, slots=True)
class Emit:
    """An event to publish once the transaction that decided it commits."""

    topic: str
    key: str
    type: str
    data: BaseModel | dict[str, Any]
    subject: str | None = None
    # Distinguishes two events of one type caused by one input (e.g. one per IP).
    discriminator: str = ""
    # Per-event handlers leave this empty: the pipeline fills in the input event.
    cause: Cause | None = None


class Unprocessable(Exception):
    """Raised by a handler for an input that can never be applied (it goes to the DLQ).

    Examples: it names an entity of another account. Transient failures must never raise
    this: they are retried.
    """


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input the pipeline dead-letters, with the reason."""

    error_class: str
    message: str
    # The envelope, when it parsed: lets a consumer answer the sender (see Consumer.answer_invalid).
    event: CloudEvent | None = None


@dataclass(slots=True)
class BatchResult:
    """What a batch handler decided: events to emit and inputs to dead-letter."""

    emits: list[Emit] = field(default_factory=list)
    rejected: list[tuple[Received, Rejected]] = field(default_factory=list)

    def extend(self, emits: Sequence[Emit]) -> None:
        self.emits.extend(emits)
