"""The pipeline's metrics observer and the services' gauge files, without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.provisioner.service import build as build_provisioner
from services.reputation.domain import assignment
from services.reputation.service import build as build_reputation
from services.settings import FleetSettings as Settings
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared.consumer import Consumer
from shared.contract.envelope import CloudEvent
from shared.messages import Received, Rejected
from shared.metrics import FleetMetrics, ServiceGauges

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


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
    statements = build_reputation(SETTINGS).gauges
    assert statements is not None
    gauges = ServiceGauges("reputation", statements)
    sql = statements.domain_moves
    for reason in (
        assignment.REASON_ENROLLED,
        assignment.REASON_UNENROLLED,
        assignment.REASON_OVERRIDE_SET,
        assignment.REASON_OVERRIDE_CLEARED,
    ):
        assert f"'{reason}'" in sql, reason
    assert gauges.help("domain_moves").startswith("Domain moves between pools")


def test_services_with_tables_to_watch_declare_gauges_and_none_must() -> None:
    warmup = build_warmup(SETTINGS, WarmupSettings(_env_file=None))  # type: ignore[call-arg]
    assert warmup.gauges is not None and warmup.gauges.names() == ["warmup_ips"]
    assert build_provisioner(SETTINGS, SETTINGS.provisioner).gauges is None
