"""send.recorded parsing: the pipeline's fast paths accept exactly what its full path
accepts, with the same data, and every refusal keeps its dead-letter reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.warmup.service import build
from services.warmup.settings import WarmupSettings
from shared.contract.envelope import CloudEvent
from shared.contract.sends import SendEvent, values_of
from shared.messages import Received, Rejected
from shared.parsing import _parse_in_full, parse_record
from shared.settings import Settings

SERVICE = build(Settings(_env_file=None), WarmupSettings(_env_file=None))  # type: ignore[call-arg]
CONSUMERS = {c.topic: c for c in SERVICE.consumers}


@dataclass
class FakeRecord:
    value: bytes | None
    topic: str = "send.recorded"
    partition: int = 0
    offset: int = 0
    key: bytes | None = b"198.51.100.7"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def event(**overrides: Any) -> dict[str, Any]:
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


def same(value: bytes | None, topic: str = "send.recorded") -> Received | Rejected | None:
    """Parse both ways; assert they agree; return the result."""
    consumer = CONSUMERS[topic]
    record = FakeRecord(value, topic=topic)
    fast, full = parse_record(record, consumer), _parse_in_full(record, consumer)
    assert type(fast) is type(full)
    if isinstance(full, Received):
        assert isinstance(fast, Received)
        assert (fast.id, fast.type, fast.time, fast.key) == (
            full.id,
            full.type,
            full.time,
            full.key,
        )
        assert isinstance(full.event, CloudEvent)
        if isinstance(fast.event, SendEvent):  # the send decoder's own event: same values
            typed = full.event.model_copy(update={"data": full.data})  # full: data as a dict
            assert values_of(fast.event) == values_of(typed)
            assert fast.data is fast.event.data
        else:
            assert fast.data == full.data and type(fast.data) is type(full.data)
            dumped = fast.event.model_dump(exclude={"data"})  # type: ignore[attr-defined]
            assert dumped == full.event.model_dump(exclude={"data"})
    elif isinstance(full, Rejected):
        assert isinstance(fast, Rejected)
        assert (fast.error_class, fast.message) == (full.error_class, full.message)
    return fast


def test_a_well_formed_send_parses_the_same_both_ways_normalised() -> None:
    parsed = same(json.dumps(event()).encode())
    assert isinstance(parsed, Received)
    assert parsed.data.domain == "news.example.com"
    assert parsed.time.utcoffset() is not None and parsed.time.hour == 9


def test_every_kind_of_bad_send_keeps_its_reason() -> None:
    cases = {
        b"": "InvalidJson",
        b"\xff\xfe": "InvalidJson",
        b"[1]": "NotACloudEvent",
        json.dumps(event(time="2026-01-05T09:30:00")).encode(): "NotACloudEvent",
        json.dumps(event(specversion="0.3")).encode(): "NotACloudEvent",
        json.dumps(event(type="send.teleported")).encode(): "UnknownEventType",
        json.dumps(event(data={"account_id": "a", "ip": "300.1.1.1"})).encode(): "ValidationFailed",
        json.dumps(event(data={**event()["data"], "outcome": "lost"})).encode(): "ValidationFailed",
        json.dumps(event(data={**event()["data"], "domain": "not a host"})).encode(): (
            "ValidationFailed"
        ),
    }
    for value, reason in cases.items():
        parsed = same(value)
        assert isinstance(parsed, Rejected) and parsed.error_class == reason, (value, parsed)


def test_a_type_for_another_service_is_skipped_both_ways() -> None:
    command = event(type="ip.release", data={"account_id": "a", "ip_id": "ip_1"})
    assert same(json.dumps(command).encode(), topic="ip.commands") is None


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
FIELDS = ["specversion", "id", "source", "type", "time", "subject", "data", "extra"]
DATA_FIELDS = ["account_id", "ip", "domain", "outcome", "message_id", "note"]


@settings(max_examples=300, deadline=None)
@given(
    envelope_changes=st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=2),
    data_changes=st.dictionaries(st.sampled_from(DATA_FIELDS), JSONISH, max_size=2),
    drop=st.sets(st.sampled_from(FIELDS + DATA_FIELDS), max_size=2),
)
def test_any_mutation_of_a_send_is_classified_the_same_both_ways(
    envelope_changes: dict[str, Any], data_changes: dict[str, Any], drop: set[str]
) -> None:
    value = event()
    value["data"] = {k: v for k, v in (value["data"] | data_changes).items() if k not in drop}
    value = {k: v for k, v in (value | envelope_changes).items() if k not in drop}
    same(json.dumps(value).encode())
