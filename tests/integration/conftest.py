"""Fixtures over the real broker and the real Postgres.

Resolution order, as everywhere: DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set, else
testcontainers when a Docker engine answers, else the embedded Postgres and Tansu. Each test
gets its own database and its own topic prefix, so tests never see each other's events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest

from services.fleet import migrate
from services.settings import FleetSettings
from shared.client import Follower, Publisher
from shared.infrastructure import provide_kafka, provide_postgres
from shared.runtime import Fleet, Service


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    handle = provide_postgres(os.environ.get("DATABASE_URL") or None)
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[Any]:
    handle = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    yield handle
    handle.close()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def database(postgres_server: Any) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(postgres_server.url, name)
    await migrate(dsn)
    yield dsn
    admin = await asyncpg.connect(postgres_server.url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings_for(topic_prefix: str) -> Callable[..., FleetSettings]:
    """Settings for a test: its topic prefix, quick sweeps and polls, plus overrides."""

    def make(**overrides: Any) -> FleetSettings:
        values: dict[str, Any] = {
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "KAFKA_TOPIC_PARTITIONS": 3,
            "IPFLEET_SWEEP_SECONDS": 0.2,
            "IPFLEET_OUTBOX_POLL_SECONDS": 0.2,
            "IPFLEET_RETRY_MAX_SECONDS": 30,
            "IPFLEET_INVENTORY": "global=198.51.100.0/24,eu=203.0.113.0/28",
            # Short sessions: the embedded broker's first join takes about half of one.
            "KAFKA_SESSION_TIMEOUT_MS": 2000,
            "KAFKA_HEARTBEAT_INTERVAL_MS": 100,
            "KAFKA_FETCH_MAX_WAIT_MS": 10,
            # Several fleets run at once: tests that want the endpoints pick a free port.
            "IPFLEET_HTTP_PORT": 0,
        }
        values.update(overrides)
        return FleetSettings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def start_fleet(
    database: str, kafka_server: Any
) -> AsyncIterator[Callable[[list[Service], FleetSettings], Awaitable[Fleet]]]:
    """Start services in this process; all are stopped gracefully at the end of the test."""
    async with AsyncExitStack() as stack:

        async def start(services: list[Service], settings: FleetSettings) -> Fleet:
            fleet = Fleet(services, settings, database, kafka_server.bootstrap_servers)
            await fleet.start()
            stack.push_async_callback(fleet.stop)
            return fleet

        yield start


@pytest.fixture
async def publisher(
    kafka_server: Any, settings_for: Callable[..., FleetSettings], topic_prefix: str
) -> AsyncIterator[Publisher]:
    async with Publisher(settings_for(), kafka_server.bootstrap_servers, topic_prefix) as p:
        yield p


@pytest.fixture
def follow(
    kafka_server: Any, settings_for: Callable[..., FleetSettings], topic_prefix: str
) -> Iterator[Callable[[list[str]], Follower]]:
    """`async with follow([topics]) as seen:` reads those topics from the beginning."""

    def make(topics: list[str]) -> Follower:
        return Follower(settings_for(), kafka_server.bootstrap_servers, topics, topic_prefix)

    yield make
