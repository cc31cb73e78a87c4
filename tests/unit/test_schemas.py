"""schemas/ is generated from the code by `ipfleet schemas`; these tests fail when it drifts,
and check the generated contract against the event types of ../shared/CONTRACT.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from services.fleet import build_all
from services.settings import FleetSettings
from shared.contract.events import EVENT_DATA
from shared.schemas import generate

CHECKED_IN = Path(__file__).resolve().parents[2] / "schemas"
REGENERATE = (
    "schemas/ does not match the code: run `ipfleet schemas` (or `python -m services schemas`) "
    "and commit the result"
)

# Every event type CONTRACT.md names, as written there.
CONTRACT_INPUTS = ("ip.requested", "send.recorded", "domain.health_checked")
CONTRACT_COMMANDS = (
    "ip.release",
    "ip.update",
    "ip.warmup.start",
    "ip.warmup.stop",
    "ip.warmup.resume",
    "pool.create",
    "pool.rename",
    "pool.delete",
    "pool.add_ip",
    "pool.remove_ip",
    "dynamic_pools.configure",
    "domain.enroll",
    "domain.unenroll",
    "domain.override.set",
    "domain.override.clear",
    "domain.evaluate",
)
CONTRACT_IP_STATE = (
    "ip.registered",
    "ip.warmup_started",
    "ip.warmup_advanced",
    "ip.warmup_held",
    "ip.daily_limit_reached",
    "ip.hourly_limit_reached",
    "ip.warmed",
    "ip.warmup_stopped",
    "ip.suspended",
    "ip.resumed",
    "ip.updated",
    "ip.cooldown_started",
    "ip.released",
)
CONTRACT_OUTPUTS = (
    "ip.provisioned",
    "ip.request_rejected",
    *CONTRACT_IP_STATE,
    "pool.created",
    "pool.renamed",
    "pool.deleted",
    "pool.ip_added",
    "pool.ip_removed",
    "dynamic_pools.configured",
    "domain.pool_changed",
    "command.accepted",
    "command.rejected",
    "domain.evaluated",
)
CONTRACT_TYPES = CONTRACT_INPUTS + CONTRACT_COMMANDS + CONTRACT_OUTPUTS

# The fields CONTRACT.md lists per type ("none may be dropped or renamed"); `warmup.x` is a
# field of the nested warm-up view. Types whose fields the contract leaves open are absent.
_IP_VIEW = (
    "ip_id account_id address status pool reputation_score warmup.schedule warmup.mode "
    "warmup.day warmup.progress warmup.daily_limit warmup.hourly_limit warmup.sent_today "
    "warmup.started_at warmup.hold_reason warmup.days"
)
CONTRACT_FIELDS: dict[str, str] = {
    "ip.requested": "account_id plan region pool rdns auto_warmup warmup_schedule",
    "send.recorded": "account_id ip domain outcome message_id",
    "domain.health_checked": "account_id domain bounce_rate complaint_rate processed_count",
    "ip.release": "account_id ip_id",
    "ip.update": "account_id ip_id pool rdns",
    "ip.warmup.start": "account_id ip_id schedule",
    "ip.warmup.stop": "account_id ip_id",
    "ip.warmup.resume": "account_id ip_id",
    "pool.create": "account_id name is_default",
    "pool.rename": "account_id name new_name",
    "pool.delete": "account_id name",
    "pool.add_ip": "account_id name ip_id",
    "pool.remove_ip": "account_id name ip_id",
    "dynamic_pools.configure": (
        "account_id enabled thresholds good_reputation poor_reputation new_senders"
    ),
    "domain.enroll": "account_id domain",
    "domain.unenroll": "account_id domain replacement_pool",
    "domain.override.set": "account_id domain pool",
    "domain.override.clear": "account_id domain",
    "domain.evaluate": "account_id domain bounce_rate complaint_rate processed_count",
    "ip.provisioned": "ip_id account_id address region pool rdns status",
    "ip.request_rejected": "account_id reason message",
    **dict.fromkeys(CONTRACT_IP_STATE, _IP_VIEW),
    **dict.fromkeys(
        ("ip.daily_limit_reached", "ip.hourly_limit_reached"),
        f"{_IP_VIEW} overflow.pool overflow.reason",
    ),
    "domain.pool_changed": (
        "domain account_id prev_pool new_pool reason bounce_rate complaint_rate "
        "processed_count initiated_by"
    ),
    "command.rejected": "command_id reason message",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    generate(out, build_all(FleetSettings.defaults()))
    return out


@pytest.fixture(scope="module")
def asyncapi(generated: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((generated / "asyncapi.json").read_bytes())
    return document


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_checked_in_schemas_match_the_code(generated: Path) -> None:
    fresh, committed = _files(generated), _files(CHECKED_IN)
    missing = sorted(fresh.keys() - committed.keys())
    stale = sorted(committed.keys() - fresh.keys())
    changed = sorted(
        name for name in fresh.keys() & committed.keys() if fresh[name] != committed[name]
    )
    assert not (missing or stale or changed), (
        f"{REGENERATE}\n  missing: {missing}\n  stale: {stale}\n  changed: {changed}"
    )


def test_generation_is_deterministic(generated: Path, tmp_path: Path) -> None:
    generate(tmp_path, build_all(FleetSettings.defaults()))
    assert _files(tmp_path) == _files(generated)


def test_generation_removes_schemas_of_types_that_no_longer_exist(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "ip.gone.json").write_text("{}")
    generate(tmp_path, [])
    assert not (tmp_path / "events" / "ip.gone.json").exists()


def test_the_code_knows_exactly_the_contract_types() -> None:
    assert sorted(EVENT_DATA) == sorted(CONTRACT_TYPES)


@pytest.mark.parametrize("event_type", CONTRACT_TYPES)
def test_every_contract_type_has_a_data_schema(generated: Path, event_type: str) -> None:
    path = generated / "events" / f"{event_type}.json"
    assert path.is_file(), f"no schema for {event_type}"
    schema = json.loads(path.read_bytes())
    assert schema["type"] == "object"
    assert "account_id" in schema["properties"]


@pytest.mark.parametrize(("event_type", "fields"), sorted(CONTRACT_FIELDS.items()))
def test_data_schemas_keep_every_contract_field(
    generated: Path, event_type: str, fields: str
) -> None:
    schema = json.loads((generated / "events" / f"{event_type}.json").read_bytes())
    missing = [f for f in fields.split() if not _has_field(schema, f)]
    assert missing == [], f"{event_type} lost contract fields {missing}"


def test_envelope_schema_is_cloudevents(generated: Path) -> None:
    schema = json.loads((generated / "cloudevent.json").read_bytes())
    assert {"specversion", "id", "source", "type", "time", "data"} <= set(schema["required"])


def test_every_reference_in_the_asyncapi_document_resolves(asyncapi: dict[str, Any]) -> None:
    unresolved = [r for r in _refs(asyncapi) if not _resolves(asyncapi, r)]
    assert unresolved == []


def test_every_message_is_a_typed_cloudevent_or_a_dead_letter(asyncapi: dict[str, Any]) -> None:
    schemas = asyncapi["components"]["schemas"]
    assert "EmptyPayload" not in schemas, "a subscriber's payload was left to FastStream"
    for name, message in asyncapi["components"]["messages"].items():
        if name == "dead_letter":
            assert "error.class" in message["headers"]["properties"]
            continue
        envelope = schemas[message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert envelope["properties"]["type"]["const"] == name.partition("@")[0]
        assert envelope["properties"]["data"]["$ref"].startswith("#/components/schemas/")


def test_asyncapi_documents_every_contract_type(asyncapi: dict[str, Any]) -> None:
    documented = set(asyncapi["components"]["messages"])
    assert sorted(set(CONTRACT_TYPES) - documented) == []


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _resolves(document: dict[str, Any], reference: str) -> bool:
    node: Any = document
    for part in reference.removeprefix("#/").split("/"):
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _has_field(schema: dict[str, Any], dotted: str) -> bool:
    node = schema
    *parents, name = dotted.split(".")
    for parent in parents:
        prop = node["properties"].get(parent, {})
        if "$ref" not in prop:
            return False
        node = schema["$defs"][prop["$ref"].rsplit("/", 1)[1]]
    return name in node.get("properties", {})
