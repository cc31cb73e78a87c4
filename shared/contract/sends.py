"""`send.recorded` in its common wire shape, decoded more cheaply than pydantic's full pass.

The warmup service reads sends by the hundred thousand, and nearly all come in one shape:
ASCII, the envelope's own attributes and nothing else, `data` with SendRecorded's fields and
nothing else. `decode_send` checks that shape with msgspec (in C: JSON, types, lengths,
literals), `time` with pydantic's own datetime validator, `ip` and `domain` with the
contract's own validators, and returns a `SendEvent`: the values pydantic's envelope would
hold, in two small frozen structs instead of two models (building and freeing the models was
most of what decoding a send cost). Anything else is declined (None) and the full path
decides as it always did, into the pydantic envelope; both answer to `shared.messages.Envelope`
and carry the fields `SendFields` names.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, cast

import annotated_types
import msgspec
from msgspec import UNSET, Meta, UnsetType
from pydantic import AfterValidator, AwareDatetime, BaseModel, TypeAdapter, WithJsonSchema

from shared.contract.envelope import CloudEvent, envelope_of
from shared.contract.events import Outcome, SendRecorded, _hostname, _ip_address

SEND_RECORDED = "send.recorded"
SendEnvelope: type[CloudEvent] = envelope_of(SEND_RECORDED, SendRecorded)  # type: ignore[assignment]


def _text(model: type[BaseModel], name: str) -> Any:
    """`str` with the length limits `model` puts on `name` (which must have no other)."""
    shortest: int | None = None
    longest: int | None = None
    for item in model.model_fields[name].metadata:
        if isinstance(item, annotated_types.MinLen):
            shortest = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            longest = item.max_length
        else:
            raise TypeError(f"{model.__name__}.{name}: no fast check for {item!r}")
    if shortest is None and longest is None:
        return str
    return Annotated[str, Meta(min_length=shortest, max_length=longest)]


if TYPE_CHECKING:  # built at import, from the models' own limits; text all the same
    _EventId: TypeAlias = str
    _Source: TypeAlias = str
    _AccountId: TypeAlias = str
else:
    _EventId = _text(CloudEvent, "id")
    _Source = _text(CloudEvent, "source")
    _AccountId = _text(SendRecorded, "account_id")


class _WireSendData(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    account_id: _AccountId
    ip: str
    domain: str
    outcome: Outcome
    message_id: str | UnsetType | None = UNSET


class _WireSend(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    specversion: Literal["1.0"]
    id: _EventId
    source: _Source
    type: Literal["send.recorded"]
    time: str
    data: _WireSendData
    subject: str | UnsetType | None = UNSET
    datacontenttype: str | UnsetType | None = UNSET
    dataschema: str | UnsetType | None = UNSET
    causationid: str | UnsetType | None = UNSET


_decode_wire = msgspec.json.Decoder(_WireSend).decode
# AwareDatetime, parsed by pydantic-core itself: every format it takes, with its own TzInfo.
_aware_time = TypeAdapter(cast(Any, CloudEvent.model_fields["time"].annotation)).validate_python
_CONTENT_TYPE = CloudEvent.model_fields["datacontenttype"].default


class SendData(msgspec.Struct, frozen=True, gc=False):
    """A send's `data`, as SendRecorded validates it (`ip` and `domain` normalised)."""

    account_id: str
    ip: str
    domain: str
    outcome: Outcome
    message_id: str | None


class SendEvent(msgspec.Struct, frozen=True, gc=False):
    """A `send.recorded` event as the envelope validates it: each attribute's value, an
    absent optional one as the envelope's default."""

    specversion: str
    id: str
    source: str
    type: str
    time: datetime
    subject: str | None
    datacontenttype: str | None
    dataschema: str | None
    causationid: str | None
    data: SendData


# What a handler of sends reads: the same fields whichever path decoded the send.
SendFields = SendData | SendRecorded


def values_of(event: SendEvent | CloudEvent) -> dict[str, Any]:
    """A send's attributes and its data's fields by name (`data.` before the latter), as
    either path decoded them: equal for the two paths on every send the fast one takes."""
    data = event.data
    return {name: getattr(event, name) for name in SendEnvelope.model_fields if name != "data"} | {
        f"data.{name}": getattr(data, name) for name in SendRecorded.model_fields
    }


