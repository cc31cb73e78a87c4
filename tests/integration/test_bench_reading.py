"""The warmup bench's reading on the real broker: the raw ceiling and the floor with no
database read every message of the send topic, and the floor leaves the bench's collector
as it found it."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from bench.warmup import (
    floor_without_database,
    publish_sends,
    raw_ceiling,
    read_all,
    send_messages,
    setup_settings,
)
from shared.contract import topics
from shared.kafka import ensure_topics

pytestmark = pytest.mark.integration

N = 600
IPS = [{"account_id": f"acct_{i // 5}", "address": f"198.51.100.{i + 1}"} for i in range(10)]


async def test_the_ceiling_and_the_floor_read_every_send_once(
    kafka_server: Any, topic_prefix: str
) -> None:
    settings = setup_settings(topic_prefix, 3, len(IPS))
    bootstrap = kafka_server.bootstrap_servers
    await ensure_topics(settings, bootstrap, [topic_prefix + topics.SEND_RECORDED])
    await publish_sends(settings, bootstrap, IPS, N, 1.0)

    seen: list[bytes] = []
    assert await read_all(settings, bootstrap, N, lambda rs: seen.extend(r.value for r in rs)) > 0
    assert sorted(seen) == sorted(value for _, value in send_messages(IPS, N, 1.0))

    assert await raw_ceiling(settings, bootstrap, N) > 0
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert await floor_without_database(settings, bootstrap, N) > 0
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == (threshold, frozen, True)
