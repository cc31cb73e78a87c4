import pytest
from pydantic import ValidationError

from services.provisioner.settings import parse_inventory
from services.settings import FleetSettings as Settings
from services.settings import all_env_names


def test_inventory_pairs_parse_per_region() -> None:
    pairs = parse_inventory("global=198.51.100.0/24, eu=203.0.113.0/24")
    assert [(r, str(n)) for r, n in pairs] == [
        ("global", "198.51.100.0/24"),
        ("eu", "203.0.113.0/24"),
    ]


@pytest.mark.parametrize("raw", ["mars=198.51.100.0/24", "198.51.100.0/24", "eu=not-a-range"])
def test_bad_inventory_is_a_clear_error(raw: str) -> None:
    with pytest.raises((ValueError, ValidationError)):
        Settings(_env_file=None, IPFLEET_INVENTORY=raw)  # type: ignore[call-arg]


def test_default_quotas_follow_the_plans() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.provisioner.quotas == {"free": 0, "pro": 0, "max": 1, "enterprise": 5}


def test_secrets_never_show_in_repr() -> None:
    settings = Settings(
        _env_file=None,
        DATABASE_URL="postgresql://u:hunter2@db/x",  # type: ignore[call-arg]
        KAFKA_SASL_PASSWORD="s3cret",
    )
    assert "hunter2" not in repr(settings) and "s3cret" not in repr(settings)


def test_default_group_timeouts_suit_kafka_and_detect_a_dead_member_soon() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    # A stock Kafka broker refuses sessions under 6 s (group.min.session.timeout.ms).
    assert 6_000 <= settings.kafka_session_timeout_ms <= 10_000
    assert settings.kafka_heartbeat_interval_ms * 3 <= settings.kafka_session_timeout_ms


def test_each_service_has_its_settings_nested_under_the_same_variable_names() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        IPFLEET_INVENTORY="eu=203.0.113.0/28",
        IPFLEET_QUOTA_MAX=3,
        IPFLEET_COOLDOWN_HOURS=2,
        IPFLEET_WARMUP_LATENESS_MINUTES=7,
        KAFKA_TOPIC_PREFIX="x.",
    )
    assert settings.provisioner.inventory == "eu=203.0.113.0/28"
    assert settings.provisioner.quotas["max"] == 3
    assert settings.provisioner.cooldown.total_seconds() == 7200
    assert settings.warmup.lateness_minutes == 7
    assert settings.kafka_topic_prefix == "x."


def test_a_service_uses_its_own_database_else_the_fleets() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL="postgresql://u:p@db/fleet",
        IPFLEET_WARMUP_DATABASE_URL="postgresql://u:p@db/warmup",
    )
    assert settings.database_for("warmup") == "postgresql://u:p@db/warmup"
    assert settings.database_for("provisioner") == "postgresql://u:p@db/fleet"
    assert settings.database_for("reputation") == "postgresql://u:p@db/fleet"
    alone = Settings(_env_file=None, IPFLEET_REPUTATION_DATABASE_URL="postgresql://r@db/r")  # type: ignore[call-arg]
    assert alone.database_for("reputation") == "postgresql://r@db/r"
    assert alone.database_for("provisioner") is None


def test_the_variable_names_of_before_the_split_are_all_still_read() -> None:
    before = {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC_PREFIX",
        "IPFLEET_INVENTORY",
        "IPFLEET_QUOTA_FREE",
        "IPFLEET_QUOTA_PRO",
        "IPFLEET_QUOTA_MAX",
        "IPFLEET_QUOTA_ENTERPRISE",
        "IPFLEET_COOLDOWN_HOURS",
        "IPFLEET_BATCH_MAX_RECORDS",
        "IPFLEET_RETRY_MAX_SECONDS",
        "IPFLEET_SWEEP_SECONDS",
        "IPFLEET_DEV_DATA_DIR",
        "IPFLEET_WARMUP_SCHEDULES_DIR",
        "IPFLEET_WARMUP_DEDUP_RETENTION_DAYS",
        "LOG_FORMAT",
    }
    assert before <= all_env_names()
