"""The warmup service's Postgres reads and writes; every statement is in `warmup.sql`.

Batch-shaped on purpose: each function is one round trip whatever the number of IPs.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.warmup.domain.attribution import UnknownSends
from services.warmup.domain.catch_up import WideRow, counters_by_ip
from services.warmup.domain.crossings import Crossing, Sought
from services.warmup.domain.overflow import KnownPool
from services.warmup.domain.send_counts import OUTCOMES, OutcomeCounts, SendCounters
from services.warmup.domain.state import WarmupState
from services.warmup.ip_view import view_from_row
from shared.contract.events import IpRegistryChanged, IpView
from shared.sql import load_statements

SQL = load_statements("services.warmup", "warmup.sql")


def normal_address(address: str) -> str:
    """An address as `send.recorded` data carries it once validated (str(ip_address))."""
    return str(ipaddress.ip_address(address))


@dataclass(frozen=True, slots=True)
class IpRecord:
    """One IP as warmup keeps it."""

    ip_id: str
    account_id: str
    address: str
    state: WarmupState
    stopped_by: str | None = None
    # The send.recorded partition its sends are read from; None before its first send.
    partition: int | None = None
    # The UTC day its stored view counts (`StoredView.counted_on`); None before its first.
    counted_on: date | None = None
    # Left quiet by a batch: the hour before which it has nothing to decide.
    quiet_until: datetime | None = None


def _record(row: asyncpg.Record) -> IpRecord:
    return IpRecord(
        ip_id=row["ip_id"],
        account_id=row["account_id"],
        address=row["address"],
        state=WarmupState.model_validate_json(row["state"]),
        stopped_by=row["stopped_by"] if row["stopped_at"] is not None else None,
        partition=row["send_partition"],
        counted_on=row["counted_on"],
        quiet_until=row["quiet_until"],
    )


async def register(
    conn: asyncpg.Connection, registry: IpRegistryChanged, provisioned_at: datetime
) -> None:
    """Add an IP warmup has not seen (warm-up not started), with the registry's fields; an
    IP it knows is left as is."""
    await conn.execute(
        SQL.register,
        registry.ip_id,
        registry.account_id,
        normal_address(registry.address),
        provisioned_at,
        WarmupState().model_dump_json(),
        "not_started",
        None,
        registry.region,
        registry.pool,
        registry.rdns,
        registry.status,
    )


async def registry_changed(conn: asyncpg.Connection, registry: IpRegistryChanged) -> None:
    """Keep the registry's fields as its latest lifecycle event carries them."""
    await conn.execute(
        SQL.registry_changed,
        registry.ip_id,
        registry.account_id,
        normal_address(registry.address),
        registry.region,
        registry.pool,
        registry.rdns,
        registry.status,
    )


async def lock_ip(conn: asyncpg.Connection, ip_id: str) -> IpRecord | None:
    row = await conn.fetchrow(SQL.lock_ip, ip_id)
    return _record(row) if row is not None else None


