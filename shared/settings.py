"""Runtime settings, read from the environment and a `.env` file.

Every setting has a production-safe default or is explicitly optional; secrets are
`SecretStr` so they never reach a log line or a repr.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Region = Literal["global", "eu"]


def parse_inventory(raw: str) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """Parse `region=CIDR,region=CIDR` into pairs; raises ValueError with the bad item."""
    pairs: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        region, sep, cidr = item.partition("=")
        if not sep or region.strip() not in ("global", "eu"):
            raise ValueError(f"inventory item {item!r} must look like 'global=198.51.100.0/24'")
        pairs.append((region.strip(), ipaddress.ip_network(cidr.strip(), strict=False)))
    return pairs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    # Where things run. Empty means "resolve": testcontainers if Docker answers, else embedded.
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(default=None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias="KAFKA_SASL_PASSWORD"
    )
    kafka_ssl_cafile: str | None = Field(default=None, validation_alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: str | None = Field(default=None, validation_alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: str | None = Field(default=None, validation_alias="KAFKA_SSL_KEYFILE")
    kafka_topic_partitions: int = Field(default=3, ge=1, validation_alias="KAFKA_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(
        default=1, ge=1, validation_alias="KAFKA_REPLICATION_FACTOR"
    )
    kafka_topic_prefix: str = Field(
        default="",
        validation_alias="KAFKA_TOPIC_PREFIX",
        description="Prepended to every topic name on the wire (shared clusters, test isolation).",
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000, ge=1000, validation_alias="KAFKA_SESSION_TIMEOUT_MS"
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3_000, ge=50, validation_alias="KAFKA_HEARTBEAT_INTERVAL_MS"
    )
    kafka_max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, validation_alias="KAFKA_MAX_POLL_INTERVAL_MS"
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        validation_alias="KAFKA_FETCH_MAX_WAIT_MS",
        description="How long the broker may hold a fetch waiting for data; bounds the "
        "latency an idle consumer adds to a new message.",
    )
    kafka_max_partition_fetch_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, validation_alias="KAFKA_MAX_PARTITION_FETCH_BYTES"
    )
    kafka_create_topics: bool = Field(default=True, validation_alias="KAFKA_CREATE_TOPICS")

    log_format: Literal["auto", "json", "pretty"] = Field(
        default="auto", validation_alias="LOG_FORMAT"
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")

    # Consumer pipeline.
    batch_max_records: int = Field(default=500, ge=1, validation_alias="IPFLEET_BATCH_MAX_RECORDS")
    batch_timeout_ms: int = Field(default=20, ge=1, validation_alias="IPFLEET_BATCH_TIMEOUT_MS")
    retry_max_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias="IPFLEET_RETRY_MAX_SECONDS",
        description="How long a batch is retried in place on a transient failure before it is "
        "handed back to Kafka (seek back, fetch again); keeps the consumer inside "
        "max_poll_interval.",
    )
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, validation_alias="IPFLEET_OUTBOX_POLL_SECONDS"
    )
    sweep_seconds: float = Field(default=5.0, gt=0, validation_alias="IPFLEET_SWEEP_SECONDS")

    # Operations: health probes, metrics, traces (shared/health.py, shared/metrics.py).
    http_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias="IPFLEET_HTTP_PORT",
        description="Port of /health/live, /health/ready and /metrics; 0 turns them off.",
    )
    http_host: str = Field(default="0.0.0.0", validation_alias="IPFLEET_HTTP_HOST")
    liveness_loop_stall_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias="IPFLEET_LIVENESS_LOOP_STALL_SECONDS",
        description="/health/live fails while the event loop has not run for this long.",
    )
    liveness_batch_grace_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias="IPFLEET_LIVENESS_BATCH_GRACE_SECONDS",
        description="/health/live fails when one batch has been in hand for longer than "
        "IPFLEET_RETRY_MAX_SECONDS plus this.",
    )
    metrics_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        validation_alias="IPFLEET_METRICS_REFRESH_SECONDS",
        description="Gauges read from Postgres and Kafka (lag, outbox, watermark) are read "
        "again on a scrape at most this often.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="Set to export traces (needs the `tracing` extra); unset: no tracing.",
    )

    # Provisioner.
    inventory: str = Field(default="", validation_alias="IPFLEET_INVENTORY")
    quota_free: int = Field(default=0, ge=0, validation_alias="IPFLEET_QUOTA_FREE")
    quota_pro: int = Field(default=0, ge=0, validation_alias="IPFLEET_QUOTA_PRO")
    quota_max: int = Field(default=1, ge=0, validation_alias="IPFLEET_QUOTA_MAX")
    quota_enterprise: int = Field(default=5, ge=0, validation_alias="IPFLEET_QUOTA_ENTERPRISE")
    cooldown_hours: float = Field(default=24.0, ge=0, validation_alias="IPFLEET_COOLDOWN_HOURS")

    # Embedded development stack.
    dev_data_dir: str = Field(default=".ipfleet", validation_alias="IPFLEET_DEV_DATA_DIR")

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

    def inventory_ranges(self) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
        return parse_inventory(self.inventory)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
