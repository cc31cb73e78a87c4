"""OpenTelemetry traces, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Each batch a subscription applies is a span (kind CONSUMER), current while the pipeline
runs, so that the events it emits carry its W3C `traceparent` as the CloudEvents
distributed-tracing extension attribute (shared/outbox.py asks `traceparent()`). Each event
the outbox relay publishes is a span (kind PRODUCER) whose parent is that traceparent, so a
trace follows an input through the batch that applied it to every event it caused.

Off by default and free when off: nothing of OpenTelemetry is imported, and every hook is
one test of a module global. Needs the `tracing` extra (opentelemetry-sdk and the OTLP/HTTP
exporter); the exporter reads the standard OTEL_* variables (headers, timeouts, protocol).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_active: Tracing | None = None


class Tracing:
    def __init__(self, endpoint: str, service: str) -> None:
        # Imported here: the extra is optional and costs nothing unless asked for.
        from opentelemetry import context, trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._context = context
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(endpoint)))
        )
        self.tracer = self.provider.get_tracer("ipfleet")

    def batch_started(self, service: str, topic: str, group: str, records: int) -> Any:
        """Open the batch's span and make it current; returns what `batch_finished` needs."""
        span = self.tracer.start_span(
            f"apply {topic}",
            kind=self._trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.consumer.group.name": group,
                "messaging.batch.message_count": records,
                "ipfleet.service": service,
            },
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def batch_finished(self, handle: Any, applied: bool | None) -> None:
        span, token = handle
        if applied is not None:
            span.set_attribute("ipfleet.batch.applied", applied)
        span.end()
        self._context.detach(token)

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get("traceparent")

    def relayed(self, relay: str, rows: Sequence[Any], started_ns: int, prefix: str) -> None:
        """One PRODUCER span per published row, child of the traceparent its event carries
        (dead letters and events emitted outside a batch start their own trace)."""
        ended = time.time_ns()
        for row in rows:
            parent = None
            value = bytes(row["value"])
            event: dict[str, Any] = {}
            if b'"traceparent"' in value:
                try:
                    event = json.loads(value)
                except ValueError:
                    event = {}
                if isinstance(event, dict) and isinstance(event.get("traceparent"), str):
                    parent = self._propagator.extract({"traceparent": event["traceparent"]})
            attributes = {
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": prefix + row["topic"],
                "ipfleet.relay": relay,
            }
            if isinstance(event, dict) and event.get("id"):
                attributes["cloudevents.event_id"] = str(event["id"])
                attributes["cloudevents.event_type"] = str(event.get("type", ""))
            span = self.tracer.start_span(
                f"publish {row['topic']}",
                context=parent,
                kind=self._trace.SpanKind.PRODUCER,
                attributes=attributes,
                start_time=started_ns,
            )
            span.end(end_time=ended)

    def shutdown(self) -> None:
        self.provider.force_flush(5_000)
        self.provider.shutdown()


def _traces_url(endpoint: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL; traces go to /v1/traces."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def start(endpoint: str | None, service: str) -> Tracing | None:
    """Turn tracing on for this process when an endpoint is given."""
    global _active
    if not endpoint:
        return None
    try:
        _active = Tracing(endpoint, service)
    except ImportError as error:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "install ipfleet[tracing]"
        ) from error
    log.info("tracing on", endpoint=endpoint)
    return _active


def stop() -> None:
    global _active
    active, _active = _active, None
    if active is not None:
        active.shutdown()


def active() -> Tracing | None:
    return _active


def traceparent() -> str | None:
    """The current span's W3C traceparent, or None (always None when tracing is off)."""
    return _active.traceparent() if _active is not None else None
