"""The three services on three separate databases, over the real broker and real Postgres:
each owns its schema in its own database and learns the others' state from events only.

The whole flow still works: request -> provisioned -> warm-up -> pool moves -> release, and
`ipfleet migrate` / `ipfleet inventory|ip|pool` each use the database of the service that
owns what they touch.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services import fleet
from services.provisioner.domain.rules import ip_id_for
from services.settings import FleetSettings
from shared.client import Follower, Publisher, Seen, cloud_event
from shared.contract import topics
from shared.runtime import Fleet

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SERVICES = ("provisioner", "warmup", "reputation")
WATCHED = [
    topics.IP_PROVISIONED,
    topics.IP_STATE_CHANGED,
    topics.IP_COMMAND_RESULTS,
    topics.POOL_STATE_CHANGED,
]


def _with_database(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


@pytest.fixture
async def databases(postgres_server: Any) -> AsyncIterator[dict[str, str]]:
    """One fresh, empty database per service (not migrated: the test migrates them)."""
    names = {service: f"t_{service[:4]}_{uuid.uuid4().hex[:10]}" for service in SERVICES}
    admin = await asyncpg.connect(postgres_server.url)
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield {service: _with_database(postgres_server.url, name) for service, name in names.items()}
    admin = await asyncpg.connect(postgres_server.url)
    try:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _env(databases: dict[str, str], postgres_url: str) -> dict[str, str]:
    """Each service's database by its own variable; DATABASE_URL names a database that does
    not exist, so a command that used it instead would fail."""
    env = {**os.environ, "LOG_FORMAT": "json"}
    env["DATABASE_URL"] = _with_database(postgres_url, "no_such_database")
    for service, dsn in databases.items():
        env[f"IPFLEET_{service.upper()}_DATABASE_URL"] = dsn
    return env


async def ipfleet(env: dict[str, str], *args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services", *args],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    )
    return done.stdout


async def schemas_in(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", list(SERVICES)
        )
        return {r["nspname"] for r in rows}
    finally:
        await conn.close()


def command(kind: str, account: str, at: datetime = T0, **data: Any) -> dict[str, Any]:
    return cloud_event(kind, {"account_id": account, **data}, time=at)


def is_state(ip_id: str, event_type: str) -> Callable[[Seen], bool]:
    def match(s: Seen) -> bool:
        return (
            s.topic == topics.IP_STATE_CHANGED and s.key == ip_id and s.event["type"] == event_type
        )

    return match


async def ask(publisher: Publisher, seen: Follower, *sent: dict[str, Any]) -> list[str]:
    """Send commands in order; each one's outcome (`accepted` or the rejection's reason)."""
    for cmd in sent:
        await publisher.send(topics.IP_COMMANDS, cmd, key=cmd["data"]["account_id"])
    wanted = {cmd["id"] for cmd in sent}
    found = await seen.wait_for(
        lambda s: s.topic == topics.IP_COMMAND_RESULTS and s.event["data"]["command_id"] in wanted,
        count=len(sent),
    )
    by_id = {s.event["data"]["command_id"]: s.event for s in found}
    answers = [by_id[cmd["id"]] for cmd in sent]
    return [
        a["data"]["reason"] if a["type"] == "command.rejected" else a["type"].split(".")[-1]
        for a in answers
    ]


async def test_three_services_on_three_databases_run_the_whole_flow(
    databases: dict[str, str],
    postgres_server: Any,
    kafka_server: Any,
    settings_for: Callable[..., FleetSettings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
) -> None:
    env = _env(databases, postgres_server.url)
    migrated = await ipfleet(env, "migrate")
    for service in SERVICES:
        # The runtime's migrations and the service's own baseline, in the service's schema.
        [line] = [line for line in migrated.splitlines() if line.startswith(f"{service}:")]
        assert "shared:0001_runtime.sql" in line and f"services.{service}:" in line
        # Each database holds its own service's schema, and no other.
        assert await schemas_in(databases[service]) == {service}
    assert "applied 0 migration(s)" in await ipfleet(env, "migrate")  # harmless twice

    # No cooldown and no allowed lateness: the release is over as soon as it is read.
    settings = settings_for(
        IPFLEET_INVENTORY="global=198.51.100.0/29",
        IPFLEET_COOLDOWN_HOURS=0,
        IPFLEET_COOLDOWN_LATENESS_MINUTES=0,
    )
    running = Fleet(fleet.build_all(settings), settings, databases, kafka_server.bootstrap_servers)
    await running.start()
    try:
        acct = "acct_fleet"
        async with follow(WATCHED) as seen:
            request = cloud_event("ip.requested", {"account_id": acct, "plan": "enterprise"})
            request["time"] = T0.isoformat().replace("+00:00", "Z")
            ip_id = ip_id_for(request["id"])  # the id the provisioner will give it
            # Before its ip.provisioned is read, reputation does not know the IP: not_found,
            # and nothing is applied.
            assert await ask(
                publisher,
                seen,
                command("pool.create", acct, name="marketing", is_default=True),
                command("pool.create", acct, name="transactional"),
                command("pool.add_ip", acct, name="transactional", ip_id=ip_id),
            ) == ["accepted", "accepted", "not_found"]

            # request -> provisioned -> warm-up started (warmup) -> joins the default pool
            # (reputation), each from the previous one's events.
            await publisher.send(topics.IP_REQUESTED, request, key=acct)
            [provisioned] = await seen.wait_for(lambda s: s.event["type"] == "ip.provisioned")
            assert provisioned.event["data"]["ip_id"] == ip_id
            [started] = await seen.wait_for(is_state(ip_id, "ip.warmup_started"))
            assert started.event["source"] == "ipfleet/warmup"
            assert started.event["data"]["status"] == "warming"
            assert started.event["data"]["address"] == provisioned.event["data"]["address"]
            [joined] = await seen.wait_for(lambda s: s.event["type"] == "pool.ip_added")
            assert joined.event["data"]["name"] == "marketing"
            assert joined.event["data"]["ip_ids"] == [ip_id]

            # An IP requested without auto warm-up is announced at once, as registered:
            # active at full volume, its warm-up skipped.
            quiet = cloud_event(
                "ip.requested", {"account_id": acct, "plan": "enterprise", "auto_warmup": False}
            )
            await publisher.send(topics.IP_REQUESTED, quiet, key=acct)
            quiet_id = ip_id_for(quiet["id"])
            [registered] = await seen.wait_for(is_state(quiet_id, "ip.registered"))
            assert registered.event["data"]["warmup"]["status"] == "skipped"
            assert registered.event["data"]["status"] == "active"

            # The pool move, now that reputation knows the IP; and a registry change, which
            # warmup announces with the IP's whole view.
            assert await ask(
                publisher,
                seen,
                command("pool.remove_ip", acct, name="marketing", ip_id=ip_id),
                command("pool.add_ip", acct, name="transactional", ip_id=ip_id),
                command("ip.update", acct, ip_id=ip_id, rdns="mail.fleet.example"),
            ) == ["accepted", "accepted", "accepted"]
            [updated] = await seen.wait_for(is_state(ip_id, "ip.updated"))
            assert updated.event["data"]["rdns"] == "mail.fleet.example"
            assert updated.event["data"]["warmup"]["status"] == "warming"

            # Release: the registry's cooldown and release reach warmup, whose views reach
            # reputation, which empties the IP's pools.
            release = command("ip.release", acct, at=T0 + timedelta(hours=1), ip_id=ip_id)
            assert await ask(publisher, seen, release) == ["accepted"]
            [released] = await seen.wait_for(is_state(ip_id, "ip.released"), timeout=30)
            assert released.event["data"]["status"] == "released"
            [removed] = await seen.wait_for(
                lambda s: (
                    s.event["type"] == "pool.ip_removed"
                    and s.event["data"]["name"] == "transactional"
                    and s.event["causationid"] == released.event["id"]
                ),
                timeout=30,
            )
            assert removed.event["data"]["ip_ids"] == []
    finally:
        await running.stop()

    # Every command reads the database of the service that owns what it shows.
    inventory = await ipfleet(env, "inventory", "list")
    assert inventory.split() == ["global", "5", "free", "of", "6"]  # the quiet IP holds one
    shown = await ipfleet(env, "ip", "show", quiet_id)
    assert '"status": "active"' in shown and '"status": "skipped"' in shown
    pools = await ipfleet(env, "pool", "list", "--account", acct)
    assert "acct_fleet  transactional  (named)  0 IP(s)" in pools
    # The quiet IP joined the default pool; its address and status are reputation's copy.
    assert "acct_fleet  marketing  (named, default)  1 IP(s)" in pools
    assert f"{quiet_id}  198.51.100." in pools and "active" in pools
