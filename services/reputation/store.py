"""Loading and saving the reputation service's state: rows in, domain values out, and back.

No rules here: they live in `services.reputation.domain`. Every function runs inside the
pipeline's transaction on the connection it is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg

from services.reputation.domain.assignment import DomainState, Judgement, Move
from services.reputation.domain.bands import HealthMetrics
from services.reputation.domain.pools import AccountPools, DynamicPoolIps, IpStatus, NamedPool
from services.reputation.domain.thresholds import DEFAULT_THRESHOLDS, DynamicPoolThresholds
from shared.sql import load_statements

POOLS = load_statements("services.reputation", "pools.sql")
DOMAINS = load_statements("services.reputation", "domains.sql")


# ---- named pools ----------------------------------------------------------------------------


def pools_from_rows(rows: Sequence[Mapping[str, Any]]) -> AccountPools:
    """An account's named pools from `account_pools` rows (in creation order)."""
    return AccountPools(
        pools=tuple(
            NamedPool(name=r["name"], is_default=r["is_default"], ip_ids=tuple(r["ip_ids"]))
            for r in rows
        )
    )


async def lock_account(conn: asyncpg.Connection, account_id: str) -> None:
    await conn.execute(POOLS.lock_account, account_id)


async def load_pools(conn: asyncpg.Connection, account_id: str) -> AccountPools:
    return pools_from_rows(await conn.fetch(POOLS.account_pools, account_id))


async def create_pool(
    conn: asyncpg.Connection, account_id: str, name: str, is_default: bool, at: datetime
) -> None:
    if is_default:
        await conn.execute(POOLS.demote_default, account_id)
    await conn.execute(POOLS.insert_pool, account_id, name, is_default, at)


async def rename_pool(conn: asyncpg.Connection, account_id: str, name: str, new_name: str) -> None:
    await conn.execute(POOLS.rename_pool, account_id, name, new_name)


async def delete_pool(conn: asyncpg.Connection, account_id: str, name: str) -> None:
    await conn.execute(POOLS.delete_pool, account_id, name)


async def add_pool_ip(
    conn: asyncpg.Connection, account_id: str, name: str, ip_id: str, at: datetime
) -> None:
    await conn.execute(POOLS.add_pool_ip, account_id, name, ip_id, at)


async def remove_pool_ip(conn: asyncpg.Connection, account_id: str, name: str, ip_id: str) -> None:
    await conn.execute(POOLS.remove_pool_ip, account_id, name, ip_id)


async def release_from_pools(conn: asyncpg.Connection, account_id: str, ip_id: str) -> None:
    """Take an IP out of every named and dynamic pool of its account."""
    await conn.execute(POOLS.release_from_pools, account_id, ip_id)
    await conn.execute(POOLS.release_from_dynamic_pools, account_id, ip_id)


# ---- the IPs, as this service learns them from events ------------------------------------------


async def ip_provisioned(
    conn: asyncpg.Connection, ip_id: str, account_id: str, address: str, status: str, at: datetime
) -> None:
    """A new IP (`ip.provisioned`); one known already keeps its status."""
    await conn.execute(POOLS.ip_provisioned, ip_id, account_id, address, status, at)


async def ip_state_changed(
    conn: asyncpg.Connection, ip_id: str, account_id: str, address: str, status: str, at: datetime
) -> None:
    """The IP's status as its latest `ip.state_changed` carries it."""
    await conn.execute(POOLS.ip_state_changed, ip_id, account_id, address, status, at)


async def ip_statuses(
    conn: asyncpg.Connection, account_id: str, ip_ids: Sequence[str]
) -> dict[str, IpStatus]:
    """The status (as on the wire) of each of `ip_ids` that is one of the account's dedicated
    IPs. Another account's IP, or one whose ip.provisioned is not read yet, is absent."""
    rows = await conn.fetch(POOLS.ip_statuses, account_id, list(dict.fromkeys(ip_ids)))
    return {r["ip_id"]: cast(IpStatus, r["status"]) for r in rows}


async def ip_status(conn: asyncpg.Connection, account_id: str, ip_id: str) -> IpStatus | None:
    return (await ip_statuses(conn, account_id, [ip_id])).get(ip_id)


# ---- dynamic pools ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DynamicPoolConfig:
    """An account's dynamic pools: off, default thresholds and no IPs until configured."""

    enabled: bool = False
    thresholds: DynamicPoolThresholds = DEFAULT_THRESHOLDS
    ips: DynamicPoolIps = field(default_factory=DynamicPoolIps)


