"""The provisioner over the real broker and real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.provisioner.service import build
from shared.client import cloud_event
from shared.contract import topics
from shared.database import connect as connect_schema
from shared.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANSWERS = [topics.IP_PROVISIONED, topics.IP_REQUEST_REJECTED, topics.IP_REQUESTED + ".dlq"]


def request(
    account: str, plan: str = "enterprise", at: datetime = T0, **extra: Any
) -> dict[str, Any]:
    return cloud_event("ip.requested", {"account_id": account, "plan": plan, **extra}, time=at)


def command(kind: str, account: str, at: datetime = T0, **data: Any) -> dict[str, Any]:
    return cloud_event(kind, {"account_id": account, **data}, time=at)


async def test_requests_are_provisioned_or_rejected_by_plan_quota_and_capacity(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Any,
    follow: Any,
    database: str,
) -> None:
    settings = settings_for(IPFLEET_INVENTORY="global=198.51.100.0/29,eu=203.0.113.8/31")
    await start_fleet([build(settings, settings.provisioner)], settings)
    sent = [
        request("acct_a", "enterprise", rdns="mail.a.example", pool="tx"),
        request("acct_b", "max"),
        request("acct_b", "max"),  # max allows 1
        request("acct_c", "free"),
        request("acct_d", "enterprise", region="eu"),
        request("acct_d", "enterprise", region="eu"),
        request("acct_d", "enterprise", region="eu"),  # the eu range has 2 addresses
    ]
    async with follow(ANSWERS) as seen:
        for event in sent:
            await publisher.send(topics.IP_REQUESTED, event, key=event["data"]["account_id"])
        await seen.wait_for(lambda s: True, count=len(sent))

    by_cause = {e["causationid"]: e for e in seen.of_type("ip.provisioned")}
    by_cause |= {e["causationid"]: e for e in seen.of_type("ip.request_rejected")}
    outcomes = [
        by_cause[e["id"]]["data"].get("reason", by_cause[e["id"]]["data"].get("status"))
        for e in sent
    ]
    assert outcomes == [
        "provisioning",
        "provisioning",
        "quota_exceeded",
        "plan_not_eligible",
        "provisioning",
        "provisioning",
        "no_capacity",
    ]
    first = by_cause[sent[0]["id"]]
    assert first["source"] == "ipfleet/provisioner"
    assert first["data"]["rdns"] == "mail.a.example" and first["data"]["pool"] == "tx"
    assert first["data"]["address"].startswith("198.51.100.")
    eu = [by_cause[e["id"]]["data"]["address"] for e in sent[4:6]]
    assert sorted(eu) == ["203.0.113.8", "203.0.113.9"]

    conn = await connect_schema(database, "provisioner")
    try:
        assert await conn.fetchval("SELECT count(*) FROM ips") == 4
    finally:
        await conn.close()


async def test_a_replayed_request_provisions_nothing_new(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Any,
    follow: Any,
    database: str,
) -> None:
    settings = settings_for()
    await start_fleet([build(settings, settings.provisioner)], settings)
    event = request("acct_r")
    async with follow(ANSWERS) as seen:
        await publisher.send(topics.IP_REQUESTED, event, key="acct_r")
        await seen.wait_for(lambda s: s.topic == topics.IP_PROVISIONED)
        # The same event again (a redelivery or an operator's replay), then a marker.
        await publisher.send(topics.IP_REQUESTED, event, key="acct_r")
        await publisher.send(topics.IP_REQUESTED, event, key="acct_r")
        marker = request("acct_r")
        await publisher.send(topics.IP_REQUESTED, marker, key="acct_r")
        await seen.wait_for(lambda s: s.topic == topics.IP_PROVISIONED, count=2)
        await asyncio.sleep(1.0)
        await seen.poll()
    provisioned = seen.of_type("ip.provisioned")
    assert sorted(e["causationid"] for e in provisioned) == sorted([event["id"], marker["id"]])
    conn = await connect_schema(database, "provisioner")
    try:
        assert await conn.fetchval("SELECT count(*) FROM ips WHERE account_id = 'acct_r'") == 2
    finally:
        await conn.close()


async def test_poison_messages_are_dead_lettered_and_the_next_message_is_served(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Any,
    follow: Any,
) -> None:
    settings = settings_for()
    await start_fleet([build(settings, settings.provisioner)], settings)
    poison: list[tuple[bytes | dict[str, Any], str]] = [
        (b"\xff\xfe not json", "InvalidJson"),
        (b'{"hello": "world"}', "NotACloudEvent"),
        (cloud_event("ip.exploded", {"account_id": "acct_p"}), "UnknownEventType"),
        (request("acct_p", "platinum"), "ValidationFailed"),
        (request("acct_p", rdns="not a host"), "ValidationFailed"),
    ]
    good = request("acct_p")
    async with follow(ANSWERS) as seen:
        for value, _ in poison:
            await publisher.send(topics.IP_REQUESTED, value, key="acct_p")
        await publisher.send(topics.IP_REQUESTED, good, key="acct_p")
        await seen.wait_for(lambda s: s.topic == topics.IP_PROVISIONED)
        dead = await seen.wait_for(lambda s: s.topic.endswith(".dlq"), count=len(poison))
    assert sorted(d.headers["error.class"] for d in dead) == sorted(c for _, c in poison)
    for d in dead:
        assert d.headers["error.consumer"] == "provisioner/ip.requested"
        assert d.headers["error.message"]
        assert d.key == "acct_p"
    # The input reaches the DLQ unchanged.
    assert {d.value for d in dead} >= {b"\xff\xfe not json", b'{"hello": "world"}'}
    # A request whose data is invalid is also answered, so the account learns why.
    invalid = [
        e for e in seen.of_type("ip.request_rejected") if e["data"]["reason"] == "invalid_request"
    ]
    assert len(invalid) == 2


def lifecycle(s: Any) -> bool:
    """The registry's events after `ip.provisioned`, on the same topic."""
    return bool(s.topic == topics.IP_PROVISIONED and s.event["type"] != "ip.provisioned")


