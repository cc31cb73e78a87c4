"""The provisioner's own settings: the address inventory, plan quotas, the cooldown, and its
database (`IPFLEET_PROVISIONER_DATABASE_URL`, else `DATABASE_URL`)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from pydantic import Field, SecretStr, field_validator

from shared.settings import ServiceSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_inventory(raw: str) -> list[tuple[str, Network]]:
    """Parse `region=CIDR,region=CIDR` into pairs; raises ValueError with the bad item."""
    pairs: list[tuple[str, Network]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        region, sep, cidr = item.partition("=")
        if not sep or region.strip() not in ("global", "eu"):
            raise ValueError(f"inventory item {item!r} must look like 'global=198.51.100.0/24'")
        pairs.append((region.strip(), ipaddress.ip_network(cidr.strip(), strict=False)))
    return pairs


class ProvisionerSettings(ServiceSettings):
    database_url: SecretStr | None = Field(
        default=None, validation_alias="IPFLEET_PROVISIONER_DATABASE_URL"
    )
    inventory: str = Field(default="", validation_alias="IPFLEET_INVENTORY")
    quota_free: int = Field(default=0, ge=0, validation_alias="IPFLEET_QUOTA_FREE")
    quota_pro: int = Field(default=0, ge=0, validation_alias="IPFLEET_QUOTA_PRO")
    quota_max: int = Field(default=1, ge=0, validation_alias="IPFLEET_QUOTA_MAX")
    quota_enterprise: int = Field(default=5, ge=0, validation_alias="IPFLEET_QUOTA_ENTERPRISE")
    cooldown_hours: float = Field(default=24.0, ge=0, validation_alias="IPFLEET_COOLDOWN_HOURS")
    # A cooldown ends once its partition's clock is this far past its end, so a command a
    # little late (published after a later one of another account) still finds it in cooldown.
    cooldown_lateness_minutes: float = Field(
        default=5.0, ge=0, validation_alias="IPFLEET_COOLDOWN_LATENESS_MINUTES"
    )

    @field_validator("inventory")
    @classmethod
    def _inventory_parses(cls, value: str) -> str:
        parse_inventory(value)
        return value

    @property
    def quotas(self) -> dict[str, int]:
        return {
            "free": self.quota_free,
            "pro": self.quota_pro,
            "max": self.quota_max,
            "enterprise": self.quota_enterprise,
        }

    @property
    def cooldown(self) -> timedelta:
        return timedelta(hours=self.cooldown_hours)

    @property
    def cooldown_lateness(self) -> timedelta:
        return timedelta(minutes=self.cooldown_lateness_minutes)

    def inventory_ranges(self) -> list[tuple[str, Network]]:
        return parse_inventory(self.inventory)
