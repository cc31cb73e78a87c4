"""The warmup service's commands: `ipfleet ip show|list|unknown`. Warmup keeps each IP's
whole view (it writes every `ip.state_changed`), so these read its database."""

from __future__ import annotations

import json
from typing import Annotated, Any

import asyncpg
import typer

from services.warmup import store
from services.warmup.handlers import NAME
from services.warmup.settings import WarmupSettings
from shared import database
from shared.console import database_url, fail, run

ip_app = typer.Typer(help="Dedicated IPs.", no_args_is_help=True)
COMMANDS = {"ip": ip_app}


async def _connect() -> asyncpg.Connection:
    return await database.connect(database_url(NAME, WarmupSettings()), NAME)


@ip_app.command("show")
def ip_show(ip_id: str) -> None:
    """The IP's whole current view, as its ip.state_changed events carry it (JSON): the
    warm-up's status (`skipped`, `stopped`, `completed` for an active IP) and
    `hold_reason`, why its last day did not advance."""

    async def read() -> Any:
        conn = await _connect()
        try:
            return (await store.load_views(conn, [ip_id])).get(ip_id)
        finally:
            await conn.close()

    view = run(read())
    if view is None:
        raise fail(f"no IP {ip_id}")
    typer.echo(json.dumps(view.model_dump(mode="json"), indent=2))


STATUSES = (
    *("provisioning", "warming", "active", "suspended", "cooldown", "released"),
    *("not_started", "completed", "skipped", "stopped"),
)


@ip_app.command("list")
def ip_list(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only IPs with this IP status or warm-up status (repeatable): "
            + ", ".join(STATUSES),
        ),
    ] = None,
) -> None:
    """Every IP with its status, warm-up status and progress."""
    wanted = set(status or ())
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise fail(f"unknown status {', '.join(unknown)}; choose from {', '.join(STATUSES)}")

    async def read() -> Any:
        conn = await _connect()
        try:
            return await store.all_views(conn)
        finally:
            await conn.close()

    typer.echo(
        f"{'IP_ID':<24} {'ACCOUNT':<16} {'ADDRESS':<16} {'STATUS':<12} {'WARMUP':<12} "
        f"{'DAY':>4} {'PROGRESS':>8} {'LIMIT':>9} {'SCORE':>5}"
    )
    for v in run(read()):
        w = v.warmup
        if wanted and not wanted & {v.status, w.status}:
            continue
        limit = "unlim." if w.daily_limit < 0 else str(w.daily_limit)
        typer.echo(
            f"{v.ip_id:<24} {v.account_id:<16} {v.address:<16} {v.status:<12} {w.status:<12} "
            f"{w.day if w.day is not None else '-':>4} {w.progress:>8.0%} {limit:>9} "
            f"{v.reputation_score:>5}"
        )


@ip_app.command("unknown")
def ip_unknown(
    days: Annotated[
        int, typer.Option(min=1, help="UTC days shown, back from the newest one with such sends")
    ] = 7,
) -> None:
    """Sends on addresses no IP of ours holds (counted apart by warmup), per UTC day of
    event time."""

    async def read() -> Any:
        conn = await _connect()
        try:
            return await store.unknown_sends(conn, days)
        finally:
            await conn.close()

    typer.echo(f"{'DAY':<10} {'ADDRESS':<39} {'SENDS':>9} {'FIRST SEEN':<20} {'LAST SEEN':<20}")
    for address, day, sends in run(read()):
        typer.echo(
            f"{day.isoformat():<10} {address:<39} {sends.n:>9} "
            f"{sends.first_seen:%Y-%m-%dT%H:%M:%SZ} {sends.last_seen:%Y-%m-%dT%H:%M:%SZ}"
        )
