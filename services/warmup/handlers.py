"""The warmup service's subscribers and its sweep: load, decide (`services.warmup.domain`),
persist, emit. Each runs inside the pipeline's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import cast

import asyncpg
import structlog

from services.warmup import store
from services.warmup.domain.attribution import Owner, attribute
from services.warmup.domain.catch_up import STOPPED, catch_up, decision_time, render
from services.warmup.domain.event_time import hour_start
from services.warmup.domain.reputation import score_window
from services.warmup.domain.rules import Mode, WarmupRules
from services.warmup.domain.schedules import Schedule, UnknownSchedule, select_schedule
from services.warmup.domain.send_counts import ZERO, SendCounters
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.transitions import Transition
from services.warmup.domain.warmup_day import WarmupRejected, start
from services.warmup.store import IpRecord
from shared import command_results
from shared.command_results import accepted
from shared.contract import topics
from shared.contract.events import IpProvisioned, IpRegistryChanged, IpWarmupStart, SendRecorded
from shared.messages import BatchResult, Cause, Emit, Received, Rejected

log = structlog.get_logger(__name__)
NAME = "warmup"
NO_SENDS = SendCounters()
MODES: tuple[Mode, ...] = ("earned", "calendar")


@dataclass(frozen=True)
class WarmupConfig:
    """What the handlers decide with: schedules and rules, loaded once at start."""

    schedules: Mapping[str, Schedule]
    rules: WarmupRules
    lateness: timedelta
    sweep_lateness: timedelta
    sweep_batch: int = 500

    def schedule_of(self, ip_id: str, state: WarmupState) -> Schedule | None:
        """The IP's schedule; None before the start, or when it is no longer loaded."""
        if state.schedule is None:
            return None
        schedule = self.schedules.get(state.schedule)
        if schedule is None:
            log.error(
                "the IP's warm-up schedule is not loaded; nothing is decided for it",
                ip_id=ip_id,
                schedule=state.schedule,
            )
        return schedule


# ---- bringing IPs up to date (batches, commands and the sweep alike) -----------------------


async def settle(
    conn: asyncpg.Connection,
    config: WarmupConfig,
    ips: Sequence[IpRecord],
    now: datetime,
    causes: Mapping[str, str],
    decided: Mapping[str, Step] | None = None,
    *,
    refresh_all: bool = False,
) -> list[Emit]:
    """Close what `now` allows for each IP, save the states that changed, rewrite their views
    (every IP's with `refresh_all`) and return one `ip.state_changed` per transition.

    `decided` holds steps already taken (a start) whose state is the starting point and
    whose transitions come first. The id of each event derives from `(ip_id, transition
    key)` alone, so whichever of a batch or the sweep decides a transition emits the same id.
    """
    if not ips:
        return []
    decided = decided or {}
    today = now.date()
    since = {}
    for ip in ips:
        state = decided[ip.ip_id].state if ip.ip_id in decided else ip.state
        since[ip.ip_id] = min(state.current_date or today, today)
    counters = await store.counters_since(conn, since)

    states: dict[str, WarmupState] = {}
    emitting: list[tuple[str, tuple[Transition, ...]]] = []
    for ip in ips:
        before = decided.get(ip.ip_id)
        state = before.state if before is not None else ip.state
        try:
            state, transitions = catch_up(
                state,
                config.schedule_of(ip.ip_id, state),
                config.rules,
                counters.get(ip.ip_id, NO_SENDS),
                now,
                ip.stopped_by,
            )
        except Exception:
            # A state the rules cannot take must not stop the counting of every other IP.
            log.exception("could not bring the IP up to date", ip_id=ip.ip_id)
            continue
        if state != ip.state or before is not None or refresh_all:
            states[ip.ip_id] = state
        events = tuple(
            t
            for t in (*(before.transitions if before else ()), *transitions)
            if t.event_type is not None
        )
        if events:
            emitting.append((ip.ip_id, events))
    if not states:
        return []

    first, last = score_window(now, config.rules)
    windows = await store.window_totals(conn, list(states), first, last)
    views = {}
    for ip in ips:
        if ip.ip_id in states:
            state = states[ip.ip_id]
            shown = render(
                state,
                config.schedule_of(ip.ip_id, state),
                counters.get(ip.ip_id, NO_SENDS),
                windows.get(ip.ip_id, ZERO),
                now,
                ip.stopped_by,
            )
            views[ip.ip_id] = (shown.view, shown.score)
    stored = {ip.ip_id: ip.state for ip in ips}
    await store.save_states(conn, {i: s for i, s in states.items() if s != stored[i]})
    await store.save_views(conn, views)
    if not emitting:
        return []

    full = await store.load_views(conn, [ip_id for ip_id, _ in emitting])
    emits: list[Emit] = []
    for ip_id, events in emitting:
        view = full.get(ip_id)
        if view is None:
            log.error("no registry row for the IP; its events are not emitted", ip_id=ip_id)
            continue
        for transition in events:
            event_type = cast(str, transition.event_type)
            emits.append(
                Emit(
                    topics.IP_STATE_CHANGED,
                    key=ip_id,
                    type=event_type,
                    data=view,
                    cause=Cause(
                        id=f"{ip_id}:{transition.key}",
                        time=transition.at,
                        causation_id=causes.get(ip_id),
                    ),
                )
            )
        log.info("warm-up changed", ip_id=ip_id, events=[t.key for t in events])
    return emits


