"""/metrics of a running process, over the real broker and real Postgres: what the pipeline
and the relay count per batch, and what is read on scrape (lag, backlog, watermark, each
service's own gauges)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.reputation.service import build as build_reputation
from services.settings import FleetSettings as Settings
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared import database as schemas
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from tests.integration.http import free_port, get, sample
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def scrape(port: int) -> str:
    status, body = await get(port, "/metrics")
    assert status == 200
    return body


async def wait_for_sample(port: int, name: str, want: float, **labels: str) -> str:
    last: list[float | None] = [None]

    async def reached() -> bool:
        last[0] = sample(await scrape(port), name, **labels)
        return last[0] == want

    await wait_until(reached, 30, f"{name}{labels} == {want} (last {last[0]})")
    return await scrape(port)


async def test_counts_applied_duplicates_and_dead_letters_per_batch(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
) -> None:
    settings = settings_for(
        IPFLEET_HTTP_PORT=free_port(),
        IPFLEET_HTTP_HOST="127.0.0.1",
        IPFLEET_METRICS_REFRESH_SECONDS=0,
    )
    fleet = await start_fleet([build_provisioner(settings, settings.provisioner)], settings)
    port = fleet.ops.port
    where = {"service": "provisioner", "topic": "ip.requested"}
    requests = [
        cloud_event("ip.requested", {"account_id": f"acct_m{i}", "plan": "enterprise"}, time=T0)
        for i in range(3)
    ]
    async with follow([topics.IP_PROVISIONED]) as seen:
        for request in [*requests, requests[0]]:  # the last one is a duplicate
            await publisher.send(topics.IP_REQUESTED, request, key=request["data"]["account_id"])
        await publisher.send(topics.IP_REQUESTED, b"{not json", key="acct_m0")
        bogus = cloud_event("ip.bogus", {"account_id": "acct_m0"})
        await publisher.send(topics.IP_REQUESTED, bogus, key="acct_m0")
        await seen.wait_for(lambda s: s.event["type"] == "ip.provisioned", count=3)

    text = await wait_for_sample(
        port, "ipfleet_events_applied_total", 3, **where, type="ip.requested"
    )
    assert sample(text, "ipfleet_events_duplicate_total", **where) == 1
    # A type the topic does not carry is not a label value: it reads "unknown".
    assert (
        sample(
            text,
            "ipfleet_events_dead_lettered_total",
            **where,
            type="unknown",
            reason="InvalidJson",
        )
        == 1
    )
    assert (
        sample(
            text,
            "ipfleet_events_dead_lettered_total",
            **where,
            type="unknown",
            reason="UnknownEventType",
        )
        == 1
    )
    assert "ip.bogus" not in text
    batches = sample(text, "ipfleet_batch_size_count", **where)
    assert batches is not None and batches >= 1
    assert sample(text, "ipfleet_batch_size_sum", **where) == 6
    assert (sample(text, "ipfleet_batch_apply_seconds_count", **where) or 0) == batches
    assert (sample(text, "ipfleet_relay_published_events_total", service="provisioner") or 0) >= 5
    assert (sample(text, "ipfleet_relay_publish_seconds_count", service="provisioner") or 0) >= 1
    # Read on scrape.
    # The partition clocks: the furthest read, and (once the partitions nothing was sent to
    # are seen caught up) the slowest, both T0 here.
    furthest = {"service": "provisioner", "clock": "furthest"}
    assert sample(text, "ipfleet_event_time_watermark_seconds", **furthest) == T0.timestamp()
    trailing = sample(text, "ipfleet_event_time_lag_seconds", **furthest)
    assert trailing is not None and abs(trailing - (time.time() - T0.timestamp())) < 60
    slowest = {"service": "provisioner", "clock": "slowest"}
    text = await wait_for_sample(
        port, "ipfleet_event_time_watermark_seconds", T0.timestamp(), **slowest
    )
    trailing = sample(text, "ipfleet_event_time_lag_seconds", **slowest)
    assert trailing is not None and abs(trailing - (time.time() - T0.timestamp())) < 60
    assert sample(text, "ipfleet_outbox_pending", service="provisioner") is not None
    assert sample(text, "ipfleet_outbox_oldest_age_seconds", service="provisioner") is not None
    for partition in range(3):
        lag = sample(text, "ipfleet_consumer_lag", **where, partition=str(partition))
        assert lag is not None and lag >= 0


async def test_lag_shows_what_is_not_committed_yet(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    database: str,
) -> None:
    """With the inbox locked the batch cannot commit: the messages behind it are lag."""
    settings = settings_for(
        IPFLEET_HTTP_PORT=free_port(),
        IPFLEET_HTTP_HOST="127.0.0.1",
        IPFLEET_METRICS_REFRESH_SECONDS=0,
        KAFKA_TOPIC_PARTITIONS=1,
    )
    fleet = await start_fleet([build_provisioner(settings, settings.provisioner)], settings)
    port = fleet.ops.port
    where = {"service": "provisioner", "topic": "ip.requested", "partition": "0"}
    await wait_for_sample(port, "ipfleet_consumer_lag", 0, **where)
    blocker = await schemas.connect(database, "provisioner")
    locked = blocker.transaction()
    await locked.start()
    await blocker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")
    try:
        for i in range(5):
            event = cloud_event("ip.requested", {"account_id": f"acct_l{i}", "plan": "max"})
            await publisher.send(topics.IP_REQUESTED, event, key=f"acct_l{i}")

        async def lagging() -> bool:
            return (sample(await scrape(port), "ipfleet_consumer_lag", **where) or 0) >= 4

        # >= 4, not 5: the embedded broker's end offset can read one low.
        await wait_until(lagging, 30, "lag of the locked batch")
    finally:
        await locked.rollback()
        await blocker.close()
    await wait_for_sample(port, "ipfleet_consumer_lag", 0, **where)


async def test_service_gauges_warmup_ips_and_domain_moves(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    database: str,
) -> None:
    settings = settings_for(
        IPFLEET_HTTP_PORT=free_port(),
        IPFLEET_HTTP_HOST="127.0.0.1",
        IPFLEET_METRICS_REFRESH_SECONDS=0,
    )
    services = [
        build_provisioner(settings, settings.provisioner),
        build_warmup(settings, WarmupSettings(_env_file=None)),  # type: ignore[call-arg]
        build_reputation(settings),
    ]
    fleet = await start_fleet(services, settings)
    port = fleet.ops.port
    for i in range(2):
        event = cloud_event("ip.requested", {"account_id": f"acct_w{i}", "plan": "max"})
        await publisher.send(topics.IP_REQUESTED, event, key=f"acct_w{i}")
    text = await wait_for_sample(port, "ipfleet_warmup_ips", 2, service="warmup", status="warming")

    # The reputation service's history, as its handlers write it (driving dynamic pools
    # end to end is test_reputation's business): the reason sentence becomes a class.
    conn = await schemas.connect(database, "reputation")
    try:
        rows = [
            ("Domain enrolled", "operator", True),
            ("Moved to dynamic_poor: bounce rate 9.0% is poor", "system", True),
            ("Moved to dynamic_good: bounce rate 0.1% is good", "system", True),
            ("Override set", "override", False),  # set to the pool it was in: no move
        ]
        for n, (reason, by, changes) in enumerate(rows):
            await conn.execute(
                "INSERT INTO domain_history (id, domain, account_id, reason, initiated_by, "
                "changes_pool, occurred_at, cause_id) VALUES ($1, 'shop.example', 'acct_w0', "
                "$2, $3, $4, $5, $1)",
                uuid.uuid4().hex,
                reason,
                by,
                changes,
                T0 + timedelta(minutes=n),
            )
    finally:
        await conn.close()
    text = await wait_for_sample(
        port,
        "ipfleet_domain_moves",
        2,
        service="reputation",
        reason="health_check",
        initiated_by="system",
    )
    assert (
        sample(
            text,
            "ipfleet_domain_moves",
            service="reputation",
            reason="enrolled",
            initiated_by="operator",
        )
        == 1
    )
    assert 'reason="override_set"' not in text
    assert "shop.example" not in text and "acct_w0" not in text
    for service in ("provisioner", "warmup", "reputation"):
        assert sample(text, "ipfleet_outbox_pending", service=service) is not None
