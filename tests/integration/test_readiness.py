"""The fleet says when it is ready: every subscription assigned by its group, over the real
broker. How fast is bench.startup's business, never a test's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.fleet import build as build_service
from services.fleet import expand
from services.provisioner.service import build as build_provisioner
from services.settings import FleetSettings as Settings
from shared.runtime import Fleet, Service, group_id
from tests.integration.processes import ServiceProcess
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 3  # settings_for's KAFKA_TOPIC_PARTITIONS


def subscriptions(services: list[Service], prefix: str) -> dict[str, str]:
    """Group id -> topic, for every subscription of these services."""
    return {
        prefix + group_id(c.service, c.topic): prefix + c.topic
        for s in services
        for c in s.consumers
    }


def every_partition(topic: str) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(topic, p) for p in range(PARTITIONS))


async def test_all_services_are_ready_once_every_subscription_holds_its_partitions(
    start_fleet: Any, settings_for: Callable[..., Settings], topic_prefix: str
) -> None:
    settings = settings_for()
    services = [build_service(name, settings) for name in expand(["all"])]
    fleet: Fleet = await start_fleet(services, settings)

    seconds = await fleet.wait_ready(timeout=120)  # a bound against hanging, not a speed test

    assert fleet.ready.is_set() and seconds > 0
    wanted = subscriptions(services, topic_prefix)
    assert len(wanted) == sum(len(s.consumers) for s in services) > 1
    assert fleet.assignments == {g: every_partition(t) for g, t in wanted.items()}


async def test_a_second_replica_becomes_ready_and_the_partitions_are_shared(
    start_fleet: Any, settings_for: Callable[..., Settings], topic_prefix: str
) -> None:
    settings = settings_for()
    first: Fleet = await start_fleet([build_provisioner(settings, settings.provisioner)], settings)
    await first.wait_ready(timeout=120)
    second: Fleet = await start_fleet([build_provisioner(settings, settings.provisioner)], settings)
    await second.wait_ready(timeout=120)

    # The second member's join rebalanced each group: the first one's readiness stays, its
    # partitions are now shared, each held by exactly one of the two.
    wanted = subscriptions([build_provisioner(settings, settings.provisioner)], topic_prefix)

    def split(group: str, topic: str) -> bool:
        mine = first.assignments.get(group, frozenset())
        theirs = second.assignments.get(group, frozenset())
        disjoint = not mine & theirs
        return bool(mine and theirs) and disjoint and mine | theirs == every_partition(topic)

    async def shared() -> bool:
        return all(split(g, t) for g, t in wanted.items())

    await wait_until(shared, 120, "the partitions shared between the two replicas")
    assert first.ready.is_set() and second.ready.is_set()


async def test_ipfleet_run_all_logs_services_ready_with_every_subscription(
    database: str,
    kafka_server: Any,
    topic_prefix: str,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    names = expand(["all"])
    expected = sum(len(build_service(n, settings_for()).consumers) for n in names)
    service = ServiceProcess(
        ["all"],
        {
            "DATABASE_URL": database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_server.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "IPFLEET_INVENTORY": "global=198.51.100.0/28",
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
        },
        tmp_path / "all.log",
    )
    service.start()
    try:

        async def ready() -> bool:
            return '"services ready"' in service.log_text()

        await wait_until(ready, 120, "the fleet to log services ready")
        assert service.terminate() == 0
    finally:
        if service.proc and service.proc.poll() is None:
            service.proc.kill()
    lines = [json.loads(x) for x in service.log_text().splitlines() if x.startswith("{")]
    [ready_line] = [e for e in lines if e["event"] == "services ready"]
    assert ready_line["services"] == names
    assert ready_line["subscriptions"] == expected
    assert ready_line["seconds"] > 0
    assigned = {e["group"] for e in lines if e["event"] == "subscription assigned"}
    assert len(assigned) == expected
