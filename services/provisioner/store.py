"""The provisioner's Postgres reads and writes: the address inventory and the registry of
dedicated IPs. Every statement is in `registry.sql`; no rules here (`rules.py` has them)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.provisioner.domain.rules import usable_hosts
from shared.sql import load_statements

SQL = load_statements("services.provisioner", "registry.sql")


@dataclass(frozen=True, slots=True)
class RegistryIp:
    """One IP as the registry keeps it."""

    ip_id: str
    account_id: str
    address: str
    region: str
    status: str
    pool: str | None
    rdns: str | None
    # While in cooldown: when it ends, and the ip.release command that started it.
    cooldown_until: datetime | None = None
    release_cause: str | None = None


@dataclass(frozen=True, slots=True)
class DueRelease:
    ip_id: str
    cooldown_until: datetime
    release_cause: str


def _ip(row: asyncpg.Record) -> RegistryIp:
    return RegistryIp(
        ip_id=row["ip_id"],
        account_id=row["account_id"],
        address=row["address"],
        region=row["region"],
        status=row["status"],
        pool=row["pool"],
        rdns=row["rdns"],
        cooldown_until=row["cooldown_until"],
        release_cause=row["release_cause"],
    )


# ---- requests --------------------------------------------------------------------------------


async def lock_account(conn: asyncpg.Connection, account_id: str) -> None:
    """Serialise quota checks of one account across replicas and rebalances."""
    await conn.execute(SQL.lock_account, account_id)


async def provisioned_by(conn: asyncpg.Connection, request_id: str) -> str | None:
    """The IP an `ip.requested` event provisioned, when it was applied before."""
    ip_id: str | None = await conn.fetchval(SQL.by_request, request_id)
    return ip_id


async def count_live(conn: asyncpg.Connection, account_id: str) -> int:
    """The account's IPs that are not released."""
    return int(await conn.fetchval(SQL.count_live, account_id))


async def take_address(conn: asyncpg.Connection, region: str, ip_id: str) -> str | None:
    """A free address of `region`, now held by `ip_id`; None when the region has none left."""
    address: str | None = await conn.fetchval(SQL.take_address, region, ip_id)
    return address


async def insert_ip(
    conn: asyncpg.Connection,
    ip: RegistryIp,
    *,
    auto_warmup: bool,
    warmup_schedule: str | None,
    requested_by: str,
    provisioned_at: datetime,
) -> None:
    await conn.execute(
        SQL.insert_ip,
        ip.ip_id,
        ip.account_id,
        ip.address,
        ip.region,
        ip.pool,
        ip.rdns,
        auto_warmup,
        warmup_schedule,
        requested_by,
        provisioned_at,
    )


# ---- commands --------------------------------------------------------------------------------


async def lock_ip(conn: asyncpg.Connection, ip_id: str) -> RegistryIp | None:
    row = await conn.fetchrow(SQL.lock_ip, ip_id)
    return _ip(row) if row is not None else None


async def start_cooldown(
    conn: asyncpg.Connection, ip_id: str, until: datetime, cause_id: str, partition: int
) -> None:
    """`partition`: the ip.commands partition the release was read from, whose clock ends
    the cooldown."""
    await conn.execute(SQL.start_cooldown, ip_id, until, cause_id, partition)


async def update_ip(
    conn: asyncpg.Connection, ip_id: str, pool: str | None, rdns: str | None
) -> None:
    """Set the pool and/or rDNS the command names (None keeps the current value)."""
    await conn.execute(SQL.update_ip, ip_id, pool, rdns)


# ---- the release sweep -----------------------------------------------------------------------


async def due_releases(
    conn: asyncpg.Connection, clocks: Mapping[int, datetime]
) -> list[DueRelease]:
    """IPs whose cooldown ended by the clock of the partition their release was read from
    (`clocks`: partition -> event time), locked (those another replica holds skipped)."""
    parts = sorted(clocks)
    return [
        DueRelease(row["ip_id"], row["cooldown_until"], row["release_cause"])
        for row in await conn.fetch(SQL.due_releases, parts, [clocks[p] for p in parts])
    ]


async def release(conn: asyncpg.Connection, ip_id: str) -> None:
    """The IP is released and its address returns to the inventory."""
    await conn.execute(SQL.release, ip_id)
    await conn.execute(SQL.free_address, ip_id)


# ---- the inventory ---------------------------------------------------------------------------


async def add_range(
    conn: asyncpg.Connection,
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    region: str,
) -> int:
    """Add every usable address of `network` to `region`; returns how many were new."""
    addresses = list(usable_hosts(network))
    status = await conn.execute(SQL.add_inventory, addresses, region)
    return int(status.split()[-1])


async def inventory_summary(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Per region: total and free addresses."""
    return await conn.fetch(SQL.inventory_summary)


async def inventory_addresses(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every address with its region and the IP holding it (None when free)."""
    return await conn.fetch(SQL.list_inventory)
