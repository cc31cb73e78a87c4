"""The embedded Postgres and Kafka-compatible broker, and the Docker check, on this machine."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.embedded import EmbeddedKafka, EmbeddedPostgres
from shared.infrastructure import docker_available, provide_kafka, provide_postgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture(scope="module")
def embedded_kafka() -> Iterator[EmbeddedKafka]:
    with EmbeddedKafka() as broker:
        yield broker


async def _query(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_postgres_answers_queries_on_its_database(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    assert embedded_postgres.url == (
        f"postgresql://postgres@127.0.0.1:{embedded_postgres.port}/ipfleet"
    )
    assert await _query(embedded_postgres.url, "SELECT current_database()") == "ipfleet"
    assert await _query(embedded_postgres.url, "SELECT 40 + 2") == 42


async def test_postgres_restart_keeps_port_and_data(embedded_postgres: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(embedded_postgres.url)
    await conn.execute("CREATE TABLE survives (x int); INSERT INTO survives VALUES (7)")
    port = embedded_postgres.port

    embedded_postgres.restart()

    # The old connection was cut by the outage; new ones reach the same data on the same port.
    with pytest.raises((asyncpg.PostgresError, OSError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1")
    await conn.close(timeout=1)
    assert embedded_postgres.port == port
    assert await _query(embedded_postgres.url, "SELECT sum(x) FROM survives") == 7


async def test_kafka_round_trips_a_message(embedded_kafka: EmbeddedKafka) -> None:
    topic = f"embedded-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=embedded_kafka.bootstrap_servers, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"k", headers=[("h", b"v")])
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=embedded_kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert (message.key, message.value, message.headers) == (b"k", b"hello", (("h", b"v"),))


def test_docker_is_reported_absent_quickly() -> None:
    started = time.monotonic()
    assert docker_available() is False
    assert time.monotonic() - started < 2.0


def test_explicit_settings_win_and_start_nothing() -> None:
    with provide_postgres("postgresql://u@db.example:5432/x") as db:
        assert (db.kind, db.url) == ("explicit", "postgresql://u@db.example:5432/x")
        assert not hasattr(db, "restart")
    with provide_kafka("kafka.example:9092") as kafka:
        assert (kafka.kind, kafka.bootstrap_servers) == ("explicit", "kafka.example:9092")


async def test_without_docker_the_embedded_defaults_are_provided() -> None:
    if docker_available():
        pytest.skip("a Docker engine answers here: testcontainers would be chosen")
    with provide_postgres(None) as db, provide_kafka(None) as kafka:
        assert (db.kind, kafka.kind) == ("embedded", "embedded")
        assert hasattr(db, "restart")
        assert await _query(db.url, "SELECT current_database()") == "ipfleet"
        assert kafka.bootstrap_servers.startswith("127.0.0.1:")
