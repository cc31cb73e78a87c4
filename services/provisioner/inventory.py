"""The address inventory: ranges an operator adds, per region."""

from __future__ import annotations

import ipaddress

import asyncpg

from services.provisioner.rules import usable_hosts
from shared.sql import load_statements

SQL = load_statements("services.provisioner", "registry.sql")


async def add_range(
    conn: asyncpg.Connection,
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    region: str,
) -> int:
    """Add every usable address of `network` to `region`; returns how many were new."""
    addresses = list(usable_hosts(network))
    status = await conn.execute(SQL.add_inventory, addresses, region)
    return int(status.split()[-1])


async def summary(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(SQL.inventory_summary)


async def addresses(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(SQL.list_inventory)
