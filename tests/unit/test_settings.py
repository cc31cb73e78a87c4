import pytest
from pydantic import ValidationError

from services.provisioner.settings import parse_inventory
from services.settings import FleetSettings as Settings


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
