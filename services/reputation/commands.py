"""What `ipfleet pool list`, `ipfleet domain list` and `ipfleet domain history` print.

They read the reputation service's own tables (its copy of the IPs, learnt from events, for
addresses and statuses); they change nothing. Row formatting is kept in small pure functions
so it can be tested alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.reputation.domain.assignment import DomainState
from services.reputation.domain.bands import Band
from shared import database
from shared.sql import load_statements

SCHEMA = "reputation"  # the service's own schema
POOLS = load_statements("services.reputation", "pools.sql")
DOMAINS = load_statements("services.reputation", "domains.sql")

Echo = Callable[[str], None]


# ---- pure formatting ---------------------------------------------------------------------------


def as_utc(moment: datetime | None) -> datetime | None:
    """A CLI time: naive means UTC (as the options say)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def pool_filter(band: str | None) -> str | None:
    """The pool name `--band` means: a band (`good`, `poor`, `new`) is its dynamic pool, and
    any other value is taken as a pool name (`dynamic_poor`, or a named pool)."""
    if band is None:
        return None
    try:
        return Band(band.lower()).pool
    except ValueError:
        return band


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.4%}"


def count(value: int | None) -> str:
    return "-" if value is None else str(value)


def pool_name(pool: str | None) -> str:
    # No pool of its own: the domain sends from its account's default pool.
    return pool if pool is not None else "(default)"


def pool_heading(row: Mapping[str, Any]) -> str:
    if row["enabled"] is None:
        kind = "named, default" if row["is_default"] else "named"
    else:
        kind = "dynamic, " + ("enabled" if row["enabled"] else "disabled")
    return f"{row['account_id']}  {row['name']}  ({kind})  {len(row['ip_ids'])} IP(s)"


def ip_line(ip_id: str, ip: Mapping[str, Any] | None) -> str:
    if ip is None:
        return f"    {ip_id}  (not in the registry)"
    return f"    {ip_id}  {ip['address']:<16} {ip['status']}"


HISTORY_HEADER = (
    f"{'TIMESTAMP':<21} {'FROM':<16} {'TO':<16} {'INITIATED_BY':<12} {'BOUNCE':>9} "
    f"{'COMPLAINT':>9} {'PROCESSED':>9}  REASON"
)


def history_line(row: Mapping[str, Any]) -> str:
    line = (
        f"{when(row['occurred_at']):<21} {pool_name(row['prev_pool']):<16} "
        f"{pool_name(row['new_pool']):<16} {row['initiated_by']:<12} "
        f"{rate(row['bounce_rate']):>9} {rate(row['complaint_rate']):>9} "
        f"{count(row['processed_count']):>9}  {row['reason']}"
    )
    if not row["changes_pool"]:
        line += " (pool unchanged)"
    return line


CHECK_HEADER = (
    f"{'CHECKED_AT':<21} {'ACCOUNT':<16} {'BOUNCE':>9} {'COMPLAINT':>9} {'PROCESSED':>9} "
    f"{'VERDICT':<13} {'OUTCOME':<16} {'POOL':<16}  REASON"
)


def check_line(row: Mapping[str, Any]) -> str:
    return (
        f"{when(row['checked_at']):<21} {row['account_id']:<16} {rate(row['bounce_rate']):>9} "
        f"{rate(row['complaint_rate']):>9} {count(row['processed_count']):>9} "
        f"{row['verdict']:<13} {row['outcome']:<16} {pool_name(row['pool_after']):<16}  "
        f"{row['reason']}"
    )


DOMAIN_HEADER = (
    f"{'DOMAIN':<28} {'ACCOUNT':<16} {'POOL':<16} {'BAND':<13} {'OVERRIDE':<8} "
    f"{'ENROLLED_AT':<21} {'LAST_CHECK':<21} {'BOUNCE':>9} {'COMPLAINT':>9} {'PROCESSED':>9}"
)


def domain_line(row: Mapping[str, Any]) -> str:
    state = DomainState.model_validate_json(row["state"])
    band = state.band.pool if state.band is not None else "-"
    if state.good_streak:
        band += f" ({state.good_streak} good)"
    return (
        f"{row['domain']:<28} {row['account_id']:<16} {pool_name(row['pool']):<16} {band:<13} "
        f"{'yes' if state.override_pool is not None else 'no':<8} "
        f"{when(row['enrolled_at']):<21} {when(row['checked_at']):<21} "
        f"{rate(row['bounce_rate']):>9} {rate(row['complaint_rate']):>9} "
        f"{count(row['processed_count']):>9}"
    )


# ---- the commands ----------------------------------------------------------------------------


async def _fetch(dsn: str, *queries: tuple[str, Sequence[Any]]) -> list[list[asyncpg.Record]]:
    conn = await database.connect(dsn, SCHEMA)
    try:
        return [await conn.fetch(sql, *args) for sql, args in queries]
    finally:
        await conn.close()


async def print_pools(dsn: str, account: str | None, echo: Echo) -> None:
    """Every named pool (and each account's dynamic pools) with its IPs."""
    conn = await database.connect(dsn, SCHEMA)
    try:
        rows = await conn.fetch(POOLS.list_pools, account)
        ip_ids = sorted({ip for row in rows for ip in row["ip_ids"]})
        ips = {r["ip_id"]: r for r in await conn.fetch(POOLS.ip_addresses, ip_ids)}
    finally:
        await conn.close()
    if not rows:
        echo("no pools" + (f" in account {account}" if account else ""))
        return
    for row in rows:
        echo(pool_heading(row))
        for ip_id in row["ip_ids"]:
            echo(ip_line(ip_id, ips.get(ip_id)))


async def print_domains(dsn: str, account: str | None, echo: Echo) -> None:
    """The current pool of every enrolled domain, then domains whose health checks are kept
    although they are not enrolled."""
    enrolled, checked = await _fetch(
        dsn, (DOMAINS.list_domains, [account]), (DOMAINS.checked_not_enrolled, [account])
    )
    if enrolled:
        echo(DOMAIN_HEADER)
        for row in enrolled:
            echo(domain_line(row))
    else:
        echo("no enrolled domains" + (f" in account {account}" if account else ""))
    if checked:
        echo("")
        echo("Not enrolled, health checks kept (see `ipfleet domain history DOMAIN`):")
        for row in checked:
            echo(
                f"  {row['domain']:<28} {row['account_id']:<16} {row['checks']} check(s), "
                f"last {when(row['last_checked_at'])}"
            )


async def print_history(
    dsn: str,
    domain: str,
    since: datetime | None,
    until: datetime | None,
    band: str | None,
    echo: Echo,
) -> None:
    """A domain's moves between pools (seed 003's history records), then its health checks,
    both within [since, until] and, with `band`, only those to or from that pool."""
    args = [domain.lower().rstrip("."), as_utc(since), as_utc(until), pool_filter(band)]
    moves, checks = await _fetch(dsn, (DOMAINS.history, args), (DOMAINS.checks, args))
    echo(f"History of {args[0]}: {len(moves)} record(s)")
    if moves:
        echo(HISTORY_HEADER)
        for row in moves:
            echo(history_line(row))
    echo("")
    echo(f"Health checks of {args[0]}: {len(checks)}")
    if checks:
        echo(CHECK_HEADER)
        for row in checks:
            echo(check_line(row))
