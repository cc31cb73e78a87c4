"""The IP's whole current view, as every `ip.state_changed` event carries it.

The registry (provisioner) owns identity, address, pool, rDNS and the provisioning /
cooldown / released statuses; warmup owns the warm-up and the reputation score. The status
on the wire merges both: the registry's end-of-life statuses win, then the warm-up's.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shared.contract.events import IpView, WarmupView
from shared.sql import load_statements

SQL = load_statements("shared", "ip_view.sql")
_FROM_WARMUP = {"warming": "warming", "suspended": "suspended", "completed": "active"}


def merged_status(registry_status: str, warmup_status: str | None) -> str:
    if registry_status in ("cooldown", "released"):
        return registry_status
    return _FROM_WARMUP.get(warmup_status or "", registry_status)


def view_from_row(row: asyncpg.Record | dict[str, Any]) -> IpView:
    warmup = row["warmup"]
    if isinstance(warmup, str):
        warmup = json.loads(warmup)
    return IpView(
        ip_id=row["ip_id"],
        account_id=row["account_id"],
        address=row["address"],
        region=row["region"],
        status=merged_status(row["registry_status"], row["warmup_status"]),  # type: ignore[arg-type]
        pool=row["pool"],
        rdns=row["rdns"],
        warmup=WarmupView.model_validate(warmup or {}),
        reputation_score=row["reputation_score"] if row["reputation_score"] is not None else 50,
    )


async def load_ip_view(conn: asyncpg.Connection, ip_id: str) -> IpView | None:
    row = await conn.fetchrow(SQL.one, ip_id)
    return view_from_row(row) if row is not None else None


async def load_all_ip_views(conn: asyncpg.Connection) -> list[IpView]:
    return [view_from_row(row) for row in await conn.fetch(SQL.all)]
