"""The pipeline's metrics observer and the services' gauge files, without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.reputation.domain import assignment
from shared.contract.envelope import CloudEvent
from shared.messages import Received, Rejected
from shared.metrics import FleetMetrics, ServiceGauges
from shared.pipeline import Consumer


@dataclass
class FakeRecord:
    value: bytes
    topic: str = "ip.commands"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


async def _handle(conn: Any, item: Received) -> list[Any]:
    return []


CONSUMER = Consumer(
    service="reputation",
    topic="ip.commands",
    types={"pool.create": dict, "pool.delete": dict},
    others=frozenset({"ip.release"}),
    handle=_handle,
)


def received(event_type: str) -> Received:
    event = CloudEvent(
        specversion="1.0",
        id=event_type + "-1",
        source="test",
        type=event_type,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data={},
    )
    return Received(event, {}, "ip.commands", "acct")


def value(metrics: FleetMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_counts_only_the_attempt_that_committed() -> None:
    metrics = FleetMetrics()
    observer = metrics.observer(CONSUMER)
    create, delete = received("pool.create"), received("pool.delete")
    observer.attempt()
    observer.applied([create, delete], [create, delete], [])
    observer.dead_lettered(FakeRecord(b"{}"), Rejected("Transient", "x"))
    observer.attempt()  # the first attempt rolled back: what it said is void
    observer.applied([create, delete, create], [create], [])
    observer.dead_lettered(FakeRecord(b'{"type": "pool.delete"}'), Rejected("Unprocessable", "x"))
    observer.dead_lettered(FakeRecord(b'{"type": "acct_42 was here"}'), Rejected("Bad", "x"))
    observer.dead_lettered(FakeRecord(b"\xff"), Rejected("InvalidJson", "x"))
    observer.done(4, 0.2)
    where = {"service": "reputation", "topic": "ip.commands"}
    assert value(metrics, "ipfleet_events_applied_total", **where, type="pool.create") == 1
    assert value(metrics, "ipfleet_events_applied_total", **where, type="pool.delete") == 0
    assert value(metrics, "ipfleet_events_duplicate_total", **where) == 2
    dead = "ipfleet_events_dead_lettered_total"
    assert value(metrics, dead, **where, type="pool.delete", reason="Unprocessable") == 1
    assert value(metrics, dead, **where, type="unknown", reason="Bad") == 1
    assert value(metrics, dead, **where, type="unknown", reason="InvalidJson") == 1
    assert value(metrics, dead, **where, type="unknown", reason="Transient") is None
    assert value(metrics, "ipfleet_batch_size_sum", **where) == 4
    assert value(metrics, "ipfleet_batch_apply_seconds_count", **where) == 1
    # A next batch starts from nothing.
    observer.attempt()
    observer.done(1, 0.1)
    assert value(metrics, "ipfleet_events_duplicate_total", **where) == 2


def test_reputation_gauges_name_each_fixed_reason_of_the_domain() -> None:
    gauges = ServiceGauges.of("reputation")
    assert gauges is not None
    sql = gauges.statements.domain_moves
    for reason in (
        assignment.REASON_ENROLLED,
        assignment.REASON_UNENROLLED,
        assignment.REASON_OVERRIDE_SET,
        assignment.REASON_OVERRIDE_CLEARED,
    ):
        assert f"'{reason}'" in sql, reason
    assert gauges.help("domain_moves").startswith("Domain moves between pools")


def test_each_service_with_tables_has_gauges_and_none_is_required() -> None:
    assert ServiceGauges.of("warmup") is not None
    assert ServiceGauges.of("provisioner") is None
    assert ServiceGauges.of("no-such-service") is None
