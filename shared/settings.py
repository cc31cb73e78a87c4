"""Settings every service runs on (database, Kafka, logging, the pipeline), read from the
environment and a `.env` file, and the base of each service's own settings.

Every setting has a production-safe default or is explicitly optional; secrets are
`SecretStr` so they never reach a log line or a repr. The fleet's root settings (this model
with one nested model per service) are composed in `services/settings.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        default=6_000,
        ge=1000,
        validation_alias="KAFKA_SESSION_TIMEOUT_MS",
        description="A member silent this long is dropped from its group and its partitions "
        "go to the others. 6 s is the least a stock Kafka broker accepts "
        "(group.min.session.timeout.ms); Tansu also holds every JoinGroup for half of it, "
        "so it is most of the embedded stack's start-up. aiokafka uses it as the rebalance "
        "timeout too; our members rejoin as soon as a heartbeat reports the rebalance.",
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=2_000,
        ge=50,
        validation_alias="KAFKA_HEARTBEAT_INTERVAL_MS",
        description="A third of the session timeout at most, as Kafka recommends, so one late "
        "heartbeat does not drop a member.",
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

    # Embedded development stack.
    dev_data_dir: str = Field(default=".ipfleet", validation_alias="IPFLEET_DEV_DATA_DIR")


class ServiceSettings(BaseSettings):
    """The base of one service's own settings: its database, when it has one of its own
    (`IPFLEET_<SERVICE>_DATABASE_URL`), else the fleet's `DATABASE_URL`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: SecretStr | None = None

    def database(self, base: Settings) -> SecretStr | None:
        return self.database_url if self.database_url is not None else base.database_url


def env_keys(model: type[BaseSettings]) -> dict[str, str]:
    """The environment variables a settings model reads, each with the keyword that sets it
    (its alias, else its field name, for a field read by prefix + name)."""
    prefix = str(model.model_config.get("env_prefix") or "")
    keys = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            keys[alias] = alias
        else:
            keys[(prefix + name).upper()] = name
    return keys


def env_names(model: type[BaseSettings]) -> set[str]:
    """The environment variables a settings model reads."""
    return set(env_keys(model))
