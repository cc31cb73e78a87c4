"""Kafka clients built from settings: the FastStream broker, a raw producer for the outbox
relay, and topic creation."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from shared.settings import Settings

log = structlog.get_logger(__name__)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def client_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """aiokafka connection options (bootstrap, TLS, SASL) shared by every client."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = _ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None
        )
    return options


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same TLS/SASL settings in FastStream's terms."""
    context = _ssl_context(settings)
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        username = settings.kafka_sasl_username or ""
        password = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        )
        kind = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[settings.kafka_sasl_mechanism]
        return kind(username=username, password=password, ssl_context=context)
    if context is not None:
        return BaseSecurity(ssl_context=context)
    return None


class _ConcurrentStartBroker(KafkaBroker):
    """FastStream's KafkaBroker, but its subscribers start concurrently.

    FastStream 0.7 starts them one after another, and an aiokafka consumer's start() returns
    only once its group has assigned it partitions: N subscriptions cost N group joins back to
    back (Tansu holds each join for half the session timeout, Kafka an empty group's for
    group.initial.rebalance.delay.ms). Each subscription is its own consumer in its own group,
    so nothing needs them in order. The rest is FastStream's start(): connect, publishers,
    running."""

    async def start(self) -> None:
        await self.connect()
        await asyncio.gather(*(subscriber.start() for subscriber in self.subscribers))
        for publisher in self.publishers:
            await publisher.start()
        self.running = True


def make_broker(settings: Settings, bootstrap: str, client_id: str) -> KafkaBroker:
    return _ConcurrentStartBroker(
        bootstrap,
        security=broker_security(settings),
        client_id=client_id,
        graceful_timeout=30.0,
        # The relay publishes through its own producer; this one serves docs and tools.
        enable_idempotence=False,
        logger=None,
    )


def make_producer(settings: Settings, bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings, bootstrap),
        client_id=client_id,
        acks="all",
        # Tansu has no InitProducerId; duplicates are absorbed by consumers' inboxes anyway.
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(
    settings: Settings, bootstrap: str, topics: Iterable[str], partitions: int | None = None
) -> None:
    """Create missing topics. Production clusters usually pre-create them: then this is a
    no-op (or disable it with KAFKA_CREATE_TOPICS=false)."""
    admin = AIOKafkaAdminClient(**client_options(settings, bootstrap), client_id="ipfleet-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                t,
                num_partitions=partitions or settings.kafka_topic_partitions,
                replication_factor=settings.kafka_replication_factor,
            )
            for t in dict.fromkeys(topics)
            if t not in existing
        ]
        if wanted:
            try:
                response = await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                return
            # Errors come back per topic inside the response, not as exceptions.
            for error in getattr(response, "topic_errors", ()):
                name, code = error[0], error[1]
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
            log.info("topics created", topics=[t.name for t in wanted])
    finally:
        await admin.close()