async def test_release_goes_through_cooldown_and_returns_the_address(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Any,
    follow: Any,
    database: str,
) -> None:
    settings = settings_for(IPFLEET_INVENTORY="global=198.51.100.16/31", IPFLEET_COOLDOWN_HOURS=24)
    await start_fleet([build(settings, settings.provisioner)], settings)
    watched = [*ANSWERS, topics.IP_COMMAND_RESULTS]
    async with follow(watched) as seen:
        await publisher.send(topics.IP_REQUESTED, request("acct_x", "max"), key="acct_x")
        [prov] = await seen.wait_for(lambda s: s.topic == topics.IP_PROVISIONED)
        ip_id, address = prov.event["data"]["ip_id"], prov.event["data"]["address"]

        other = command("ip.release", "acct_intruder", ip_id=ip_id)
        await publisher.send(topics.IP_COMMANDS, other, key="acct_intruder")
        update = command("ip.update", "acct_x", ip_id=ip_id, pool="marketing", rdns="o1.x.example")
        await publisher.send(topics.IP_COMMANDS, update, key="acct_x")
        release = command("ip.release", "acct_x", at=T0 + timedelta(hours=1), ip_id=ip_id)
        await publisher.send(topics.IP_COMMANDS, release, key="acct_x")
        await seen.wait_for(lifecycle, count=2)

        # Event time moves on only with events read on the partition the release was read
        # from (the account's, on the commands topic): another partition's or another
        # topic's time decides nothing for the IP. A command 23 h after the release is not
        # enough...
        later = command("ip.update", "acct_x", at=T0 + timedelta(hours=24), ip_id="ip_x", pool="p")
        await publisher.send(topics.IP_COMMANDS, later, key="acct_x")
        await seen.wait_for(lambda s: s.topic == topics.IP_COMMAND_RESULTS, count=4)
        await asyncio.sleep(1.0)
        await seen.poll()
        assert not seen.of_type("ip.released")
        # ...one 25 h after it is.
        last = command("ip.update", "acct_x", at=T0 + timedelta(hours=26), ip_id="ip_x", pool="p")
        await publisher.send(topics.IP_COMMANDS, last, key="acct_x")
        await seen.wait_for(lifecycle, count=3, timeout=20)

    results = {e["data"]["command_id"]: e for e in seen.of_type("command.rejected")}
    results |= {e["data"]["command_id"]: e for e in seen.of_type("command.accepted")}
    assert results[other["id"]]["type"] == "command.rejected"
    assert results[other["id"]]["data"]["reason"] == "not_found"
    assert results[update["id"]]["type"] == "command.accepted"
    assert results[release["id"]]["type"] == "command.accepted"

    # The registry's lifecycle, on the ip.provisioned topic, with the registry's fields.
    states = [s for s in seen.seen if lifecycle(s)]
    kinds = [s.event["type"] for s in states]
    assert kinds == ["ip.updated", "ip.cooldown_started", "ip.released"]
    assert all(s.key == ip_id and s.event["data"]["address"] == address for s in states)
    assert states[0].event["data"]["rdns"] == "o1.x.example"
    assert states[0].event["data"]["pool"] == "marketing"
    assert states[1].event["data"]["status"] == "cooldown"
    released = states[2].event
    assert released["data"]["status"] == "released"
    assert released["time"].startswith((T0 + timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M"))
    # Decided by event time passing: no single cause (the contract's Envelope section).
    assert "causationid" not in released

    conn = await connect_schema(database, "provisioner")
    try:
        free = await conn.fetchval(
            "SELECT ip_id IS NULL FROM inventory WHERE address = $1::inet", address
        )
        assert free is True
    finally:
        await conn.close()