async def _known_ip(conn: asyncpg.Connection, ip_id: str) -> IpRecord | None:
    """The IP as warmup keeps it, locked; None until its ip.provisioned has been read here
    (a command naming it earlier is answered `not_found`, never half applied)."""
    return await store.lock_ip(conn, ip_id)


async def _announced(
    conn: asyncpg.Connection, ip_id: str, event_type: str, emits: list[Emit]
) -> list[Emit]:
    """`emits`, then `event_type` on `ip.state_changed` with the IP's whole view (the input
    event is its cause)."""
    view = (await store.load_views(conn, [ip_id]))[ip_id]
    return [*emits, Emit(topics.IP_STATE_CHANGED, key=ip_id, type=event_type, data=view)]


# ---- the registry's lifecycle (the provisioner's events on ip.provisioned) -------------------


async def on_ip_provisioned(
    conn: asyncpg.Connection, event: Received, config: WarmupConfig
) -> Sequence[Emit]:
    """Register the IP; with auto warm-up, start it at the event's time. Either way the IP
    gets its first `ip.state_changed` at once: `ip.warmup_started`, else `ip.registered`."""
    data: IpProvisioned = event.data
    await store.register(conn, data, event.time)
    ip = await store.lock_ip(conn, data.ip_id)
    assert ip is not None
    decided: dict[str, Step] = {}
    if data.auto_warmup and ip.stopped_by is None and ip.state.status == "not_started":
        try:
            schedule = select_schedule(
                config.schedules, data.warmup_schedule, config.rules.default_schedule
            )
        except UnknownSchedule as error:
            # Nothing to warm on: the IP waits for an ip.warmup.start naming a schedule.
            log.warning("auto warm-up not started", ip_id=ip.ip_id, reason=str(error))
            not_started = ip.state.model_copy(update={"hold_reason": f"not started: {error}"})
            decided[ip.ip_id] = Step(not_started)
        else:
            decided[ip.ip_id] = start(ip.state, schedule, event.time, config.rules.default_mode)
    now = decision_time(event.time, config.lateness)
    emits = await settle(conn, config, [ip], now, {ip.ip_id: event.id}, decided, refresh_all=True)
    if any(e.type == "ip.warmup_started" for e in emits):
        return emits
    return await _announced(conn, ip.ip_id, "ip.registered", emits)


async def on_ip_updated(
    conn: asyncpg.Connection, event: Received, config: WarmupConfig
) -> Sequence[Emit]:
    """`ip.updated` (pool, rDNS): keep the registry's fields and announce the new view."""
    data: IpRegistryChanged = event.data
    if await _known_ip(conn, data.ip_id) is None:
        await store.register(conn, data, event.time)
    await store.registry_changed(conn, data)
    return await _announced(conn, data.ip_id, "ip.updated", [])


# ---- ip.commands: ip.warmup.start ------------------------------------------------------------


def _rejected(event: Received, reason: command_results.RejectionReason, message: str) -> Emit:
    data: IpWarmupStart = event.data
    return command_results.rejected(data.account_id, event.id, event.type, reason, message)


