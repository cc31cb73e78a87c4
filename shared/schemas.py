"""Generate `schemas/` from the code: a JSON Schema per event type's `data`, one for the
CloudEvent envelope, and the AsyncAPI document of the services it is given.

Run `ipfleet schemas [OUT_DIR]` (default `schemas/`), which passes every service. The
output is byte-for-byte deterministic, so tests/unit/test_schemas.py fails on any drift.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.utils import clear_key, ref
from pydantic import create_model
from pydantic.json_schema import models_json_schema

from shared import outbox
from shared.contract.envelope import CONTENT_TYPE, CloudEvent
from shared.contract.events import (
    MESSAGE_NAMES,
    message_data,
    message_name,
    split_message_name,
)
from shared.contract.topics import dead_letter
from shared.runtime import Service, group_id, register
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.pipeline import Pipeline

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Message name on `<topic>.dlq` channels, whose payload is whatever the input was.
DEAD_LETTER = "dead_letter"
# The compose file's broker; a real deployment's address comes from KAFKA_BOOTSTRAP_SERVERS.
_DOCUMENTED_SERVER = "kafka:9092"
# register() wants a pipeline, but only calls it per batch, which never happens here.
_NO_PIPELINE = cast("Pipeline", None)


def generate(out_dir: Path, services: Sequence[Service]) -> list[Path]:
    """Write every schema under `out_dir` (the AsyncAPI document of `services`), drop event
    schemas of types that no longer exist, and return the paths written."""
    documents: dict[str, Any] = {
        f"events/{n}.json": event_data_schema(n) for n in dict.fromkeys(MESSAGE_NAMES)
    }
    documents["cloudevent.json"] = {
        "$schema": JSON_SCHEMA_DIALECT,
        **CloudEvent.model_json_schema(),
    }
    documents["asyncapi.json"] = asyncapi_document(services)

    events_dir = out_dir / "events"
    if events_dir.is_dir():
        keep = {out_dir / name for name in documents}
        for stale in events_dir.glob("*.json"):
            if stale not in keep:
                stale.unlink()

    written: list[Path] = []
    for name, document in sorted(documents.items()):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(document).encode())
        written.append(path)
    return written


def render(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def event_data_schema(name: str) -> dict[str, Any]:
    """The schema of `data` of a message (`type`, or `type@topic`: see `message_name`)."""
    event_type, topic = split_message_name(name)
    where = f" on `{topic}`" if topic is not None else ""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        # Several types share a model (every ip.state_changed type is an IpView): say which.
        "$comment": f"`data` of `{event_type}` events{where}",
        **message_data(name).model_json_schema(),
    }


def asyncapi_document(services: Sequence[Service]) -> dict[str, Any]:
    """FastStream's AsyncAPI 3.0 document of the services' real subscribers, plus declared
    publishers for what they emit and dead-letter, with CloudEvent payloads filled in."""
    broker = KafkaBroker(
        _DOCUMENTED_SERVER,
        description="Any Kafka cluster; the services read its address from "
        "KAFKA_BOOTSTRAP_SERVERS.",
        logger=None,
    )
    settings = Settings.model_construct()
    carried: dict[str, list[str]] = {}  # channel key -> names of the messages on it
    groups: dict[str, str] = {}  # channel key -> consumer group, for subscribers

    def note(endpoint: Any, names: Sequence[str]) -> list[str]:
        keys = [clear_key(key) for key in endpoint.schema()]
        for key in keys:
            carried[key] = list(names)
        return keys

    for service in services:
        for consumer in service.consumers:
            # The broker keeps its subscribers in a WeakSet: find the new one by difference.
            before = set(broker.subscribers)
            register(broker, consumer, _NO_PIPELINE, settings)
            (subscriber,) = (s for s in broker.subscribers if s not in before)
            names = sorted(message_name(consumer.topic, t) for t in consumer.types)
            for key in note(subscriber, names):
                groups[key] = group_id(consumer.service, consumer.topic)
        for topic, types in service.publishes:
            publisher = broker.publisher(
                topic,
                title=f"{service.name} emits {topic}",
                description=f"{service.name} emits {', '.join(types)}",
            )
            note(publisher, [message_name(topic, t) for t in types])
        for topic in dict.fromkeys(c.topic for c in service.consumers):
            publisher = broker.publisher(
                dead_letter(topic),
                title=f"{service.name} dead-letters {topic}",
                description=f"Input on {topic} that {service.name} could not accept, unchanged, "
                "with headers naming the error",
            )
            note(publisher, [DEAD_LETTER])

    with warnings.catch_warnings():
        # FastStream only warns when two endpoints share a channel key, and keeps one of them.
        warnings.filterwarnings("error", message="Overwrit", category=RuntimeWarning)
        spec = AsyncAPI(
            broker,
            title="ipfleet",
            version=metadata.version("ipfleet"),
            description=metadata.metadata("ipfleet")["Summary"],
        ).to_specification()
    document: dict[str, Any] = spec.to_jsonable()
    document = _with_cloudevent_messages(document, carried)
    _with_consumer_groups(document, groups)
    return document


def _with_cloudevent_messages(
    document: dict[str, Any], carried: dict[str, list[str]]
) -> dict[str, Any]:
    """Replace FastStream's payloads with ours.

    FastStream describes a payload from the handler's signature, and ours take raw records
    (the pipeline parses them itself so that bad input reaches the DLQ), so it sees none.
    Instead each event type becomes one message, a CloudEvent whose `data` is that type's
    model, shared by every channel that carries it (publisher and subscribers alike).
    """
    unknown = set(document["channels"]) - set(carried)
    if unknown:
        raise RuntimeError(f"channels with no known messages: {sorted(unknown)}")
    for key, names in carried.items():
        document["channels"][key]["messages"] = {n: ref("components", "messages", n) for n in names}
    by_ref = {ref("channels", key)["$ref"]: key for key in carried}
    for operation in document["operations"].values():
        key = by_ref[operation["channel"]["$ref"]]
        operation["messages"] = [ref("channels", key, "messages", n) for n in carried[key]]

    every_name = {n for ns in carried.values() for n in ns}
    envelopes = {t: envelope_model(t) for t in sorted(every_name - {DEAD_LETTER})}
    if len({m.__name__ for m in envelopes.values()}) != len(envelopes):
        raise RuntimeError("two event types map to the same envelope schema name")
    _, top = models_json_schema(
        [(model, "validation") for model in envelopes.values()],
        ref_template="#/components/schemas/{model}",
    )
    messages: dict[str, Any] = {
        t: {
            "name": t,
            "title": t,
            "contentType": CONTENT_TYPE,
            "payload": ref("components", "schemas", model.__name__),
        }
        for t, model in envelopes.items()
    }
    if DEAD_LETTER in every_name:
        messages[DEAD_LETTER] = _dead_letter_message()
    components = document.setdefault("components", {})
    components["messages"] = messages
    components["schemas"] = top.get("$defs", {})
    return document


def _with_consumer_groups(document: dict[str, Any], groups: dict[str, str]) -> None:
    # The group is what an operator names to `ipfleet replay`; FastStream leaves it out.
    by_ref = {ref("channels", key)["$ref"]: group for key, group in groups.items()}
    for operation in document["operations"].values():
        group = by_ref.get(operation["channel"]["$ref"])
        if group is not None:
            operation["bindings"] = {
                "kafka": {"bindingVersion": "0.4.0", "groupId": {"type": "string", "const": group}}
            }


def envelope_model(name: str) -> type[CloudEvent]:
    """The CloudEvent of one message (see `message_name`): `type` fixed, `data` its model."""
    event_type, topic = split_message_name(name)
    words = re.split(r"[._]", event_type)
    where = f" on `{topic}`" if topic is not None else ""
    if topic is not None:
        words += ["on", *re.split(r"[._]", topic)]
    model: type[CloudEvent] = create_model(
        "".join(word.capitalize() for word in words) + "Event",
        __base__=CloudEvent,
        __doc__=f"`{event_type}`{where}: the CloudEvents envelope with its typed `data`.",
        __module__=__name__,
        type=(Literal[event_type], ...),  # type: ignore[arg-type]
        data=(message_data(name), ...),
    )
    return model


def _dead_letter_message() -> dict[str, Any]:
    # The header names are asked of the code that writes them, so the document follows it.
    row = outbox.dead_letter_row(
        topic="t",
        key=None,
        value=b"",
        headers=[],
        consumer="c",
        error_class="E",
        message="m",
        partition=0,
        offset=0,
    )
    headers = [name for name, _ in json.loads(row.headers)]
    return {
        "name": DEAD_LETTER,
        "title": "dead letter",
        "summary": "The input message unchanged (key, value and headers), plus headers "
        "naming the error.",
        "headers": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in headers},
            "required": headers,
        },
        "payload": {"description": "The input's value byte for byte: it may not be JSON."},
    }
