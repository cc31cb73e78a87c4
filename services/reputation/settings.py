"""The reputation service's own settings: its database (`IPFLEET_REPUTATION_DATABASE_URL`,
else `DATABASE_URL`). Its rules are configured per account by command, not here."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class ReputationSettings(ServiceSettings):
    database_url: SecretStr | None = Field(
        default=None, validation_alias="IPFLEET_REPUTATION_DATABASE_URL"
    )
