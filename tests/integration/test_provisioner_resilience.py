"""The provisioner under crashes, restarts, replicas and replays, over the real broker and
real Postgres."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.provisioner.service import build
from shared.client import cloud_event
from shared.contract import topics
from shared.database import connect as connect_schema
from shared.replay import LiveMembers, group_positions, replay
from shared.settings import Settings
from tests.integration.processes import ServiceProcess
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def requests(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        cloud_event("ip.requested", {"account_id": f"acct_{tag}_{i}", "plan": "enterprise"})
        for i in range(n)
    ]


async def count_ips(dsn: str) -> int:
    conn = await connect_schema(dsn, "provisioner")
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ips"))
    finally:
        await conn.close()


async def wait_for_answers(seen: Any, sent: list[dict[str, Any]], timeout: float) -> None:
    """Until every sent request has its ip.provisioned (duplicates on the wire don't count)."""
    wanted = {e["id"] for e in sent}

    async def answered() -> bool:
        await seen.poll()
        return wanted <= {e["causationid"] for e in seen.of_type("ip.provisioned")}

    await wait_until(answered, timeout, f"answers to {len(wanted)} requests")


def assert_each_request_answered_once(
    sent: list[dict[str, Any]], provisioned: list[dict[str, Any]]
) -> None:
    ids_by_cause: dict[str, set[str]] = {}
    for event in provisioned:
        ids_by_cause.setdefault(event["causationid"], set()).add(event["id"])
    assert set(ids_by_cause) == {e["id"] for e in sent}
    # At-least-once on the wire may repeat an event, but always with the same id.
    assert all(len(ids) == 1 for ids in ids_by_cause.values())
    addresses = Counter(e["data"]["address"] for e in {e["id"]: e for e in provisioned}.values())
    assert addresses and max(addresses.values()) == 1, "an address was handed out twice"


def process_env(database: str, kafka_server: Any, prefix: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_server.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": prefix,
        "IPFLEET_INVENTORY": "global=198.51.100.0/23",
        "IPFLEET_BATCH_MAX_RECORDS": "20",
        "IPFLEET_OUTBOX_POLL_SECONDS": "0.2",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "100",
    }


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
async def test_a_provisioner_stopped_mid_stream_loses_nothing_and_duplicates_nothing(
    stop: str,
    database: str,
    kafka_server: Any,
    topic_prefix: str,
    publisher: Any,
    follow: Any,
    tmp_path: Path,
) -> None:
    sent = requests(300, "kill")
    service = ServiceProcess(
        ["provisioner"],
        process_env(database, kafka_server, topic_prefix),
        tmp_path / "provisioner.log",
    )
    service.start()

    async def started() -> bool:
        return "services started" in service.log_text()

    await wait_until(started, 90, "the provisioner to start")

    async def publish_steadily() -> None:
        # A stream still flowing when the stop comes (a backlog published up front is
        # drained in a moment), so the stop lands mid-stream.
        for event in sent:
            await publisher.send_soon(topics.IP_REQUESTED, event, key=event["data"]["account_id"])
            await asyncio.sleep(0.01)
        await publisher.flush()

    publishing = asyncio.create_task(publish_steadily())
    try:
        await wait_until(lambda: _more_than(database, 40), 90, "the first IPs")
        if stop == "SIGKILL":
            service.kill()
        else:
            # Graceful: stop fetching, finish the batch in hand, commit, exit 0.
            assert service.terminate() == 0
            assert "services stopped" in service.log_text()
        killed_at = await count_ips(database)
        assert killed_at < len(sent), "the kill came too late to test anything"
        await publishing
        service.start()
        await wait_until(lambda: _at_least(database, len(sent)), 120, "every request")
        async with follow([topics.IP_PROVISIONED]) as seen:
            await wait_for_answers(seen, sent, timeout=60)
        assert service.terminate() == 0
    finally:
        publishing.cancel()
        if service.proc and service.proc.poll() is None:
            service.proc.kill()
    assert await count_ips(database) == len(sent)
    assert_each_request_answered_once(sent, seen.of_type("ip.provisioned"))


async def test_two_replicas_given_100_concurrent_requests_hand_out_no_address_twice(
    database: str,
    kafka_server: Any,
    topic_prefix: str,
    publisher: Any,
    follow: Any,
    tmp_path: Path,
) -> None:
    env = process_env(database, kafka_server, topic_prefix)
    replicas = [ServiceProcess(["provisioner"], env, tmp_path / f"replica{i}.log") for i in (1, 2)]
    for replica in replicas:
        replica.start()
    try:
        sent = requests(100, "rep")
        futures = [
            await publisher.send_soon(topics.IP_REQUESTED, e, key=e["data"]["account_id"])
            for e in sent
        ]
        await asyncio.gather(*futures)
        await wait_until(lambda: _at_least(database, len(sent)), 120, "every request")
        async with follow([topics.IP_PROVISIONED]) as seen:
            await wait_for_answers(seen, sent, timeout=60)
        for replica in replicas:
            assert replica.terminate() == 0
    finally:
        for replica in replicas:
            if replica.proc and replica.proc.poll() is None:
                replica.proc.kill()
    assert_each_request_answered_once(sent, seen.of_type("ip.provisioned"))
    conn = await connect_schema(database, "provisioner")
    try:
        assert await conn.fetchval("SELECT count(DISTINCT address) FROM ips") == len(sent)
    finally:
        await conn.close()


async def test_postgres_restarted_mid_stream_delays_work_but_loses_none(
    postgres_server: Any,
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    database: str,
    publisher: Any,
    follow: Any,
) -> None:
    if not hasattr(postgres_server, "restart"):
        pytest.skip("needs a Postgres this test controls (the embedded one)")
    settings = settings_for(IPFLEET_BATCH_MAX_RECORDS=5)
    await start_fleet([build(settings, settings.provisioner)], settings)
    sent = requests(60, "pg")
    async with follow([topics.IP_PROVISIONED]) as seen:
        for event in sent[:20]:
            await publisher.send(topics.IP_REQUESTED, event, key=event["data"]["account_id"])
        await seen.wait_for(lambda s: True, count=5)
        await asyncio.to_thread(postgres_server.restart)
        for event in sent[20:]:
            await publisher.send(topics.IP_REQUESTED, event, key=event["data"]["account_id"])
        await wait_for_answers(seen, sent, timeout=120)
    assert await count_ips(database) == len(sent)
    assert_each_request_answered_once(sent, seen.of_type("ip.provisioned"))


async def test_replay_refuses_while_the_service_runs_and_the_service_carries_on(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Any,
    follow: Any,
    kafka_server: Any,
) -> None:
    settings = settings_for()
    await start_fleet([build(settings, settings.provisioner)], settings)
    first, later = requests(1, "live1"), requests(1, "live2")
    async with follow([topics.IP_PROVISIONED]) as seen:
        await publisher.send(topics.IP_REQUESTED, first[0], key=first[0]["data"]["account_id"])
        await wait_for_answers(seen, first, timeout=30)
        with pytest.raises(LiveMembers, match="live members"):
            await replay(
                settings,
                kafka_server.bootstrap_servers,
                topic=topics.IP_REQUESTED,
                service="provisioner",
                from_offset=0,
                join_timeout=8,
                progress=lambda _: None,
            )
        await publisher.send(topics.IP_REQUESTED, later[0], key=later[0]["data"]["account_id"])
        await wait_for_answers(seen, later, timeout=60)


async def test_replay_after_the_service_stops_reprocesses_and_changes_nothing(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    database: str,
    publisher: Any,
    follow: Any,
    kafka_server: Any,
) -> None:
    settings = settings_for()
    sent = requests(10, "replay")
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    async with follow([topics.IP_PROVISIONED]) as seen:
        for event in sent:
            await publisher.send(topics.IP_REQUESTED, event, key=event["data"]["account_id"])
        await wait_for_answers(seen, sent, timeout=60)
        await fleet.stop()

        lines: list[str] = []
        moves = await replay(
            settings,
            kafka_server.bootstrap_servers,
            topic=topics.IP_REQUESTED,
            service="provisioner",
            from_offset=0,
            progress=lines.append,
        )
        assert sum(m.to_reprocess for m in moves) == len(sent)
        assert any("to reprocess" in line for line in lines)
        assert not await _caught_up(settings, kafka_server.bootstrap_servers)

        await start_fleet([build(settings, settings.provisioner)], settings)
        # The replayed messages are read again (deduplicated) and committed again.
        await wait_until(
            lambda: _caught_up(settings, kafka_server.bootstrap_servers),
            60,
            "the replay to be consumed",
        )
        await asyncio.sleep(1.0)
        await seen.poll()
    assert await count_ips(database) == len(sent)
    assert len({e["id"] for e in seen.of_type("ip.provisioned")}) == len(sent)


async def _caught_up(settings: Settings, bootstrap: str) -> bool:
    positions = await group_positions(
        settings, bootstrap, topic=topics.IP_REQUESTED, service="provisioner"
    )
    return all(committed == end for committed, end in positions.values())


async def _more_than(dsn: str, n: int) -> bool:
    return await count_ips(dsn) > n


async def _at_least(dsn: str, n: int) -> bool:
    return await count_ips(dsn) >= n
