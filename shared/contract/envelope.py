"""CloudEvents 1.0 structured-mode envelope, and the ids of events ipfleet emits."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

CONTENT_TYPE = "application/cloudevents+json"

# Fixed namespace: ids derived from it must never change, or replays would emit new ids.
_EMITTED_ID_NAMESPACE = uuid.UUID("6d1f2a8e-3c4b-5a79-9e0d-1b2c3d4e5f60")


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope. `data` stays a plain dict here; its type validates it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    # CloudEvents makes `time` optional; ipfleet does not, because every rule runs on event time.
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    causationid: str | None = None
    data: dict[str, Any]

    def to_json_bytes(self) -> bytes:
        # Serialised by pydantic-core in one pass: for ASCII text the same bytes as
        # json.dumps of model_dump(mode="json") (compact), at a fifth of the cost (an IP view
        # event: 24.7 -> 4.7 us); other text is written as UTF-8 instead of \u escapes.
        return self.model_dump_json(exclude_none=True).encode()


@cache
def envelope_of(event_type: str, model: type[Any]) -> type[CloudEvent] | None:
    """The CloudEvent of one type with its typed `data`, validated in one call."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    envelope: type[CloudEvent] = create_model(
        f"{model.__name__}Envelope",
        __base__=CloudEvent,
        type=(Literal[event_type], ...),  # type: ignore[arg-type]
        data=(model, ...),
    )
    return envelope


def derive_event_id(cause_id: str, event_type: str, discriminator: str = "") -> str:
    """The id of an event emitted because of `cause_id`: the same on every replay."""
    return str(uuid.uuid5(_EMITTED_ID_NAMESPACE, f"{cause_id}\x1f{event_type}\x1f{discriminator}"))


def build_event(
    *,
    event_id: str,
    source: str,
    event_type: str,
    time: datetime,
    subject: str | None,
    data: dict[str, Any],
    causation_id: str | None,
) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        subject=subject,
        datacontenttype="application/json",
        causationid=causation_id,
        data=data,
    )
