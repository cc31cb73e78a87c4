"""The warmup service's settings and wiring (no broker, no database)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.warmup.domain.schedules import ScheduleError, UnknownSchedule
from services.warmup.service import build
from services.warmup.settings import WarmupSettings
from shared.contract.events import IP_STATE_TYPES, POOL_STATE_TYPES, REGISTRY_TYPES
from shared.settings import Settings

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def warmup_settings(**values: object) -> WarmupSettings:
    return WarmupSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_unset_overrides_keep_the_rules_defaults() -> None:
    config = warmup_settings()
    assert config.rules() == config.rules().model_copy()
    assert config.rules().default_schedule == "standard-14"
    assert config.lateness == timedelta(minutes=5)
    assert config.sweep_lateness == timedelta(minutes=60)
    assert config.dedup_retention_days == 7


def test_rule_overrides_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFLEET_WARMUP_DEFAULT_MODE", "calendar")
    monkeypatch.setenv("IPFLEET_WARMUP_SUSPEND_MIN_SENDS", "250")
    monkeypatch.setenv("IPFLEET_WARMUP_SUSPENSION_HOURS", "12")
    monkeypatch.setenv("IPFLEET_WARMUP_IDLE_DAYS", "45")
    monkeypatch.setenv("IPFLEET_WARMUP_SCORE_WINDOW_DAYS", "14")
    monkeypatch.setenv("IPFLEET_WARMUP_LATENESS_MINUTES", "2")
    rules = warmup_settings().rules()
    assert rules.default_mode == "calendar" and rules.suspend_min_sends == 250
    assert rules.suspension_period == timedelta(hours=12)
    assert rules.idle_period == timedelta(days=45)
    assert rules.score_window_days == 14
    assert warmup_settings().lateness == timedelta(minutes=2)


def test_inconsistent_rules_refuse_to_start() -> None:
    with pytest.raises(ValidationError, match="hold_complaint_rate"):
        warmup_settings(hold_complaint_rate=0.01).rules()


def test_operator_schedules_are_loaded_beside_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "ours.toml").write_text(
        "[gentle-2]\ndays = [\n  { day = 1, daily_limit = 30, hourly_limit = 10 },\n"
        "  { day = 2, daily_limit = -1, hourly_limit = -1 },\n]\n"
    )
    config = warmup_settings(schedules_dir=tmp_path, default_schedule="gentle-2")
    schedules = config.schedules(config.rules())
    assert {"gentle-2", "standard-14", "test-3"} <= set(schedules)
    build(SETTINGS, config)


def test_an_unknown_default_schedule_or_a_bad_directory_stops_the_service(tmp_path: Path) -> None:
    with pytest.raises(UnknownSchedule):
        build(SETTINGS, warmup_settings(default_schedule="nope-1"))
    with pytest.raises(ScheduleError, match="does not exist"):
        build(SETTINGS, warmup_settings(schedules_dir=tmp_path / "missing"))


def test_the_service_subscribes_to_its_four_topics_and_dedups_sends_daily() -> None:
    service = build(SETTINGS, warmup_settings(dedup_retention_days=3))
    assert service.name == "warmup"
    by_topic = {c.topic: c for c in service.consumers}
    assert set(by_topic) == {"ip.provisioned", "ip.commands", "send.recorded", "pool.state_changed"}
    sends = by_topic["send.recorded"]
    assert sends.handle_batch is not None and sends.inbox == "daily"
    assert sends.retention_days == 3
    commands = by_topic["ip.commands"]
    assert set(commands.types) == {"ip.warmup.start", "ip.warmup.stop", "ip.warmup.resume"}
    assert "ip.release" in commands.others
    assert commands.answer_invalid is not None
    # The registry's whole lifecycle, from the provisioner; warmup writes ip.state_changed,
    # every type of it, and reads none.
    registry = by_topic["ip.provisioned"]
    assert set(registry.types) == set(REGISTRY_TYPES)
    emitted = dict(service.publishes)["ip.state_changed"]
    assert set(emitted) == set(IP_STATE_TYPES)
    assert [s.name for s in service.sweeps] == ["close-days"]
    # Its own copy of the named pools (overflow of limit events); the dynamic pools' config
    # is not its business.
    pools = by_topic["pool.state_changed"]
    assert set(pools.types) == set(POOL_STATE_TYPES)
    assert pools.others == frozenset({"dynamic_pools.configured"})