async def lock_by_address(conn: asyncpg.Connection, addresses: Iterable[str]) -> list[IpRecord]:
    rows = await conn.fetch(SQL.lock_by_address, sorted(set(addresses)))
    return [_record(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Counted:
    """The sends (dropped excluded) the days and hours a batch counted on hold afterwards."""

    days: dict[tuple[str, date], int]
    hours: dict[tuple[str, date, int], int]

    def on(self, ip_id: str, hour: datetime) -> tuple[int | None, int | None]:
        """(the day's sends, the hour's sends) for the UTC day and hour of `hour`; None
        where the batch counted nothing."""
        day = hour.date()
        return self.days.get((ip_id, day)), self.hours.get((ip_id, day, hour.hour))


async def count_sends(conn: asyncpg.Connection, rows: Sequence[WideRow]) -> Counted:
    """Add a tally, as `wide_rows`, to the hourly counters and their daily totals (one
    statement); returns what the touched days and hours hold afterwards."""
    days: dict[tuple[str, date], int] = {}
    hours: dict[tuple[str, date, int], int] = {}
    if rows:
        columns = (list(column) for column in zip(*rows, strict=True))
        for ip_id, day, hour, sent in await conn.fetch(SQL.count_sends, *columns):
            if hour is None:
                days[(ip_id, day)] = sent
            else:
                hours[(ip_id, day, hour)] = sent
    return Counted(days, hours)


async def count_unknown(
    conn: asyncpg.Connection, unknown: Mapping[tuple[str, date], UnknownSends]
) -> None:
    if not unknown:
        return
    keys = sorted(unknown)
    await conn.execute(
        SQL.count_unknown,
        [address for address, _ in keys],
        [day for _, day in keys],
        [unknown[k].n for k in keys],
        [unknown[k].first_seen for k in keys],
        [unknown[k].last_seen for k in keys],
    )


async def unknown_sends(
    conn: asyncpg.Connection, days: int
) -> list[tuple[str, date, UnknownSends]]:
    """Sends counted as unknown over the `days` latest UTC days: (address, day, sends)."""
    rows = await conn.fetch(SQL.unknown_sends, days)
    return [
        (row["address"], row["day"], UnknownSends(row["n"], row["first_seen"], row["last_seen"]))
        for row in rows
    ]


async def counters_since(
    conn: asyncpg.Connection, since: Mapping[str, date]
) -> dict[str, SendCounters]:
    """Each IP's hourly counters from its own `since` day on."""
    if not since:
        return {}
    ids = list(since)
    # Columns in `counters_by_ip`'s order (warmup.sql says so beside the query).
    return counters_by_ip(await conn.fetch(SQL.counters_since, ids, [since[i] for i in ids]))


async def window_totals(
    conn: asyncpg.Connection, ip_ids: Sequence[str], first: date, last: date
) -> dict[str, OutcomeCounts]:
    if not ip_ids:
        return {}
    rows = await conn.fetch(SQL.window_totals, list(ip_ids), first, last)
    return {row["ip_id"]: OutcomeCounts(*(int(row[o]) for o in OUTCOMES)) for row in rows}


async def save_states(conn: asyncpg.Connection, states: Mapping[str, WarmupState]) -> None:
    if not states:
        return
    ids = sorted(states)
    await conn.execute(
        SQL.save_states,
        ids,
        [states[i].model_dump_json() for i in ids],
        [states[i].status for i in ids],
        [states[i].closed_until for i in ids],
    )


@dataclass(frozen=True, slots=True)
class StoredView:
    """The warm-up part of an IP's view as `ip_warmup_views` keeps it: rendered without the
    running counts, which are read back from the counters (the sends of `counted_on`, the
    score over `score_since`..`counted_on`)."""

    warmup: dict[str, Any]  # the contract's `warmup` object, `without_counts`
    counted_on: date  # the UTC day `sent_today` counts
    score_since: date  # the first day of the reputation score's window


async def save_views(conn: asyncpg.Connection, views: Mapping[str, StoredView]) -> None:
    """Write the warm-up part of each IP's view (`ip_warmup_views`)."""
    if not views:
        return
    ids = sorted(views)
    await conn.execute(
        SQL.save_views,
        ids,
        [views[i].warmup["status"] for i in ids],
        [json.dumps(views[i].warmup, separators=(",", ":")) for i in ids],
        [views[i].counted_on for i in ids],
        [views[i].score_since for i in ids],
    )


async def load_views(conn: asyncpg.Connection, ip_ids: Sequence[str]) -> dict[str, IpView]:
    """The whole view of each IP, as its `ip.state_changed` events carry it."""
    if not ip_ids:
        return {}
    return {row["ip_id"]: view_from_row(row) for row in await conn.fetch(SQL.views, list(ip_ids))}


async def registry_rows(
    conn: asyncpg.Connection, ip_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Each IP's registry fields, to render events from (each event adds its own warm-up
    part and score)."""
    if not ip_ids:
        return {}
    return {row["ip_id"]: dict(row) for row in await conn.fetch(SQL.registry_rows, list(ip_ids))}


async def all_views(conn: asyncpg.Connection) -> list[IpView]:
    """Every IP's whole view, by account and address."""
    return [view_from_row(row) for row in await conn.fetch(SQL.all_views)]


async def due(
    conn: asyncpg.Connection,
    before: Mapping[int, datetime],
    before_unplaced: datetime | None,
    schedules: Sequence[str],
    limit: int,
) -> list[IpRecord]:
    """Started, not stopped IPs (on a schedule we know) with an hour to close: before
    `before[p]` for an IP read on partition p, before `before_unplaced` for one none of whose
    sends was read yet (None: not judged); those a batch holds are skipped."""
    parts = sorted(before)
    rows = await conn.fetch(
        SQL.due, parts, [before[p] for p in parts], before_unplaced, list(schedules), limit
    )
    return [_record(row) for row in rows]


async def save_partitions(conn: asyncpg.Connection, partitions: Mapping[str, int]) -> None:
    if not partitions:
        return
    ids = sorted(partitions)
    await conn.execute(SQL.save_partitions, ids, [partitions[i] for i in ids])


async def daily_totals(
    conn: asyncpg.Connection, ip_ids: Sequence[str], first: date, last: date
) -> dict[str, dict[date, OutcomeCounts]]:
    """Each IP's outcome totals per UTC day over `first`..`last`."""
    if not ip_ids:
        return {}
    totals: dict[str, dict[date, OutcomeCounts]] = {}
    for row in await conn.fetch(SQL.daily_totals, list(ip_ids), first, last):
        totals.setdefault(row["ip_id"], {})[row["day"]] = OutcomeCounts(
            *(int(row[o]) for o in OUTCOMES)
        )
    return totals


async def stop(conn: asyncpg.Connection, ip_id: str, at: datetime, by: str) -> None:
    await conn.execute(SQL.stop, ip_id, at, by)


# ---- warmup's copy of the named pools (from pool.state_changed) ---------------------------


async def pool_changed(
    conn: asyncpg.Connection,
    account_id: str,
    name: str,
    is_default: bool,
    ip_ids: Sequence[str],
    at: datetime,
    previous_name: str | None = None,
) -> None:
    """Keep a pool's whole state; a rename moves it from `previous_name`."""
    if previous_name is not None and previous_name != name:
        await conn.execute(
            SQL.pool_rename, account_id, previous_name, name, is_default, list(ip_ids), at
        )
    else:
        await conn.execute(SQL.pool_upsert, account_id, name, is_default, list(ip_ids), at)
    if is_default:
        await conn.execute(SQL.pool_demote_others, account_id, name)


async def pool_deleted(conn: asyncpg.Connection, account_id: str, name: str) -> None:
    await conn.execute(SQL.pool_delete, account_id, name)


async def account_pools(
    conn: asyncpg.Connection, account_ids: Iterable[str]
) -> dict[str, list[KnownPool]]:
    """Each account's named pools as warmup knows them, in creation order."""
    pools: dict[str, list[KnownPool]] = {}
    for row in await conn.fetch(SQL.account_pools, sorted(set(account_ids))):
        pools.setdefault(row["account_id"], []).append(
            KnownPool(row["name"], row["is_default"], tuple(row["ip_ids"]))
        )
    return pools


async def active_ips(conn: asyncpg.Connection, account_ids: Iterable[str]) -> set[str]:
    """The ids of the accounts' IPs that are `active` now, as warmup's own states say."""
    rows = await conn.fetch(SQL.active_ips, sorted(set(account_ids)))
    return {row["ip_id"] for row in rows}


async def note_crossings(conn: asyncpg.Connection, noted: Mapping[str, Sequence[Crossing]]) -> None:
    """Keep the sends that crossed a threshold (the first noted per window and hour stays)."""
    rows = [(ip_id, c) for ip_id, crossings in noted.items() for c in crossings]
    if not rows:
        return
    await conn.execute(
        SQL.note_crossings,
        [ip_id for ip_id, _ in rows],
        [c.threshold for _, c in rows],
        [c.window_start for _, c in rows],
        [c.reached for _, c in rows],
        [c.first_hour for _, c in rows],
        [c.last_hour for _, c in rows],
        [c.event_id for _, c in rows],
    )


async def find_crossings(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, Sought]]
) -> list[str | None]:
    """For each (IP id, crossing sought), the id of the send that crossed it, if noted."""
    if not wanted:
        return []
    rows = await conn.fetch(
        SQL.find_crossings,
        list(range(len(wanted))),
        [ip_id for ip_id, _ in wanted],
        *([w[i] for _, w in wanted] for i in range(4)),
    )
    found: list[str | None] = [None] * len(wanted)
    for row in rows:
        found[row["n"]] = found[row["n"]] or row["event_id"]
    return found


