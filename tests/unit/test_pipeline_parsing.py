"""How the pipeline classifies raw records: valid, dead-letter (with the reason), or not ours."""

import json
from dataclasses import dataclass, field

import pytest

from shared.consumer import Consumer
from shared.contract.events import COMMANDS, IpRelease, IpRequested
from shared.messages import Received, Rejected
from shared.parsing import parse_record


@dataclass
class FakeRecord:
    value: bytes | None
    topic: str = "ip.requested"
    partition: int = 0
    offset: int = 0
    key: bytes | None = b"acct"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


async def _noop(*_: object) -> list[object]:
    return []


REQUESTS = Consumer(
    service="provisioner", topic="ip.requested", types={"ip.requested": IpRequested}, handle=_noop
)
COMMAND_CONSUMER = Consumer(
    service="provisioner",
    topic="ip.commands",
    types={"ip.release": IpRelease},
    others=frozenset(COMMANDS) - {"ip.release"},
    handle=_noop,
)


def event(kind: str = "ip.requested", **data: object) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "e1",
            "source": "t",
            "type": kind,
            "time": "2026-11-23T10:00:00Z",
            "data": data,
        }
    ).encode()


def test_a_valid_request_parses_with_typed_data_and_key() -> None:
    parsed = parse_record(FakeRecord(event(account_id="a", plan="max")), REQUESTS)
    assert isinstance(parsed, Received)
    assert parsed.data == IpRequested(account_id="a", plan="max")
    assert parsed.key == "acct"


def test_each_kind_of_bad_input_is_rejected_with_its_own_reason() -> None:
    cases = {
        b"{not json": "InvalidJson",
        b"\xff": "InvalidJson",
        b"[1, 2]": "NotACloudEvent",
        b'{"id": "x"}': "NotACloudEvent",
        event("ip.teleported", account_id="a"): "UnknownEventType",
        event(account_id="a", plan="gold"): "ValidationFailed",
        event(account_id="", plan="max"): "ValidationFailed",
    }
    for value, reason in cases.items():
        parsed = parse_record(FakeRecord(value), REQUESTS)
        assert isinstance(parsed, Rejected), value
        assert parsed.error_class == reason, (value, parsed)
        assert parsed.message


def test_a_validation_failure_keeps_the_envelope_so_the_sender_can_be_answered() -> None:
    parsed = parse_record(FakeRecord(event(account_id="a", plan="gold")), REQUESTS)
    assert isinstance(parsed, Rejected) and parsed.event is not None
    assert parsed.event.id == "e1"
    assert "plan" in parsed.message


def test_a_command_for_another_service_is_skipped_not_dead_lettered() -> None:
    mine = parse_record(
        FakeRecord(event("ip.release", account_id="a", ip_id="ip_1"), topic="ip.commands"),
        COMMAND_CONSUMER,
    )
    theirs = parse_record(
        FakeRecord(event("pool.create", account_id="a", name="p"), topic="ip.commands"),
        COMMAND_CONSUMER,
    )
    unknown = parse_record(
        FakeRecord(event("pool.explode", account_id="a"), topic="ip.commands"), COMMAND_CONSUMER
    )
    assert isinstance(mine, Received)
    assert theirs is None
    assert isinstance(unknown, Rejected) and unknown.error_class == "UnknownEventType"


def test_the_collector_comes_back_when_the_last_overlapping_batch_ends() -> None:
    import gc

    from shared.ingest import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other batch is still being applied
    assert gc.isenabled()
    try:
        with collector_paused():
            raise RuntimeError("a batch that failed")
    except RuntimeError:
        pass
    assert gc.isenabled()
    gc.disable()  # whoever turned it off keeps it off
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def _requests_with(decode: object) -> Consumer:
    return Consumer(
        service="provisioner",
        topic="ip.requested",
        types={"ip.requested": IpRequested},
        handle=_noop,
        fast_decode=decode,  # type: ignore[arg-type]
    )


def test_a_fast_decoders_event_is_received_as_is_with_the_records_key_and_partition() -> None:
    value = event(account_id="a", plan="max")
    decoded = REQUESTS.envelope.model_validate_json(value)  # type: ignore[union-attr]
    seen: list[bytes] = []

    def decode(raw: bytes) -> object:
        seen.append(raw)
        return decoded

    parsed = parse_record(FakeRecord(value, partition=2), _requests_with(decode))
    assert seen == [value]
    assert parsed == Received(decoded, decoded.data, "ip.requested", "acct", 2)
    assert parsed.event is decoded


def test_what_a_fast_decoder_declines_takes_the_full_path_and_keeps_its_reason() -> None:
    consumer = _requests_with(lambda raw: None)
    assert parse_record(FakeRecord(event(account_id="a", plan="max")), consumer) == (
        parse_record(FakeRecord(event(account_id="a", plan="max")), REQUESTS)
    )
    parsed = parse_record(FakeRecord(event(account_id="a", plan="gold")), consumer)
    assert isinstance(parsed, Rejected) and parsed.error_class == "ValidationFailed"
    assert parse_record(FakeRecord(None), consumer) == Rejected(
        "InvalidJson", "value is not JSON: Expecting value: line 1 column 1 (char 0)"
    )


def test_a_fast_decoder_is_only_for_a_consumer_of_one_type() -> None:
    with pytest.raises(ValueError, match="one typed type"):
        Consumer(
            service="warmup",
            topic="ip.commands",
            types={"ip.release": IpRelease, "ip.update": COMMANDS["ip.update"]},
            handle=_noop,
            fast_decode=lambda raw: None,
        )
