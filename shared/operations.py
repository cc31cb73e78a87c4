"""The HTTP side of an `ipfleet run` process: /health/live, /health/ready and /metrics.

A small ASGI app served by uvicorn on a thread of its own with its own event loop: a
blocked or overloaded service loop is then reported (503, or metrics still served) rather
than leaving the probe unanswered. What must run on the service's loop (reading the Kafka
consumers' positions) is handed to it with a timeout.

`IPFLEET_HTTP_PORT` (default 8080; 0 turns it off). The port is bound before anything else
starts, so a port already taken stops the process at once with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import asyncpg
import structlog
import uvicorn

from shared import tracing
from shared.consumer import Consumer
from shared.health import DatabaseCheck, Heartbeat, Probes, Subscription
from shared.metrics import CONTENT_TYPE, FleetMetrics, Sampler, ServiceGauges
from shared.pipeline import BatchObserver
from shared.settings import Settings
from shared.sql import Statements

log = structlog.get_logger(__name__)
T = TypeVar("T")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HttpPortTaken(RuntimeError):
    pass


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or HttpPortTaken saying what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Lets a restarted process rebind past TIME_WAIT; a port someone listens on stays taken.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError as error:
        sock.close()
        raise HttpPortTaken(
            f"cannot serve health and metrics on {host}:{port} ({error.strerror or error}): "
            "set IPFLEET_HTTP_PORT to a free port, or 0 to turn the endpoints off"
        ) from error
    sock.setblocking(False)
    return sock


def make_app(probes: Probes, scrape: Callable[[], Awaitable[bytes]]) -> Any:
    """The ASGI app: three GET routes, no framework."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/") or "/"
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain")
        elif path == "/health/live":
            ok, checks = probes.live()
            await _respond_json(send, ok, checks)
        elif path == "/health/ready":
            ok, checks = await probes.ready()
            await _respond_json(send, ok, checks)
        elif path == "/metrics":
            await _respond(send, 200, await scrape(), CONTENT_TYPE)
        else:
            await _respond(send, 404, b"not found\n", "text/plain")

    return app


async def _respond_json(send: Send, ok: bool, checks: dict[str, Any]) -> None:
    body = json.dumps({"status": "ok" if ok else "failing", "checks": checks}).encode()
    await _respond(send, 200 if ok else 503, body + b"\n", "application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Operations:
    """Health, metrics and their HTTP server for one Fleet. Made before anything starts (it
    binds the port), started once the service's loop runs, stopped last."""

    def __init__(
        self,
        settings: Settings,
        databases: Mapping[str, str],
        gauges: Mapping[str, Statements] | None = None,
    ) -> None:
        """`databases`: each service's DSN (its schema is named after it), in run order."""
        services = list(databases)
        self.settings = settings
        self.metrics = FleetMetrics()
        self.subscriptions: list[Subscription] = []
        self.heartbeat = Heartbeat()
        # Each service's own database and schema, through connections of their own.
        self.databases = {name: DatabaseCheck(dsn, name) for name, dsn in databases.items()}
        # Others for the metrics: a probe arriving mid-scrape must not find them busy.
        self.metrics_databases = {name: DatabaseCheck(dsn, name) for name, dsn in databases.items()}
        self.probes = Probes(
            self.subscriptions,
            self.heartbeat,
            self.databases,
            loop_stall_seconds=settings.liveness_loop_stall_seconds,
            batch_budget_seconds=settings.retry_max_seconds + settings.liveness_batch_grace_seconds,
        )
        self.sampler = Sampler(
            self.metrics,
            list(services),
            gauges={name: ServiceGauges(name, sql) for name, sql in (gauges or {}).items()},
            refresh_seconds=settings.metrics_refresh_seconds,
            read_lag=self._read_lag,
        )
        self._tracing_name = "ipfleet-" + "+".join(services)
        self._socket = bind(settings.http_host, settings.http_port) if settings.http_port else None
        self._service_loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The port served (None when turned off)."""
        return self._socket.getsockname()[1] if self._socket is not None else None

    def pipeline_observer(self, consumer: Consumer) -> BatchObserver | None:
        """What counts a pipeline's batches; nothing when no one can scrape them."""
        return self.metrics.observer(consumer) if self._socket is not None else None

    def relay_observer(self, service: str) -> Callable[[int, float], None] | None:
        return self.metrics.relay_timer(service) if self._socket is not None else None

    def subscription(self, service: str, topic: str) -> Subscription:
        sub = Subscription(service, topic)
        self.subscriptions.append(sub)
        return sub

    async def start(self) -> None:
        self._service_loop = asyncio.get_running_loop()
        tracing.start(self.settings.otel_exporter_otlp_endpoint, self._tracing_name)
        self.heartbeat.start()
        if self._socket is None:
            return
        config = uvicorn.Config(
            make_app(self.probes, self._scrape),
            lifespan="off",
            log_config=None,  # leave the process's logging (structlog) alone
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="ipfleet-http", daemon=True)
        self._thread.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not self._server.started:
            if not self._thread.is_alive() or loop.time() > deadline:
                raise RuntimeError("the health and metrics server did not start")
            await asyncio.sleep(0.01)
        log.info("serving health and metrics", port=self.port)

    async def stop(self) -> None:
        self.probes.stopping = True
        await self.heartbeat.stop()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            await asyncio.to_thread(self._thread.join, 5)
        if self._socket is not None:
            self._socket.close()
        await asyncio.to_thread(tracing.stop)

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        asyncio.run(self._serve_then_close())

    async def _serve_then_close(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            for check in [*self.databases.values(), *self.metrics_databases.values()]:
                await check.close()

    async def _scrape(self) -> bytes:
        await self.sampler.refresh(self._metrics_connection)
        return self.metrics.exposition()

    async def _metrics_connection(self, service: str) -> asyncpg.Connection | None:
        return await self.metrics_databases[service].connection()

    async def _read_lag(self) -> list[tuple[str, str, int, int]]:
        rows: list[tuple[str, str, int, int]] = []
        for sub in self.subscriptions:
            rows += await self.on_service_loop(sub.lag())
        return rows

    async def on_service_loop(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        """Run `coro` on the service's loop (where the Kafka consumers live) from this one."""
        assert self._service_loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._service_loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        finally:
            if not future.done():
                with contextlib.suppress(Exception):
                    future.cancel()
