"""The fast decoder of `send.recorded` (shared.contract.sends): whatever it accepts, it
decodes to the values pydantic's envelope holds, down to their types and time zone objects;
it accepts the common shape; it never accepts anything pydantic rejects."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from bench.decode import messages
from services.warmup.service import build
from services.warmup.settings import WarmupSettings
from shared.client import cloud_event
from shared.contract.events import SendRecorded
from shared.contract.sends import (
    _KNOWN,
    SendData,
    SendEnvelope,
    SendEvent,
    _holds_every_field,
    _reads_as_known,
    decode_send,
    values_of,
)
from shared.messages import Received
from shared.parsing import parse_record
from shared.settings import Settings

SERVICE = build(Settings(_env_file=None), WarmupSettings(_env_file=None))  # type: ignore[call-arg]
(SENDS,) = [c for c in SERVICE.consumers if c.topic == "send.recorded"]
SENDS_WITHOUT_FAST_PATH = replace(SENDS, fast_decode=None)


def pydantic(value: bytes) -> BaseModel | None:
    try:
        return SendEnvelope.model_validate_json(value)
    except ValidationError:
        return None


def assert_identical(fast: Any, slow: Any) -> None:
    """The fast path's event holds every value pydantic's envelope holds, each of the same
    type (time zone objects included)."""
    assert isinstance(fast, SendEvent) and isinstance(fast.data, SendData)
    assert isinstance(slow, SendEnvelope)
    mine, theirs = values_of(fast), values_of(slow)
    assert list(theirs) == [*(n for n in SendEnvelope.model_fields if n != "data"), *DATA_FIELDS]
    assert mine == theirs
    for name, value in theirs.items():
        assert type(mine[name]) is type(value), name
        if isinstance(value, datetime):
            ours = mine[name]
            assert ours.utcoffset() == value.utcoffset()
            assert type(ours.tzinfo) is type(value.tzinfo)
            assert ours.tzinfo == value.tzinfo and ours.tzname() == value.tzname()
            assert repr(ours) == repr(value) and ours.isoformat() == value.isoformat()


DATA_FIELDS = [f"data.{name}" for name in SendRecorded.model_fields]


def same(value: bytes) -> SendEvent | None:
    """Decode `value` both ways: if the fast decoder accepts it, pydantic must accept it and
    agree in every way. Returns what the fast decoder returned."""
    fast, slow = decode_send(value), pydantic(value)
    if fast is not None:
        assert slow is not None, value
        assert_identical(fast, slow)
    return fast


def send(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": "0b7d5c1e-1b6f-4e0f-9a53-1f3f6d9d1b11",
        "source": "mta-7",
        "type": "send.recorded",
        "time": "2026-01-05T09:30:00.250+01:00",
        "subject": "acct_1",
        "datacontenttype": "application/json",
        "data": {
            "account_id": "acct_1",
            "ip": "198.51.100.7",
            "domain": "News.Example.com.",
            "outcome": "bounced",
            "message_id": "<1@example.com>",
        },
    }
    return base | overrides


def encoded(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ---- the common shape takes the fast path ------------------------------------------------


def test_every_send_the_warmup_bench_publishes_takes_the_fast_path_identically() -> None:
    for record in messages(500):
        assert same(record.value) is not None


def test_a_send_from_the_client_library_takes_the_fast_path_identically() -> None:
    value = cloud_event(
        "send.recorded",
        {"account_id": "a", "ip": "10.0.0.1", "domain": "x.example.com", "outcome": "delivered"},
        time=datetime(2026, 1, 5, 9, tzinfo=UTC),
    )
    assert same(json.dumps(value).encode()) is not None  # json.dumps' default ", " and ": "


def test_the_fast_path_normalises_as_the_contract_does() -> None:
    decoded = same(encoded(send()))
    assert decoded is not None
    data = decoded.data
    assert (data.ip, data.domain) == ("198.51.100.7", "news.example.com")
    assert decoded.time.utcoffset() == timedelta(hours=1)


def test_optional_attributes_absent_null_or_set_keep_pydantics_fields_set_and_defaults() -> None:
    optional = ["subject", "datacontenttype", "dataschema", "causationid"]
    for name in optional:
        for value in ({"x": 1}, {name: None}, {name: "text"}):
            event = {k: v for k, v in send().items() if k != name} | value
            event.pop("x", None)
            assert same(encoded(event)) is not None, event
    data = {k: v for k, v in send()["data"].items() if k != "message_id"}
    assert same(encoded(send(data=data))) is not None
    assert same(encoded(send(data=data | {"message_id": None}))) is not None


def test_a_received_send_is_the_same_with_and_without_the_fast_path() -> None:
    @dataclass
    class Record:
        value: bytes | None
        key: bytes | None = b"198.51.100.7"
        topic: str = "send.recorded"
        partition: int = 1
        offset: int = 0
        headers: tuple[tuple[str, bytes], ...] = ()

    record = Record(encoded(send()))
    fast = parse_record(record, SENDS)
    slow = parse_record(record, SENDS_WITHOUT_FAST_PATH)
    assert isinstance(fast, Received) and isinstance(slow, Received)
    assert_identical(fast.event, slow.event)
    assert fast.data is fast.event.data and slow.data is slow.event.data
    assert (fast.id, fast.type, fast.time) == (slow.id, slow.type, slow.time)
    assert (fast.topic, fast.key, fast.partition) == (slow.topic, slow.key, slow.partition)


def test_a_fast_decoded_send_is_frozen_and_hashable_as_pydantics_is() -> None:
    fast, again = decode_send(encoded(send())), decode_send(encoded(send()))
    assert fast is not None and again is not None
    assert fast == again and hash(fast) == hash(again) and hash(fast.data) == hash(again.data)
    with pytest.raises(AttributeError):
        fast.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        fast.data.ip = "10.0.0.9"  # type: ignore[misc]
    other = decode_send(encoded(send(id="another")))
    assert other is not None and other != fast and other.data == fast.data


# ---- what it declines (the full path then decides, as before) ------------------------------


@pytest.mark.parametrize(
    "value",
    [
        send(extra="x"),  # an extension attribute: pydantic keeps it as an extra
        send(data={**send()["data"], "note": "x"}),
        send(id="\u00e9"),  # non-ASCII
        send(source="a\\b"),  # an escape
        send(time="2026-01-05T09:30:00"),  # naive
        send(time="2026-01-05T09:30:60Z"),
        send(specversion="0.3"),
        send(type="send.teleported"),
        send(id=""),
        send(id="x" * 257),
        send(data={**send()["data"], "ip": "300.1.1.1"}),
        send(data={**send()["data"], "domain": "not a host"}),
        send(data={**send()["data"], "outcome": "lost"}),
        send(data={**send()["data"], "account_id": "a" * 129}),
        send(subject=7),
        {k: v for k, v in send().items() if k != "time"},
    ],
)
def test_anything_unusual_is_declined(value: dict[str, Any]) -> None:
    assert decode_send(json.dumps(value).encode()) is None


def test_not_json_or_not_an_object_is_declined() -> None:
    for value in (b"", b"\xff", b"[1]", b"null", b"{", encoded(send()) + b"x"):
        assert decode_send(value) is None


def test_a_duplicated_attribute_decodes_as_pydantic_decodes_it() -> None:
    value = encoded(send()).replace(b'"id":', b'"id":"first","id":', 1)
    assert same(value) is not None


# ---- properties --------------------------------------------------------------------------

ASCII = st.text(alphabet=string.printable, max_size=12)
ANY_TEXT = st.text(max_size=12)
JSONISH = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT
ZONES = st.sampled_from(
    [
        None,
        UTC,
        timezone(timedelta(hours=1)),
        timezone(-timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=23, minutes=59)),
        timezone(timedelta(seconds=1)),
    ]
)


@st.composite
def times(draw: st.DrawFn) -> Any:
    """Timestamps as producers write them, and as they should not."""
    moment = draw(st.datetimes(timezones=ZONES))
    text = draw(
        st.sampled_from(
            [
                moment.isoformat(),
                moment.isoformat().replace("+00:00", "Z"),
                moment.isoformat(timespec="milliseconds"),
                moment.isoformat(timespec="minutes"),
                moment.isoformat(sep=" "),
                moment.isoformat().lower().replace("+00:00", "z"),
                moment.isoformat().replace(":", "", 2),
                moment.strftime("%Y-%m-%dT%H:%M:%S.%f0%z"),
            ]
        )
    )
    return draw(
        st.just(text)
        | st.text(alphabet="0123456789-:TtZz+. ", max_size=32)
        | st.integers(0, 2**40)
        | st.floats(allow_nan=False)
        | ANY_TEXT
    )


LABEL = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=8)
DOMAINS = (
    st.builds(
        lambda labels, dot, tail: ".".join(labels) + dot + tail,
        st.lists(LABEL, min_size=1, max_size=4),
        st.sampled_from(["", "."]),
        st.sampled_from(["", "", "\n", " "]),
    )
    | ANY_TEXT
)
IPS = (
    st.ip_addresses().map(str)
    | st.ip_addresses(v=4).map(lambda ip: str(ip).replace(".", ".0", 1))
    | st.ip_addresses(v=6).map(lambda ip: ip.exploded.upper())
    | st.ip_addresses(v=6).map(lambda ip: f"{ip}%eth0")
    | ANY_TEXT
)
OUTCOMES = st.sampled_from(["delivered", "deferred", "bounced", "complained", "dropped"])
TEXT_OF_ANY_LENGTH = st.sampled_from([0, 1, 127, 128, 129, 255, 256, 257]).map(lambda n: "a" * n)
MISSING = object()
# Printable ASCII that JSON writes without an escape.
PLAIN = "".join(c for c in string.printable if c not in '"\\' and (c == " " or not c.isspace()))
NAME = st.text(alphabet=PLAIN, min_size=1, max_size=40)
OPTIONAL = NAME | st.none() | st.just(MISSING)
GOOD_DOMAINS = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(LABEL.filter(lambda label: "-" not in (label[0], label[-1])), min_size=2, max_size=4),
    st.sampled_from(["", "."]),
)
# Every field valid, as producers write them...
VALID_DATA = {
    "account_id": NAME,
    "ip": st.ip_addresses().map(str),
    "domain": GOOD_DOMAINS,
    "outcome": OUTCOMES,
    "message_id": OPTIONAL,
}
VALID_EVENT = {
    "specversion": st.just("1.0"),
    "id": NAME,
    "source": NAME,
    "type": st.just("send.recorded"),
    "time": st.datetimes(timezones=ZONES.filter(bool)).map(
        lambda moment: moment.isoformat().replace("+00:00", "Z")
    ),
    "subject": OPTIONAL,
    "datacontenttype": OPTIONAL,
    "dataschema": OPTIONAL,
    "causationid": OPTIONAL,
}
# ... and what a few of them may be instead: absent, another JSON type, unicode, or odd.
ODD = st.just(MISSING) | JSONISH | st.text(max_size=12)
ODD_DATA = {
    "account_id": TEXT_OF_ANY_LENGTH,
    "ip": IPS,
    "domain": DOMAINS,
    "outcome": ASCII,
    "message_id": ASCII,
}
ODD_EVENT = {
    "specversion": st.sampled_from(["1.0 ", "0.3", "1"]),
    "id": TEXT_OF_ANY_LENGTH,
    "source": st.just(""),
    "type": st.sampled_from(["ip.requested", "send.recorded "]),
    "time": times(),
    "data": JSONISH,
}


@st.composite
def sends(draw: st.DrawFn) -> bytes:
    """A valid send with up to three fields changed, perhaps an extra field, encoded in one
    of the ways producers encode JSON."""
    data = {name: draw(values) for name, values in VALID_DATA.items()}
    event: dict[str, Any] = {name: draw(values) for name, values in VALID_EVENT.items()}
    event["data"] = data
    fields = [("event", name) for name in event] + [("data", name) for name in data]
    changes = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
    for where, name in draw(
        st.lists(st.sampled_from(fields), min_size=changes, max_size=changes, unique=True)
    ):
        target, odd = (event, ODD_EVENT) if where == "event" else (data, ODD_DATA)
        specific = odd.get(name, ODD)
        target[name] = draw(st.one_of(specific, specific, ODD))
    if draw(st.integers(0, 9)) == 0:
        target = draw(st.sampled_from([event, data]))
        target[draw(st.sampled_from(["note", "id2", "partitionkey"]))] = draw(JSONISH)
    data = {k: v for k, v in data.items() if v is not MISSING}
    if isinstance(event["data"], dict):
        event["data"] = data
    value = {k: v for k, v in event.items() if v is not MISSING}
    return json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
    ).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sends())
@example(encoded(send()))
def test_whatever_the_fast_path_accepts_pydantic_accepts_identically(value: bytes) -> None:
    fast, slow = same(value), pydantic(value)
    # And it declines only the unusual: non-ASCII, escapes, extras, a time not in a string.
    common = (
        slow is not None
        and value.isascii()
        and b"\\" not in value
        and not slow.__pydantic_extra__
        and not slow.data.__pydantic_extra__  # type: ignore[attr-defined]
        and isinstance(json.loads(value)["time"], str)
    )
    assert (fast is not None) == common, value


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "insert", "delete"]),
            st.integers(min_value=0),
            st.binary(min_size=1, max_size=1),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_a_send_with_mangled_bytes_is_accepted_only_as_pydantic_accepts_it(
    edits: list[tuple[str, int, bytes]],
) -> None:
    value = bytearray(encoded(send()))
    for kind, at, byte in edits:
        at %= len(value) + (kind == "insert")
        if kind == "set" and at < len(value):
            value[at : at + 1] = byte
        elif kind == "insert":
            value[at:at] = byte
        elif len(value) > 1:
            del value[at]
    same(bytes(value))


@settings(max_examples=300, deadline=None)
@given(times())
def test_a_time_is_read_exactly_as_pydantic_reads_it(time: Any) -> None:
    decoded = same(encoded(send(time=time)))
    if decoded is None:
        return
    assert decoded.time.tzinfo is not None  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.data())
@pytest.mark.parametrize("name", list(ODD_DATA))
def test_each_field_of_data_alone_is_read_exactly_as_pydantic_reads_it(
    name: str, data: st.DataObject
) -> None:
    odd = ODD_DATA[name]
    value = data.draw(st.one_of(VALID_DATA[name], odd, odd, ODD))
    fields = {k: v for k, v in (send()["data"] | {name: value}).items() if v is not MISSING}
    same(encoded(send(data=fields)))


@settings(max_examples=200, deadline=None)
@given(st.data())
@pytest.mark.parametrize("name", list(VALID_EVENT))
def test_each_envelope_attribute_alone_is_read_exactly_as_pydantic_reads_it(
    name: str, data: st.DataObject
) -> None:
    odd = ODD_EVENT.get(name, ODD)
    value = data.draw(st.one_of(VALID_EVENT[name], odd, odd, ODD))
    same(encoded({k: v for k, v in (send() | {name: value}).items() if v is not MISSING}))


def test_a_change_to_the_contract_stops_the_fast_decoder_from_importing() -> None:
    data, envelope = _KNOWN[SendRecorded], _KNOWN[SendEnvelope]
    assert _reads_as_known(SendRecorded, data)
    assert _reads_as_known(SendEnvelope, envelope)

    class Validated(SendRecorded):
        @field_validator("account_id")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    class Checked(SendRecorded):
        @model_validator(mode="after")
        def _check(self) -> Checked:
            return self

    class Longer(SendRecorded):
        campaign: str | None = None

    class Limited(SendRecorded):
        message_id: str | None = Field(default=None, max_length=8)

    class Typed(SendRecorded):
        message_id: int | None = None  # type: ignore[assignment]

    for changed in (Validated, Checked, Longer, Limited, Typed):
        assert not _reads_as_known(changed, data), changed


def test_a_field_added_to_the_contract_stops_the_fast_decoder_from_importing() -> None:
    assert _holds_every_field(SendData, SendRecorded)
    assert _holds_every_field(SendEvent, SendEnvelope)

    class Longer(SendRecorded):
        campaign: str | None = None

    assert not _holds_every_field(SendData, Longer)
    assert not _holds_every_field(SendEvent, SendRecorded)