async def forget_crossings(conn: asyncpg.Connection, before: datetime) -> None:
    await conn.execute(SQL.forget_crossings, before)


async def sent_after_hour(
    conn: asyncpg.Connection, hours: Mapping[str, datetime]
) -> dict[str, int]:
    """Each IP's sends (dropped excluded) on the UTC day of its hour, after that hour."""
    if not hours:
        return {}
    ids = list(hours)
    rows = await conn.fetch(
        SQL.sent_after_hour, ids, [hours[i].date() for i in ids], [hours[i].hour for i in ids]
    )
    return {row["ip_id"]: int(row["sent"]) for row in rows}


async def hour_peaks(
    conn: asyncpg.Connection, hours: Mapping[str, tuple[datetime, datetime]]
) -> dict[str, int]:
    """Each IP's largest hourly count (dropped excluded) over the hours `first`..`last` (both
    included) of one UTC day; 0 for an IP with no sends there."""
    if not hours:
        return {}
    ids = list(hours)
    rows = await conn.fetch(
        SQL.hour_peaks,
        ids,
        [hours[i][0].date() for i in ids],
        [hours[i][0].hour for i in ids],
        [hours[i][1].hour for i in ids],
    )
    peaks = dict.fromkeys(ids, 0)
    peaks.update((row["ip_id"], int(row["peak"])) for row in rows)
    return peaks


async def leave_quiet(conn: asyncpg.Connection, quiet: Mapping[str, datetime]) -> None:
    """Note, for IPs a batch leaves as they stand, the hour before which each has nothing to
    decide (the close-days sweep leaves it alone until then)."""
    if not quiet:
        return
    ids = sorted(quiet)
    await conn.execute(SQL.leave_quiet, ids, [quiet[i] for i in ids])
