"""Health probes of a running process, over the real broker and real Postgres: readiness
follows group membership and the database, liveness a blocked loop and a stuck batch."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from services.fleet import migrate
from services.provisioner.service import build
from services.settings import FleetSettings as Settings
from shared import database as schemas
from shared.client import cloud_event
from shared.contract import topics
from shared.operations import HttpPortTaken
from shared.runtime import Fleet
from tests.integration.http import free_port, get, get_now, probe
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration


def served(settings_for: Callable[..., Settings], **overrides: Any) -> Settings:
    return settings_for(IPFLEET_HTTP_PORT=free_port(), IPFLEET_HTTP_HOST="127.0.0.1", **overrides)


async def wait_for_status(port: int, path: str, status: int, timeout: float = 30) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def answered() -> bool:
        code, body = await probe(port, path)
        seen.update(body, code=code)
        return code == status

    await wait_until(answered, timeout, f"{path} to answer {status} (last: {seen})")
    return seen


async def test_ready_once_every_subscription_joined_and_live(
    start_fleet: Any, settings_for: Callable[..., Settings]
) -> None:
    settings = served(settings_for)
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    port = fleet.ops.port
    ready = await wait_for_status(port, "/health/ready", 200)
    assert ready["checks"]["database"] == "ok"
    assert {k for k, v in ready["checks"].items() if v == "joined"} == {
        f"provisioner/{c.topic}" for c in build(settings, settings.provisioner).consumers
    }
    status, live = await probe(port, "/health/live")
    assert status == 200 and live["checks"] == {"event_loop": "ok"}
    status, _ = await get(port, "/nowhere")
    assert status == 404


async def test_not_ready_while_stopping(
    start_fleet: Any, settings_for: Callable[..., Settings]
) -> None:
    settings = served(settings_for)
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    await wait_for_status(fleet.ops.port, "/health/ready", 200)
    fleet.ops.probes.stopping = True
    status, body = await probe(fleet.ops.port, "/health/ready")
    assert status == 503 and body["checks"]["process"] == "stopping"


async def test_a_taken_port_stops_the_start_with_a_clear_error(
    database: str, kafka_server: Any, settings_for: Callable[..., Settings]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        settings = settings_for(IPFLEET_HTTP_PORT=port, IPFLEET_HTTP_HOST="127.0.0.1")
        fleet = Fleet(
            [build(settings, settings.provisioner)],
            settings,
            database,
            kafka_server.bootstrap_servers,
        )
        with pytest.raises(HttpPortTaken, match=f"127.0.0.1:{port}.*IPFLEET_HTTP_PORT"):
            await fleet.start()
        assert fleet.pools == {}  # nothing else was started

        # The same through `ipfleet run`: exit code 2 and the message, at once.
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_server.bootstrap_servers,
            "IPFLEET_HTTP_PORT": str(port),
            "IPFLEET_HTTP_HOST": "127.0.0.1",
            "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        }
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services", "run", "provisioner"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr.decode()
    assert "IPFLEET_HTTP_PORT" in done.stderr.decode()


async def test_port_zero_serves_nothing(
    start_fleet: Any, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(IPFLEET_HTTP_PORT=0)
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    assert fleet.ops.port is None


async def test_live_fails_while_the_event_loop_is_blocked(
    start_fleet: Any, settings_for: Callable[..., Settings]
) -> None:
    settings = served(settings_for, IPFLEET_LIVENESS_LOOP_STALL_SECONDS=0.5)
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    port = fleet.ops.port
    await wait_for_status(port, "/health/live", 200)

    answers: list[tuple[int, str]] = []

    def probe_meanwhile() -> None:
        time.sleep(1.2)
        answers.append(get_now(port, "/health/live"))

    prober = asyncio.get_running_loop().run_in_executor(None, probe_meanwhile)
    time.sleep(2.5)  # noqa: ASYNC251 - blocking the loop is the point
    await prober
    status, body = answers[0]
    assert status == 503 and "event_loop" in body and "blocked" in body
    await wait_for_status(port, "/health/live", 200, timeout=5)


async def test_live_fails_while_a_batch_is_stuck_past_its_retry_budget(
    start_fleet: Any, settings_for: Callable[..., Settings], publisher: Any, database: str
) -> None:
    settings = served(
        settings_for, IPFLEET_RETRY_MAX_SECONDS=0.5, IPFLEET_LIVENESS_BATCH_GRACE_SECONDS=1
    )
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    port = fleet.ops.port
    await wait_for_status(port, "/health/ready", 200)

    # Another session holds the inbox: the batch's claim waits on the lock, without an
    # error to retry or give up on: the pipeline is stuck on that batch.
    blocker = await schemas.connect(database, "provisioner")
    locked = blocker.transaction()
    await locked.start()
    await blocker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")
    try:
        request = cloud_event("ip.requested", {"account_id": "acct_stuck", "plan": "enterprise"})
        await publisher.send(topics.IP_REQUESTED, request, key="acct_stuck")
        body = await wait_for_status(port, "/health/live", 503, timeout=30)
        assert "one batch in hand" in body["checks"]["provisioner/ip.requested"]
    finally:
        await locked.rollback()
        await blocker.close()
    await wait_for_status(port, "/health/live", 200, timeout=30)


async def test_ready_follows_the_database_down_and_back(
    kafka_server: Any, settings_for: Callable[..., Settings]
) -> None:
    embedded = pytest.importorskip("shared.embedded", reason="needs the embedded extra")
    server = embedded.EmbeddedPostgres().start()
    fleet: Fleet | None = None
    try:
        await migrate(server.url)
        settings = served(settings_for)
        fleet = Fleet(
            [build(settings, settings.provisioner)],
            settings,
            server.url,
            kafka_server.bootstrap_servers,
        )
        await fleet.start()
        port = fleet.ops.port
        await wait_for_status(port, "/health/ready", 200)

        await asyncio.to_thread(server.stop)
        body = await wait_for_status(port, "/health/ready", 503, timeout=15)
        assert body["checks"]["database"] != "ok"
        status, _ = await probe(port, "/health/live")
        assert status == 200  # a database outage is not cured by a restart

        await asyncio.to_thread(server.start)
        body = await wait_for_status(port, "/health/ready", 200, timeout=30)
        assert body["checks"]["database"] == "ok"
    finally:
        if fleet is not None:
            await fleet.stop()
        await asyncio.to_thread(server.close)


async def test_probes_and_scrapes_at_once_all_answer(
    start_fleet: Any, settings_for: Callable[..., Settings]
) -> None:
    """Readiness and metrics read Postgres on connections of their own, one reader each."""
    settings = served(settings_for, IPFLEET_METRICS_REFRESH_SECONDS=0)
    fleet = await start_fleet([build(settings, settings.provisioner)], settings)
    port = fleet.ops.port
    await wait_for_status(port, "/health/ready", 200)
    paths = ["/metrics", "/health/ready", "/health/live"] * 6
    answers = await asyncio.gather(*(get(port, path) for path in paths))
    assert [status for status, _ in answers] == [200] * len(paths)
