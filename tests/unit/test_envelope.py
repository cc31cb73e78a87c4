import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.contract.envelope import CloudEvent, build_event, derive_event_id


def test_emitted_ids_are_derived_from_the_cause_and_type_only() -> None:
    assert derive_event_id("in-1", "ip.provisioned") == derive_event_id("in-1", "ip.provisioned")
    assert derive_event_id("in-1", "ip.provisioned") != derive_event_id("in-2", "ip.provisioned")
    assert derive_event_id("in-1", "ip.provisioned") != derive_event_id("in-1", "ip.updated")
    assert derive_event_id("in-1", "t", "a") != derive_event_id("in-1", "t", "b")


def test_an_event_without_time_is_not_accepted() -> None:
    with pytest.raises(ValidationError, match="time"):
        CloudEvent.model_validate(
            {"specversion": "1.0", "id": "x", "source": "s", "type": "t", "data": {}}
        )


def test_naive_times_are_refused_because_event_time_must_be_unambiguous() -> None:
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(
            {
                "specversion": "1.0",
                "id": "x",
                "source": "s",
                "type": "t",
                "time": "2026-11-23T10:00:00",
                "data": {},
            }
        )


def test_built_events_carry_causation_and_round_trip() -> None:
    event = build_event(
        event_id="e",
        source="ipfleet/provisioner",
        event_type="ip.provisioned",
        time=datetime(2026, 11, 23, 10, tzinfo=UTC),
        subject="ip_1",
        data={"a": 1},
        causation_id="cause",
    )
    again = CloudEvent.model_validate_json(event.to_json_bytes())
    assert again == event
    assert again.causationid == "cause"
    assert b'"causationid":"cause"' in event.to_json_bytes()


def test_events_are_written_as_compact_json_without_nulls() -> None:
    """The bytes the outbox stores: what `json.dumps` of the JSON-mode dump (nulls left out,
    no spaces) writes, for the ASCII text ipfleet's events carry."""
    event = build_event(
        event_id="e",
        source="ipfleet/warmup",
        event_type="ip.hourly_limit_reached",
        time=datetime(2026, 11, 23, 10, tzinfo=UTC),
        subject="ip_1",
        data={
            "ip_id": "ip_1",
            "pool": None,
            "warmup": {"progress": 0.0714, "days": [{"day": 1, "sent": 3, "done": False}]},
        },
        causation_id=None,
    )
    written = json.dumps(event.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
    assert event.to_json_bytes() == written.encode()
