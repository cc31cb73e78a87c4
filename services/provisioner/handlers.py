"""The provisioner's subscribers: load, decide (rules), persist, emit.

The registry's lifecycle goes out on the `ip.provisioned` topic (`ip.provisioned`,
`ip.updated`, `ip.cooldown_started`, `ip.released`, each with the registry's fields); the
IP's full view on `ip.state_changed` is warmup's to write."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import structlog

from services.provisioner import store
from services.provisioner.domain import rules
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.store import DueRelease, RegistryIp
from shared import command_results
from shared.command_results import RejectionReason, accepted
from shared.contract import topics
from shared.contract.events import (
    IpProvisioned,
    IpRegistryChanged,
    IpRelease,
    IpRequested,
    IpRequestRejected,
    IpUpdate,
)
from shared.event_clock import Clocks
from shared.messages import Cause, Emit, Received

log = structlog.get_logger(__name__)


def _rejected_request(data: IpRequested, reason: str, message: str) -> list[Emit]:
    log.info("ip request rejected", account_id=data.account_id, reason=reason)
    return [
        Emit(
            topics.IP_REQUEST_REJECTED,
            key=data.account_id,
            type="ip.request_rejected",
            data=IpRequestRejected(account_id=data.account_id, reason=reason, message=message),
        )
    ]


async def on_ip_requested(
    conn: asyncpg.Connection, event: Received, settings: ProvisionerSettings
) -> Sequence[Emit]:
    data: IpRequested = event.data
    await store.lock_account(conn, data.account_id)
    if await store.provisioned_by(conn, event.id) is not None:
        return []  # applied before (the inbox was pruned since): provision nothing new
    live = await store.count_live(conn, data.account_id)
    refusal = rules.quota_refusal(data.plan, settings.quotas, live)
    if refusal is not None:
        return _rejected_request(data, *refusal)
    ip_id = rules.ip_id_for(event.id)
    address = await store.take_address(conn, data.region, ip_id)
    if address is None:
        return _rejected_request(
            data, "no_capacity", f"no free address is left in the {data.region} inventory"
        )
    ip = RegistryIp(
        ip_id, data.account_id, address, data.region, "provisioning", data.pool, data.rdns
    )
    await store.insert_ip(
        conn,
        ip,
        auto_warmup=data.auto_warmup,
        warmup_schedule=data.warmup_schedule,
        requested_by=event.id,
        provisioned_at=event.time,
    )
    log.info("ip provisioned", ip_id=ip_id, address=address, account_id=data.account_id)
    provisioned = IpProvisioned(
        **_registry_fields(ip),
        auto_warmup=data.auto_warmup,
        warmup_schedule=data.warmup_schedule,
    )
    return [Emit(topics.IP_PROVISIONED, key=ip_id, type="ip.provisioned", data=provisioned)]


def _registry_fields(ip: RegistryIp) -> dict[str, str | None]:
    return {
        "ip_id": ip.ip_id,
        "account_id": ip.account_id,
        "address": ip.address,
        "region": ip.region,
        "pool": ip.pool,
        "rdns": ip.rdns,
        "status": ip.status,
    }


async def _registry_changed(conn: asyncpg.Connection, ip_id: str, event_type: str) -> Emit:
    """The registry's lifecycle event of `ip_id` as it now is, on the `ip.provisioned` topic."""
    ip = await store.lock_ip(conn, ip_id)
    assert ip is not None
    data = IpRegistryChanged(**_registry_fields(ip))
    return Emit(topics.IP_PROVISIONED, key=ip_id, type=event_type, data=data)


def rejected(event: Received, reason: RejectionReason, message: str) -> list[Emit]:
    return [command_results.rejected(event.data.account_id, event.id, event.type, reason, message)]


async def _refuse_command(
    conn: asyncpg.Connection, event: Received
) -> tuple[list[Emit] | None, list[Emit]]:
    """Lock the command's IP and bring it up to the command's event time: a cooldown over
    by then is ended first (exactly as the sweep would end it), so the answer depends on
    when the command happened, not on whether the sweep ran before it was read. Returns
    (the rejection to answer, or None; the events of ending the cooldown)."""
    ip_id = event.data.ip_id
    ip = await store.lock_ip(conn, ip_id)
    # Another account's IP reads exactly like a missing one.
    if ip is None or ip.account_id != event.data.account_id:
        return rejected(event, "not_found", f"no IP {ip_id} in this account"), []
    ended: list[Emit] = []
    if ip.status == "cooldown" and ip.cooldown_until and ip.cooldown_until <= event.time:
        assert ip.release_cause is not None
        ended.append(await _release(conn, DueRelease(ip_id, ip.cooldown_until, ip.release_cause)))
        ip = await store.lock_ip(conn, ip_id)
        assert ip is not None
    refusal = rules.command_refusal(ip.status, event.type)
    return (rejected(event, *refusal) if refusal is not None else None), ended


async def on_ip_release(
    conn: asyncpg.Connection, event: Received, settings: ProvisionerSettings
) -> Sequence[Emit]:
    data: IpRelease = event.data
    refusal, ended = await _refuse_command(conn, event)
    if refusal is not None:
        return [*ended, *refusal]
    until = rules.cooldown_ends(event.time, settings.cooldown)
    await store.start_cooldown(conn, data.ip_id, until, event.id, event.partition)
    return [accepted(event), await _registry_changed(conn, data.ip_id, "ip.cooldown_started")]


async def on_ip_update(
    conn: asyncpg.Connection, event: Received, settings: ProvisionerSettings
) -> Sequence[Emit]:
    data: IpUpdate = event.data
    refusal, ended = await _refuse_command(conn, event)
    if refusal is not None:
        return [*ended, *refusal]
    if data.pool is None and data.rdns is None:
        return rejected(event, "invalid", "ip.update names neither pool nor rdns")
    await store.update_ip(conn, data.ip_id, data.pool, data.rdns)
    return [accepted(event), await _registry_changed(conn, data.ip_id, "ip.updated")]


COMMANDS = "provisioner/ip.commands"  # the subscription whose partitions end cooldowns


async def release_due(
    conn: asyncpg.Connection, clocks: Clocks, *, lateness: timedelta
) -> Sequence[Emit]:
    """Sweep: IPs whose cooldown ended are released and their addresses return to the
    inventory. A cooldown ends on the event-time clock of the ip.commands partition its
    release was read from (the account's), less the allowed lateness, never on another
    partition's."""
    read = {p: at - lateness for p, at in clocks.of(COMMANDS).judged().items()}
    if not read:
        return []
    return [await _release(conn, due) for due in await store.due_releases(conn, read)]


async def _release(conn: asyncpg.Connection, due: DueRelease) -> Emit:
    """End one cooldown: the IP is released and its address returns to the inventory. The
    release is decided by event time passing: its id derives from the IP and the release
    that started the cooldown, its time is the cooldown's end, and it names no cause, whoever
    ends it (the sweep, or a later command of the account)."""
    await store.release(conn, due.ip_id)
    emit = await _registry_changed(conn, due.ip_id, "ip.released")
    log.info("ip released", ip_id=due.ip_id)
    cause = Cause(id=f"release:{due.ip_id}:{due.release_cause}", time=due.cooldown_until)
    return Emit(emit.topic, emit.key, emit.type, emit.data, cause=cause)