def dynamic_ips_from_rows(rows: Sequence[Mapping[str, Any]]) -> DynamicPoolIps:
    by_pool: dict[str, list[str]] = {"dynamic_good": [], "dynamic_poor": [], "dynamic_new": []}
    for r in rows:
        by_pool[r["pool"]].append(r["ip_id"])
    return DynamicPoolIps(
        good_reputation=tuple(by_pool["dynamic_good"]),
        poor_reputation=tuple(by_pool["dynamic_poor"]),
        new_senders=tuple(by_pool["dynamic_new"]),
    )


async def load_dynamic_config(conn: asyncpg.Connection, account_id: str) -> DynamicPoolConfig:
    row = await conn.fetchrow(POOLS.dynamic_config, account_id)
    if row is None:
        return DynamicPoolConfig()
    return DynamicPoolConfig(
        enabled=row["enabled"],
        thresholds=DynamicPoolThresholds.model_validate_json(row["thresholds"]),
        ips=dynamic_ips_from_rows(await conn.fetch(POOLS.dynamic_ips, account_id)),
    )


async def save_dynamic_config(
    conn: asyncpg.Connection,
    account_id: str,
    config: DynamicPoolConfig,
    at: datetime,
    command_id: str,
) -> None:
    await conn.execute(
        POOLS.save_dynamic_config,
        account_id,
        config.enabled,
        config.thresholds.model_dump_json(),
        at,
        command_id,
    )
    await conn.execute(POOLS.clear_dynamic_ips, account_id)
    pools, ips, positions = [], [], []
    for pool, members in config.ips.by_pool().items():
        for position, ip_id in enumerate(members):
            pools.append(pool)
            ips.append(ip_id)
            positions.append(position)
    if ips:
        await conn.execute(POOLS.insert_dynamic_ips, account_id, pools, ips, positions)


# ---- domains ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainRecord:
    """A domain ipfleet knows: its owning account and its state."""

    account_id: str
    state: DomainState


async def lock_domain(conn: asyncpg.Connection, domain: str) -> DomainRecord | None:
    """Lock the domain for this transaction and load it (None: never enrolled)."""
    await conn.execute(DOMAINS.lock_domain, domain)
    return await load_domain(conn, domain)


async def load_domain(conn: asyncpg.Connection, domain: str) -> DomainRecord | None:
    row = await conn.fetchrow(DOMAINS.load_domain, domain)
    if row is None:
        return None
    return DomainRecord(row["account_id"], DomainState.model_validate_json(row["state"]))


async def save_domain(
    conn: asyncpg.Connection, domain: str, account_id: str, state: DomainState, at: datetime
) -> None:
    await conn.execute(
        DOMAINS.save_domain,
        domain,
        account_id,
        state.enrolled,
        state.pool,
        state.model_dump_json(),
        at,
    )


async def domains_sending_from(
    conn: asyncpg.Connection, account_id: str, pool: str
) -> list[tuple[str, DomainState]]:
    rows = await conn.fetch(DOMAINS.domains_sending_from, account_id, pool)
    return [(r["domain"], DomainState.model_validate_json(r["state"])) for r in rows]


async def update_domain_state(conn: asyncpg.Connection, domain: str, state: DomainState) -> None:
    await conn.execute(DOMAINS.update_domain_state, domain, state.pool, state.model_dump_json())


async def enrolled_domains(conn: asyncpg.Connection, account_id: str) -> list[str]:
    return [r["domain"] for r in await conn.fetch(DOMAINS.enrolled_domains, account_id)]


async def add_history(
    conn: asyncpg.Connection,
    record_id: str,
    domain: str,
    account_id: str,
    move: Move,
    at: datetime,
    cause_id: str,
) -> None:
    metrics = move.metrics
    await conn.execute(
        DOMAINS.insert_history,
        record_id,
        domain,
        account_id,
        move.prev_pool,
        move.new_pool,
        move.reason,
        metrics.bounce_rate if metrics else None,
        metrics.complaint_rate if metrics else None,
        metrics.processed_count if metrics else None,
        move.initiated_by,
        move.changes_pool,
        at,
        cause_id,
    )


async def add_check(
    conn: asyncpg.Connection,
    event_id: str,
    domain: str,
    account_id: str,
    at: datetime,
    metrics: HealthMetrics,
    judgement: Judgement,
    pool_before: str | None,
) -> bool:
    """Store one health check and what it did; False when it was stored before."""
    metric_bands = {
        mb.metric.value: {"value": mb.value, "band": mb.band.pool, "in_margin": mb.in_margin}
        for mb in judgement.verdict.metric_bands
    }
    stored = await conn.fetchval(
        DOMAINS.insert_check,
        event_id,
        domain,
        account_id,
        at,
        metrics.bounce_rate,
        metrics.complaint_rate,
        metrics.processed_count,
        judgement.verdict.band.pool,
        json.dumps(metric_bands),
        judgement.outcome.value,
        pool_before,
        judgement.state.pool,
        judgement.reason,
    )
    return stored is not None
