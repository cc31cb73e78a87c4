"""`ipfleet watch` over the real broker: the view built from the emitted events alone,
rendered to a string."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.reputation.service import build as build_reputation
from services.settings import FleetSettings as Settings
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from shared.watch import CLEAR, Watcher, render, watch
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_watch_shows_each_ip_and_pool_moves_and_follows_live(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    kafka_server: Any,
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    settings = settings_for()
    services = [
        build_provisioner(settings, settings.provisioner),
        build_warmup(settings, WarmupSettings(_env_file=None)),  # type: ignore[call-arg]
        build_reputation(settings),
    ]
    await start_fleet(services, settings)
    async with follow([topics.IP_STATE_CHANGED, topics.POOL_STATE_CHANGED]) as seen:
        for account, data in [
            ("acct_w1", {"plan": "max"}),
            ("acct_w2", {"plan": "max"}),
        ]:
            event = cloud_event("ip.requested", {"account_id": account, **data})
            await publisher.send(topics.IP_REQUESTED, event, key=account)
        create = cloud_event("pool.create", {"account_id": "acct_w1", "name": "marketing"})
        await publisher.send(topics.IP_COMMANDS, create, key="acct_w1")
        await seen.wait_for(lambda s: s.event["type"] == "ip.warmup_started", count=2)
        await seen.wait_for(lambda s: s.event["type"] == "pool.created")
        ip_w1 = next(
            e["data"]["ip_id"]
            for e in seen.of_type("ip.warmup_started")
            if e["data"]["account_id"] == "acct_w1"
        )

    async with Watcher(settings, bootstrap) as watcher:
        await watcher.catch_up()
        screen = render(watcher.view)
        lines = screen.splitlines()
        [w1] = [line for line in lines if line.startswith("acct_w1")]
        assert ip_w1 in w1 and "warming" in w1 and "ip.warmup_started" in w1
        assert w1.split()[5] == "1"  # warm-up day 1
        [w2] = [line for line in lines if line.startswith("acct_w2")]
        assert "warming" in w2 and ip_w1 not in w2
        assert "pool marketing: created" in screen
        assert "2 IPs" in lines[0]

        assert "(no IP matches)" in render(watcher.view, status="suspended")
        assert "acct_w2" in render(watcher.view, status="warming")
        only_w1 = render(watcher.view, account="acct_w1")
        assert "acct_w2" not in only_w1 and "[account=acct_w1]" in only_w1

        # Live: the next change arrives and the view follows.
        add = cloud_event(
            "pool.add_ip", {"account_id": "acct_w1", "name": "marketing", "ip_id": ip_w1}
        )
        await publisher.send(topics.IP_COMMANDS, add, key="acct_w1")

        async def followed() -> bool:
            await watcher.poll(200)
            return f"pool marketing: ip added {ip_w1}" in render(watcher.view)

        await wait_until(followed, 30, "the pool move to show")

    frames: list[str] = []
    last = await watch(
        settings, bootstrap, account="acct_w1", frames=range(2), refresh=0.2, echo=frames.append
    )
    assert len(frames) == 2 and all(f.startswith(CLEAR) for f in frames)
    assert ip_w1 in last

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "LOG_LEVEL": "WARNING",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services", "watch", "--once", "--status", "warming"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("recent pool moves")[0]
    assert ip_w1 in table and "acct_w2" in table
