"""The fleet's root settings: what every service runs on (`shared.settings.Settings`) with
one nested model per service. Environment variable names are each setting's own
(`IPFLEET_INVENTORY`, `IPFLEET_WARMUP_LATENESS_MINUTES`, ...), not nested paths."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field, model_validator

from services.provisioner.settings import ProvisionerSettings
from services.reputation.settings import ReputationSettings
from services.warmup.settings import WarmupSettings
from shared.settings import ServiceSettings, Settings, env_keys, env_names

NESTED: dict[str, type[ServiceSettings]] = {
    "provisioner": ProvisionerSettings,
    "warmup": WarmupSettings,
    "reputation": ReputationSettings,
}


class FleetSettings(Settings):
    provisioner: ProvisionerSettings = Field(default_factory=ProvisionerSettings)
    warmup: WarmupSettings = Field(default_factory=WarmupSettings)
    reputation: ReputationSettings = Field(default_factory=ReputationSettings)

    @model_validator(mode="before")
    @classmethod
    def _route_service_settings(cls, data: Any) -> Any:
        """Give each service's settings the values passed by their variable names (as the
        environment names them), so `FleetSettings(IPFLEET_INVENTORY=...)` works like the
        environment does. A service's settings passed whole are kept as they are."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, model in NESTED.items():
            if name in data:
                continue
            keys = env_keys(model)
            data[name] = model(**{keys[k]: v for k, v in data.items() if k in keys})
        return data

    def database_for(self, service: str) -> str | None:
        """The DSN of `service`'s database: its own, else DATABASE_URL (a secret: never log)."""
        own: ServiceSettings = getattr(self, service)
        url = own.database(self)
        return url.get_secret_value() if url is not None else None

    @classmethod
    def defaults(cls) -> FleetSettings:
        """Defaults only, never the environment or `.env` (for generated documents)."""
        nested: dict[str, Any] = {name: model.model_construct() for name, model in NESTED.items()}
        return cls.model_construct(**nested)


def all_env_names() -> set[str]:
    """Every environment variable the fleet reads."""
    names = env_names(Settings)
    for model in NESTED.values():
        names |= env_names(model)
    return names


@lru_cache(maxsize=1)
def get_settings() -> FleetSettings:
    return FleetSettings()
