"""`send.recorded` in its common wire shape, decoded more cheaply than pydantic's full pass.

The warmup service reads sends by the hundred thousand, and nearly all come in one shape:
ASCII, the envelope's own attributes and nothing else, `data` with SendRecorded's fields and
nothing else. `decode_send` checks that shape with msgspec (in C: JSON, types, lengths,
literals), `time` with pydantic's own datetime validator, `ip` and `domain` with the
contract's own validators, then builds the very objects pydantic would: the same classes,
field values, fields set and (empty) extras. Anything else is declined (None) and the full
path decides as it always did.
"""

from __future__ import annotations

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

# A model instance is built as `model_construct` builds one (its four slots set through their
# descriptors), minus its per-field loop: this is the hot path. Both models allow extras, so
# pydantic leaves `__pydantic_extra__` an empty dict when there are none.
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__

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


def decode_send(value: bytes) -> CloudEvent | None:
    """The `send.recorded` envelope of `value`, as `SendEnvelope.model_validate_json` returns
    it, when `value` has the common shape; None otherwise (nothing said about validity)."""
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

    data = _new(SendRecorded)
    message_id = sent.message_id
    if message_id is UNSET:
        message_id = None
        _set_fields_set(data, {"account_id", "ip", "domain", "outcome"})
    else:
        _set_fields_set(data, {"account_id", "ip", "domain", "outcome", "message_id"})
    _set_dict(
        data,
        {
            "account_id": sent.account_id,
            "ip": ip,
            "domain": domain,
            "outcome": sent.outcome,
            "message_id": message_id,
        },
    )
    _set_extra(data, {})
    _set_private(data, None)

    fields_set = {"specversion", "id", "source", "type", "time", "data"}
    subject = wire.subject
    if subject is UNSET:
        subject = None
    else:
        fields_set.add("subject")
    content_type = wire.datacontenttype
    if content_type is UNSET:
        content_type = _CONTENT_TYPE
    else:
        fields_set.add("datacontenttype")
    schema = wire.dataschema
    if schema is UNSET:
        schema = None
    else:
        fields_set.add("dataschema")
    causation = wire.causationid
    if causation is UNSET:
        causation = None
    else:
        fields_set.add("causationid")
    event = _new(SendEnvelope)
    _set_dict(
        event,
        {
            "specversion": "1.0",
            "id": wire.id,
            "source": wire.source,
            "type": SEND_RECORDED,
            "time": time,
            "subject": subject,
            "datacontenttype": content_type,
            "dataschema": schema,
            "causationid": causation,
            "data": data,
        },
    )
    _set_fields_set(event, fields_set)
    _set_extra(event, {})
    _set_private(event, None)
    return event