async def on_warmup_start(
    conn: asyncpg.Connection, event: Received, config: WarmupConfig
) -> Sequence[Emit]:
    """Start an IP's warm-up by hand, on the named schedule or the default one.

    Beyond the contract's fields, `mode` ("earned" or "calendar") picks the IP's mode.
    """
    data: IpWarmupStart = event.data
    ip = await _known_ip(conn, data.ip_id)
    # Another account's IP reads exactly like a missing one.
    if ip is None or ip.account_id != data.account_id:
        return [_rejected(event, "not_found", f"no IP {data.ip_id} in this account")]
    if ip.stopped_by is not None:
        reason = STOPPED.get(ip.stopped_by, f"stopped: {ip.stopped_by}")
        return [_rejected(event, "conflict", f"the warm-up is {reason}")]
    mode = (data.model_extra or {}).get("mode") or config.rules.default_mode
    if mode not in MODES:
        return [_rejected(event, "invalid", f"mode must be one of {', '.join(MODES)}")]
    try:
        schedule = select_schedule(config.schedules, data.schedule, config.rules.default_schedule)
    except UnknownSchedule as error:
        return [_rejected(event, "invalid", str(error))]
    try:
        step = start(ip.state, schedule, event.time, mode)
    except WarmupRejected as error:
        return [_rejected(event, "conflict", f"{error.reason}: {error}")]
    now = decision_time(event.time, config.lateness)
    emits = await settle(
        conn, config, [ip], now, {ip.ip_id: event.id}, {ip.ip_id: step}, refresh_all=True
    )
    return [accepted(event), *emits]


# ---- the registry's cooldown and release -----------------------------------------------------


async def on_ip_stopped(
    conn: asyncpg.Connection, event: Received, config: WarmupConfig
) -> Sequence[Emit]:
    """`ip.cooldown_started` / `ip.released`: the warm-up stops (sends are still counted),
    and the event goes out on `ip.state_changed` with the IP's whole view."""
    data: IpRegistryChanged = event.data
    ip = await _known_ip(conn, data.ip_id)
    if ip is None:
        await store.register(conn, data, event.time)
    await store.registry_changed(conn, data)
    await store.stop(conn, data.ip_id, event.time, event.type)
    ip = await store.lock_ip(conn, data.ip_id)
    assert ip is not None
    log.info("warm-up stopped", ip_id=ip.ip_id, by=event.type)
    now = decision_time(event.time, config.lateness)
    emits = await settle(conn, config, [ip], now, {}, refresh_all=True)
    return await _announced(conn, ip.ip_id, event.type, emits)


_event_time = attrgetter("event.time")

# ---- send.recorded (batches) -----------------------------------------------------------------


async def on_sends(
    conn: asyncpg.Connection, fresh: list[Received], config: WarmupConfig
) -> BatchResult:
    """Count a batch of (already deduplicated) sends and bring the IPs they touch up to date.

    Counting is one set-based upsert of the batch's tally; decisions are the domain sweep at
    the batch's latest event time less the allowed lateness.
    """
    sends = [cast(SendRecorded, item.data) for item in fresh]
    ips = await store.lock_by_address(conn, {data.ip for data in sends})
    owners = {ip.address: Owner(ip.ip_id, ip.account_id) for ip in ips}
    attribution = attribute(
        (
            (data.account_id, data.ip, item.event.time, data.outcome)
            for item, data in zip(fresh, sends, strict=True)
        ),
        owners,
    )
    result = BatchResult()

    for position in attribution.foreign:
        data = sends[position]
        result.rejected.append(
            (
                fresh[position],
                Rejected(
                    "Unprocessable",
                    f"send on {data.ip} names account {data.account_id}, "
                    "which does not own that IP",
                ),
            )
        )
    if attribution.unknown:
        await store.count_unknown(conn, attribution.unknown)
        addresses = sorted({address for address, _ in attribution.unknown})
        log.warning(
            "sends on unknown IPs counted as unknown",
            sends=sum(u.n for u in attribution.unknown.values()),
            addresses=addresses[:20],
            more=max(0, len(addresses) - 20),
        )
    if attribution.counted:
        await store.count_sends(conn, attribution.counted)

    touched = [ip for ip in ips if ip.ip_id in attribution.latest]
    now = decision_time(max(map(_event_time, fresh)), config.lateness)
    causes = {ip_id: fresh[position].id for ip_id, position in attribution.latest.items()}
    result.extend(await settle(conn, config, touched, now, causes))
    return result


# ---- the close-days sweep --------------------------------------------------------------------


async def close_days(
    conn: asyncpg.Connection, watermark: datetime, config: WarmupConfig
) -> Sequence[Emit]:
    """Sweep on the service's event-time watermark: close the hours and days of IPs that
    received no sends (holds), resume suspended IPs, re-warm idle active ones. Idempotent:
    an IP's own watermark only moves forward, and event ids derive from transition keys.

    The watermark is the fastest partition's, so the sweep allows more lateness than a
    batch does (which judges only IPs of its own partition, at its own latest time)."""
    now = decision_time(watermark, config.sweep_lateness)
    ips = await store.due(conn, hour_start(now), sorted(config.schedules), config.sweep_batch)
    return await settle(conn, config, ips, now, {})
