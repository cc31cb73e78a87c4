"""`ipfleet status` over the real broker and real Postgres, read from the outside."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from services.provisioner.service import build
from services.settings import FleetSettings as Settings
from shared import status
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def test_status_shows_members_lag_outbox_watermark_and_dead_letters(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    kafka_server: Any,
    database: str,
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    # One partition per topic: the slowest clock is known once every partition has been read.
    settings = settings_for(KAFKA_TOPIC_PARTITIONS=1)
    service = build(settings, settings.provisioner)
    await start_fleet([service], settings)
    async with follow([topics.IP_PROVISIONED]) as seen:
        event = cloud_event("ip.requested", {"account_id": "acct_s", "plan": "max"}, time=T0)
        await publisher.send(topics.IP_REQUESTED, event, key="acct_s")
        await publisher.send(topics.IP_REQUESTED, b"nope", key="acct_s")
        await seen.wait_for(lambda s: s.event["type"] == "ip.provisioned")

    found: list[status.ServiceStatus] = []

    async def settled() -> bool:
        found[:] = await status.gather(settings, bootstrap, database, [service])
        s = found[0]
        return (
            s.outbox_pending == 0
            and all(sub.lag == 0 for sub in s.subscriptions)
            and s.dead_letters_24h.get(topics.IP_REQUESTED) == 1
            # Once every partition of ip.requested has been read.
            and s.slowest_watermark is not None
        )

    await wait_until(settled, 30, "status to settle")
    [s] = found
    assert s.service == "provisioner"
    assert [sub.topic for sub in s.subscriptions] == [c.topic for c in service.consumers]
    assert all(sub.members == 1 for sub in s.subscriptions)
    requested = s.subscriptions[0]
    assert set(requested.partitions) == {0}
    assert sum(p["committed"] or 0 for p in requested.partitions.values()) == 2
    assert s.watermark == s.slowest_watermark == T0  # the furthest and the slowest clock
    assert s.slowest_behind_seconds is not None and s.slowest_behind_seconds > 0
    assert s.dead_letter_reasons_24h == {topics.IP_REQUESTED: {"InvalidJson": 1}}

    screen = status.render(found)
    assert "== provisioner" in screen and "ip.requested" in screen
    assert "dead letters (24 h): ip.requested: 1 (InvalidJson 1)" in screen
    assert "event time: furthest 2026-11-23T10:00:00Z" in screen
    assert "slowest  2026-11-23T10:00:00Z" in screen

    env = {
        **os.environ,
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "LOG_LEVEL": "WARNING",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services", "status", "provisioner", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [shown] = json.loads(done.stdout)
    assert shown["service"] == "provisioner"
    assert shown["dead_letters_24h"][topics.IP_REQUESTED] == 1
    assert shown["watermark"] == shown["slowest_watermark"] == T0.isoformat()
    assert {sub["topic"] for sub in shown["subscriptions"]} == {
        topics.IP_REQUESTED,
        topics.IP_COMMANDS,
    }
