"""Where Postgres and Kafka come from, in one order everywhere (the app, `ipfleet dev`, tests):

1. explicit settings (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`);
2. testcontainers, when a Docker engine answers;
3. the embedded defaults (`shared.embedded`: PostgreSQL from a wheel, Tansu).

Each `provide_*` returns a small handle: the address, which `kind` it is, and `close()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

if TYPE_CHECKING:
    from shared.embedded import EmbeddedPostgres

Kind = Literal["explicit", "testcontainers", "embedded"]

POSTGRES_IMAGE = "postgres:16-alpine"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
_DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


class _Handle:
    """Something provided: its kind and how to let it go (idempotent)."""

    def __init__(self, kind: Kind, close: Callable[[], None] | None = None) -> None:
        self.kind: Kind = kind
        self._close = close

    def close(self) -> None:
        """Release it: stop a container or an embedded server; nothing for explicit ones."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PostgresHandle(_Handle):
    """A Postgres to use: `url` (libpq form, `postgresql://...`), `kind`, `close()`."""

    def __init__(self, url: str, kind: Kind, close: Callable[[], None] | None = None) -> None:
        super().__init__(kind, close)
        self.url = url

    def __repr__(self) -> str:  # no URL: it may hold a password
        return f"PostgresHandle(kind={self.kind!r})"


class EmbeddedPostgresHandle(PostgresHandle):
    """The embedded Postgres, which this process controls: it can also `restart()`."""

    def __init__(self, server: EmbeddedPostgres) -> None:
        super().__init__(server.url, "embedded", server.close)
        self.server = server

    def restart(self) -> None:
        """Stop and start the server on the same port with the same data (an outage)."""
        self.server.restart()


class KafkaHandle(_Handle):
    """A Kafka to use: `bootstrap_servers`, `kind`, `close()`."""

    def __init__(
        self, bootstrap_servers: str, kind: Kind, close: Callable[[], None] | None = None
    ) -> None:
        super().__init__(kind, close)
        self.bootstrap_servers = bootstrap_servers

    def __repr__(self) -> str:
        return f"KafkaHandle(kind={self.kind!r}, bootstrap_servers={self.bootstrap_servers!r})"


def docker_available(timeout: float = 1.0) -> bool:
    """Whether testcontainers could run here: it is installed and the Docker engine it would
    use answers a ping within `timeout` seconds. Never hangs, never raises."""
    if not _docker_maybe_configured():
        return False  # the usual no-Docker machine: decided without importing anything
    try:
        import docker
        from testcontainers.core.docker_client import get_docker_host
    except ImportError:
        return False
    try:
        # The same resolution testcontainers uses: tc.host, DOCKER_HOST, the docker context.
        host = get_docker_host() or f"unix://{_DEFAULT_DOCKER_SOCKET}"
    except Exception:
        return False
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        return False

    answered: list[bool] = []

    def ping() -> None:
        with contextlib.suppress(Exception):
            client = docker.DockerClient(
                base_url=host,
                timeout=max(1, round(timeout)),
                use_ssh_client=host.startswith("ssh://"),
            )
            try:
                answered.append(bool(client.ping()))
            finally:
                client.close()

    # On a daemon thread with a deadline: some transports (ssh://, a black-holed tcp://)
    # ignore the client's own timeout while connecting.
    thread = threading.Thread(target=ping, name="ipfleet-docker-ping", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


def _docker_maybe_configured() -> bool:
    """Cheap pre-check: could any Docker endpoint be configured at all?"""
    home = Path.home()
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or home / ".docker")
    return bool(
        os.environ.get("DOCKER_HOST")
        or os.environ.get("DOCKER_CONTEXT")
        or os.path.exists(_DEFAULT_DOCKER_SOCKET)
        or (home / ".testcontainers.properties").exists()  # may set tc.host
        or (config_dir / "config.json").exists()  # may name a current context
    )


def provide_postgres(
    database_url: str | None, *, data_dir: str | Path | None = None
) -> PostgresHandle:
    """A Postgres per the resolution order. `data_dir` makes the embedded one persistent
    (default: a temporary directory deleted on close)."""
    if database_url:
        return PostgresHandle(database_url, "explicit")
    if docker_available():
        return _postgres_container()
    from shared.embedded import EmbeddedPostgres

    return EmbeddedPostgresHandle(EmbeddedPostgres(data_dir).start())


def provide_kafka(bootstrap: str | None) -> KafkaHandle:
    """A Kafka per the resolution order (the embedded one is Tansu, in memory)."""
    if bootstrap:
        return KafkaHandle(bootstrap, "explicit")
    if docker_available():
        return _kafka_container()
    from shared.embedded import EmbeddedKafka

    broker = EmbeddedKafka().start()
    return KafkaHandle(broker.bootstrap_servers, "embedded", broker.stop)


def _postgres_container() -> PostgresHandle:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.15 kept the modules at the top level
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password="postgres", dbname="ipfleet", driver=None
    )
    container.start()
    try:
        url = container.get_connection_url()
    except BaseException:
        container.stop()
        raise
    return PostgresHandle(url, "testcontainers", container.stop)


def _kafka_container() -> KafkaHandle:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer

    container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    container.start()
    try:
        bootstrap = container.get_bootstrap_server()
    except BaseException:
        container.stop()
        raise
    return KafkaHandle(bootstrap, "testcontainers", container.stop)
