"""Each subscription's batch and fetch settings: its own defaults on a fresh install, the
fleet-wide variable when one is set explicitly."""

from __future__ import annotations

from typing import Any

from services.provisioner.service import REQUEST_FETCH_MAX_WAIT_MS
from services.provisioner.service import build as build_provisioner
from services.settings import FleetSettings
from services.warmup.service import SEND_BATCH_MAX_RECORDS, build
from services.warmup.settings import WarmupSettings
from shared.consumer import Consumer
from shared.contract import topics
from shared.runtime import subscription_options
from shared.settings import Settings


def _settings(**values: Any) -> FleetSettings:
    return FleetSettings(_env_file=None, **values)  # type: ignore[arg-type]


def _options(settings: FleetSettings) -> dict[str, dict[str, int]]:
    service = build(settings, WarmupSettings(_env_file=None))
    return {c.topic: subscription_options(c, settings) for c in service.consumers}


def test_on_a_fresh_install_send_recorded_takes_its_own_batch_size_and_the_rest_the_fleets(
    monkeypatch: Any,
) -> None:
    monkeypatch.delenv("IPFLEET_BATCH_MAX_RECORDS", raising=False)
    defaults = Settings.model_fields
    options = _options(_settings())
    assert options[topics.SEND_RECORDED]["batch_max_records"] == SEND_BATCH_MAX_RECORDS
    for topic in (topics.IP_PROVISIONED, topics.IP_COMMANDS):
        assert options[topic] == {
            "batch_max_records": defaults["batch_max_records"].default,
            "batch_timeout_ms": defaults["batch_timeout_ms"].default,
            "fetch_max_wait_ms": defaults["kafka_fetch_max_wait_ms"].default,
            "max_partition_fetch_bytes": defaults["kafka_max_partition_fetch_bytes"].default,
        }
    # Only the batch size is its own: the other settings are the fleet's.
    assert {k: v for k, v in options[topics.SEND_RECORDED].items() if k != "batch_max_records"} == {
        k: v for k, v in options[topics.IP_COMMANDS].items() if k != "batch_max_records"
    }


def test_a_fleet_wide_variable_set_explicitly_applies_to_every_subscription() -> None:
    options = _options(_settings(IPFLEET_BATCH_MAX_RECORDS=1, KAFKA_FETCH_MAX_WAIT_MS=10))
    assert {o["batch_max_records"] for o in options.values()} == {1}
    assert {o["fetch_max_wait_ms"] for o in options.values()} == {10}


def test_from_the_environment_too(monkeypatch: Any) -> None:
    monkeypatch.setenv("IPFLEET_BATCH_MAX_RECORDS", "300")
    options = _options(_settings())
    assert {o["batch_max_records"] for o in options.values()} == {300}


def test_a_subscription_without_its_own_defaults_takes_the_fleets() -> None:
    async def handle(*_: Any) -> list[Any]:
        return []

    consumer = Consumer(service="s", topic="t", types={}, handle=handle)
    settings = _settings(IPFLEET_BATCH_TIMEOUT_MS=7)
    assert subscription_options(consumer, settings) == {
        "batch_max_records": settings.batch_max_records,
        "batch_timeout_ms": 7,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "max_partition_fetch_bytes": settings.kafka_max_partition_fetch_bytes,
    }


def _provisioner_options(settings: FleetSettings) -> dict[str, dict[str, int]]:
    service = build_provisioner(settings, settings.provisioner)
    return {c.topic: subscription_options(c, settings) for c in service.consumers}


def test_ip_requested_takes_its_own_fetch_wait_and_ip_commands_the_fleets(
    monkeypatch: Any,
) -> None:
    monkeypatch.delenv("KAFKA_FETCH_MAX_WAIT_MS", raising=False)
    options = _provisioner_options(_settings())
    assert options[topics.IP_REQUESTED]["fetch_max_wait_ms"] == REQUEST_FETCH_MAX_WAIT_MS
    assert (
        options[topics.IP_COMMANDS]["fetch_max_wait_ms"]
        == Settings.model_fields["kafka_fetch_max_wait_ms"].default
    )
    # Set explicitly, the fleet-wide variable still wins.
    explicit = _provisioner_options(_settings(KAFKA_FETCH_MAX_WAIT_MS=250))
    assert {o["fetch_max_wait_ms"] for o in explicit.values()} == {250}
