"""The provisioner's commands: `ipfleet inventory add|list` (its own database)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import asyncpg
import typer

from services.provisioner import store
from services.provisioner.service import NAME
from services.provisioner.settings import ProvisionerSettings
from shared import database
from shared.console import database_url, fail, run

inventory_app = typer.Typer(help="The address inventory.", no_args_is_help=True)
COMMANDS = {"inventory": inventory_app}


async def _connect() -> asyncpg.Connection:
    return await database.connect(database_url(NAME, ProvisionerSettings()), NAME)


@inventory_app.command("add")
def inventory_add(
    cidr: Annotated[str, typer.Argument(help="An address range, e.g. 198.51.100.0/24")],
    region: Annotated[str, typer.Option(help="global or eu")] = "global",
) -> None:
    """Add every usable address of a range to a region's inventory."""
    if region not in ("global", "eu"):
        raise fail("--region must be global or eu")
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as error:
        raise fail(str(error)) from error

    async def add() -> int:
        conn = await _connect()
        try:
            return await store.add_range(conn, network, region)
        finally:
            await conn.close()

    typer.echo(f"added {run(add())} address(es) to {region}")


@inventory_app.command("list")
def inventory_list(
    addresses: Annotated[bool, typer.Option(help="List every address, not only totals")] = False,
) -> None:
    """Inventory totals per region (free / total), or every address."""

    async def read() -> list[asyncpg.Record]:
        conn = await _connect()
        try:
            if addresses:
                return await store.inventory_addresses(conn)
            return await store.inventory_summary(conn)
        finally:
            await conn.close()

    rows = run(read())
    if addresses:
        for row in rows:
            typer.echo(f"{row['region']:<7} {row['address']:<40} {row['ip_id'] or 'free'}")
    else:
        for row in rows:
            typer.echo(f"{row['region']:<7} {row['free']:>6} free of {row['total']}")
