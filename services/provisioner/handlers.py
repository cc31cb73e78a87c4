"""The provisioner's subscribers: load, decide (rules), persist, emit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import structlog

from services.provisioner import rules
from shared import command_results
from shared.command_results import RejectionReason, accepted
from shared.contract import topics
from shared.contract.events import (
    IpProvisioned,
    IpRelease,
    IpRequested,
    IpRequestRejected,
    IpUpdate,
)
from shared.event_clock import Clocks
from shared.ip_view import load_ip_view
from shared.messages import Cause, Emit, Received
from shared.settings import Settings
from shared.sql import load_statements

log = structlog.get_logger(__name__)
SQL = load_statements("services.provisioner", "registry.sql")


def _rejected_request(data: IpRequested, reason: str, message: str) -> list[Emit]:
    log.info("ip request rejected", account_id=data.account_id, reason=reason)
    return [
        Emit(
            topics.IP_REQUEST_REJECTED,
            key=data.account_id,
            type="ip.request_rejected",
            data=IpRequestRejected(account_id=data.account_id, reason=reason, message=message),  # type: ignore[arg-type]
        )
    ]


async def on_ip_requested(
    conn: asyncpg.Connection, event: Received, settings: Settings
) -> Sequence[Emit]:
    data: IpRequested = event.data
    await conn.execute(SQL.lock_account, data.account_id)
    if await conn.fetchval(SQL.by_request, event.id) is not None:
        return []  # applied before (the inbox was pruned since): provision nothing new
    live = await conn.fetchval(SQL.count_live, data.account_id)
    refusal = rules.quota_refusal(data.plan, settings.quotas, live)
    if refusal is not None:
        return _rejected_request(data, *refusal)
    ip_id = rules.ip_id_for(event.id)
    address = await conn.fetchval(SQL.take_address, data.region, ip_id)
    if address is None:
        return _rejected_request(
            data, "no_capacity", f"no free address is left in the {data.region} inventory"
        )
    await conn.execute(
        SQL.insert_ip,
        ip_id,
        data.account_id,
        address,
        data.region,
        data.pool,
        data.rdns,
        data.auto_warmup,
        data.warmup_schedule,
        event.id,
        event.time,
    )
    log.info("ip provisioned", ip_id=ip_id, address=address, account_id=data.account_id)
    provisioned = IpProvisioned(
        ip_id=ip_id,
        account_id=data.account_id,
        address=address,
        region=data.region,
        pool=data.pool,
        rdns=data.rdns,
        status="provisioning",
        auto_warmup=data.auto_warmup,
        warmup_schedule=data.warmup_schedule,
    )
    return [Emit(topics.IP_PROVISIONED, key=ip_id, type="ip.provisioned", data=provisioned)]


def rejected(event: Received, reason: RejectionReason, message: str) -> list[Emit]:
    return [command_results.rejected(event.data.account_id, event.id, event.type, reason, message)]


async def _state_changed(conn: asyncpg.Connection, ip_id: str, event_type: str) -> Emit:
    view = await load_ip_view(conn, ip_id)
    assert view is not None
    return Emit(topics.IP_STATE_CHANGED, key=ip_id, type=event_type, data=view)


async def _refuse_command(
    conn: asyncpg.Connection, event: Received
) -> tuple[list[Emit] | None, list[Emit]]:
    """Lock the command's IP and bring it up to the command's event time: a cooldown over
    by then is ended first (exactly as the sweep would end it), so the answer depends on
    when the command happened, not on whether the sweep ran before it was read. Returns
    (the rejection to answer, or None; the events of ending the cooldown)."""
    ip_id = event.data.ip_id
    row = await conn.fetchrow(SQL.lock_ip, ip_id)
    # Another account's IP reads exactly like a missing one.
    if row is None or row["account_id"] != event.data.account_id:
        return rejected(event, "not_found", f"no IP {ip_id} in this account"), []
    ended: list[Emit] = []
    if row["status"] == "cooldown" and row["cooldown_until"] <= event.time:
        ended.append(await _release(conn, row))
        row = await conn.fetchrow(SQL.lock_ip, ip_id)
    refusal = rules.command_refusal(row["status"], event.type)
    return (rejected(event, *refusal) if refusal is not None else None), ended


async def on_ip_release(
    conn: asyncpg.Connection, event: Received, settings: Settings
) -> Sequence[Emit]:
    data: IpRelease = event.data
    refusal, ended = await _refuse_command(conn, event)
    if refusal is not None:
        return [*ended, *refusal]
    until = rules.cooldown_ends(event.time, settings.cooldown)
    await conn.execute(SQL.start_cooldown, data.ip_id, until, event.id, event.partition)
    return [accepted(event), await _state_changed(conn, data.ip_id, "ip.cooldown_started")]


async def on_ip_update(
    conn: asyncpg.Connection, event: Received, settings: Settings
) -> Sequence[Emit]:
    data: IpUpdate = event.data
    refusal, ended = await _refuse_command(conn, event)
    if refusal is not None:
        return [*ended, *refusal]
    if data.pool is None and data.rdns is None:
        return rejected(event, "invalid", "ip.update names neither pool nor rdns")
    await conn.execute(SQL.update_ip, data.ip_id, data.pool, data.rdns)
    return [accepted(event), await _state_changed(conn, data.ip_id, "ip.updated")]


COMMANDS = "provisioner/ip.commands"  # the subscription whose partitions end cooldowns


async def release_due(
    conn: asyncpg.Connection, clocks: Clocks, *, lateness: timedelta
) -> Sequence[Emit]:
    """Sweep: IPs whose cooldown ended are released and their addresses return to the
    inventory. A cooldown ends on the event-time clock of the ip.commands partition its
    release was read from (the account's), less the allowed lateness, never on another
    partition's. The release is decided by event time passing: its id derives from the IP
    and its release, and it names no cause."""
    read = {p: at - lateness for p, at in clocks.of(COMMANDS).judged().items()}
    if not read:
        return []
    parts = sorted(read)
    emits = [
        await _release(conn, row)
        for row in await conn.fetch(SQL.due_releases, parts, [read[p] for p in parts])
    ]
    return emits


async def _release(conn: asyncpg.Connection, row: asyncpg.Record) -> Emit:
    """End one cooldown: the IP is released and its address returns to the inventory. The
    event's id derives from the IP and the release that started the cooldown, and its time is
    the cooldown's end, whoever ends it (the sweep or a later command of the account)."""
    ip_id = row["ip_id"]
    await conn.execute(SQL.release, ip_id)
    await conn.execute(SQL.free_address, ip_id)
    emit = await _state_changed(conn, ip_id, "ip.released")
    log.info("ip released", ip_id=ip_id)
    cause = Cause(id=f"release:{ip_id}:{row['release_cause']}", time=row["cooldown_until"])
    return Emit(emit.topic, emit.key, emit.type, emit.data, cause=cause)