# The contract as decode_send reads it: each field in the models' order, its type, and the
# validators it runs beyond length limits (only on the fields read through `_text`). Should
# either model change, this module must fail to import, loudly, rather than decode otherwise.
_KNOWN: dict[type[BaseModel], dict[str, tuple[Any, tuple[Any, ...]]]] = {
    SendEnvelope: {
        "specversion": (Literal["1.0"], ()),
        "id": (str, ()),
        "source": (str, ()),
        "type": (Literal["send.recorded"], ()),
        "time": (AwareDatetime, ()),
        "subject": (str | None, ()),
        "datacontenttype": (str | None, ()),
        "dataschema": (str | None, ()),
        "causationid": (str | None, ()),
        "data": (SendRecorded, ()),
    },
    SendRecorded: {
        "account_id": (str, ()),
        "ip": (str, (_ip_address,)),
        "domain": (str, (_hostname,)),
        "outcome": (Outcome, ()),
        "message_id": (str | None, ()),
    },
}
_LENGTH_LIMITED = {"id", "source", "account_id"}


def _reads_as_known(model: type[BaseModel], known: dict[str, tuple[Any, tuple[Any, ...]]]) -> bool:
    decorators = model.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
        or model.model_config.get("extra") != "allow"
        or model.__pydantic_post_init__
        or model.__private_attributes__
        or model.__pydantic_root_model__
        or list(model.model_fields) != list(known)
    ):
        return False
    lengths = (annotated_types.MinLen, annotated_types.MaxLen)
    for name, field in model.model_fields.items():
        annotation, validators = known[name]
        checks = tuple(item.func for item in field.metadata if isinstance(item, AfterValidator))
        others = [
            item
            for item in field.metadata
            if not isinstance(item, AfterValidator | WithJsonSchema)
            and not (name in _LENGTH_LIMITED and isinstance(item, lengths))
        ]
        if field.annotation != annotation or checks != validators or others:
            return False
    return True


for _model, _known in _KNOWN.items():
    if not _reads_as_known(_model, _known):
        raise TypeError(f"{_model.__name__} changed: decode_send must be updated with it")


def _holds_every_field(struct: type[msgspec.Struct], model: type[BaseModel]) -> bool:
    """Whether `struct` has exactly the fields of `model`, so it holds every value."""
    return sorted(struct.__struct_fields__) == sorted(model.model_fields)


for _struct, _model in ((SendEvent, SendEnvelope), (SendData, SendRecorded)):
    if not _holds_every_field(_struct, _model):
        raise TypeError(f"{_model.__name__} changed: {_struct.__name__} must be updated with it")


def decode_send(value: bytes) -> SendEvent | None:
    """The `send.recorded` event of `value`, with the values `SendEnvelope.model_validate_json`
    gives it, when `value` has the common shape; None otherwise (nothing said about validity)."""
    # Non-ASCII text and escapes (any backslash) could differ in length or in decoding
    # between the two parsers; both are rare in sends, so they take the full path.
    if not value.isascii() or b"\\" in value:
        return None
    try:
        wire = _decode_wire(value)
        sent = wire.data
        # pydantic's ValidationError is a ValueError, as are the contract validators' errors.
        time = _aware_time(wire.time)
        ip = _ip_address(sent.ip)
        domain = _hostname(sent.domain)
    except (msgspec.DecodeError, ValueError):
        return None
    message_id = sent.message_id
    subject = wire.subject
    content_type = wire.datacontenttype
    schema = wire.dataschema
    causation = wire.causationid
    return SendEvent(
        "1.0",
        wire.id,
        wire.source,
        SEND_RECORDED,
        time,
        None if subject is UNSET else subject,
        _CONTENT_TYPE if content_type is UNSET else content_type,
        None if schema is UNSET else schema,
        None if causation is UNSET else causation,
        SendData(
            sent.account_id,
            ip,
            domain,
            sent.outcome,
            None if message_id is UNSET else message_id,
        ),
    )
