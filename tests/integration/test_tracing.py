"""Traces over the real broker and real Postgres, exported over OTLP/HTTP to a receiver of
the test's own: the batch span, the traceparent its emitted events carry, and the relay's
publish span under it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.provisioner.service import build
from services.settings import FleetSettings as Settings
from shared import tracing
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="needs the tracing extra",
)


class Collector(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/v1/traces":
            self.received.append(body)
        reply = trace_service.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Handler", (Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def spans(received: list[bytes]) -> list[Any]:
    found = []
    for body in received:
        request = trace_service.ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                found.extend(scope.spans)
    return found


def attributes(span: Any) -> dict[str, Any]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


async def test_a_batch_and_each_relayed_event_are_spans_of_one_trace(
    collector: tuple[str, list[bytes]],  # first: it outlives the fleet's last export
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
) -> None:
    endpoint, received = collector
    settings = settings_for(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    await start_fleet([build(settings, settings.provisioner)], settings)
    assert tracing.active() is not None
    async with follow([topics.IP_PROVISIONED]) as seen:
        request = cloud_event("ip.requested", {"account_id": "acct_t", "plan": "max"})
        await publisher.send(topics.IP_REQUESTED, request, key="acct_t")
        [provisioned] = await seen.wait_for(lambda s: s.event["type"] == "ip.provisioned")
    event = provisioned.event
    version, trace_id, span_id, flags = event["traceparent"].split("-")
    assert (version, len(trace_id), len(span_id)) == ("00", 32, 16)
    assert int(flags, 16) & 1  # sampled

    found: list[Any] = []

    async def exported() -> bool:
        active = tracing.active()
        assert active is not None
        active.provider.force_flush(5_000)
        found[:] = spans(received)
        return any(s.name == "publish ip.provisioned" for s in found)

    await wait_until(exported, 30, "the spans to be exported")
    [batch] = [s for s in found if s.span_id.hex() == span_id]
    assert batch.name == "apply ip.requested" and batch.trace_id.hex() == trace_id
    assert attributes(batch)["messaging.batch.message_count"] == 1
    [published] = [
        s
        for s in found
        if s.name == "publish ip.provisioned"
        and attributes(s).get("cloudevents.event_id") == event["id"]
    ]
    assert published.trace_id.hex() == trace_id
    assert published.parent_span_id.hex() == span_id


async def test_off_by_default_nothing_is_traced(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
) -> None:
    settings = settings_for()
    await start_fleet([build(settings, settings.provisioner)], settings)
    assert tracing.active() is None and tracing.traceparent() is None
    async with follow([topics.IP_PROVISIONED]) as seen:
        request = cloud_event("ip.requested", {"account_id": "acct_n", "plan": "max"})
        await publisher.send(topics.IP_REQUESTED, request, key="acct_n")
        [provisioned] = await seen.wait_for(lambda s: s.event["type"] == "ip.provisioned")
    assert "traceparent" not in provisioned.event
