"""The warmup service's subscribers and its sweep: load, decide (`services.warmup.domain`),
persist, emit. Each runs inside the pipeline's transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
import structlog

from services.warmup import store
from services.warmup.domain.attribution import Attribution, BatchTally, Owner, RecordedSend
from services.warmup.domain.catch_up import (
    STOPPED,
    catch_up,
    counters_by_ip,
    decision_time,
    render,
    render_as_of,
    wide_rows,
)
from services.warmup.domain.crossings import (
    BatchSend,
    BatchTotals,
    Crossing,
    Sought,
    below_every_threshold,
    crossings_in_batch,
    may_cross,
    sought,
    watch,
)
from services.warmup.domain.crossings import crossings as crossings_in
from services.warmup.domain.event_time import DAY, HOUR, as_utc, day_start, hour_of, hour_start
from services.warmup.domain.overflow import DYNAMIC_POOLS, Overflow, choose_overflow
from services.warmup.domain.reputation import score_window
from services.warmup.domain.rules import Mode, WarmupRules
from services.warmup.domain.schedules import Schedule, UnknownSchedule, select_schedule
from services.warmup.domain.send_counts import ZERO, SendCounters
from services.warmup.domain.settling import must_settle, quiet_until
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.suspension import resume_now
from services.warmup.domain.transitions import (
    DailyLimitReached,
    HourlyLimitReached,
    Suspended,
    Transition,
)
from services.warmup.domain.view import same_view, without_counts
from services.warmup.domain.warmup_day import WarmupRejected, skip, start, stop
from services.warmup.ip_view import merged_status, view_from_row
from services.warmup.store import IpRecord
from shared import command_results, event_clock
from shared.command_results import accepted
from shared.contract import topics
from shared.contract.events import (
    IpProvisioned,
    IpRegistryChanged,
    IpWarmupResume,
    IpWarmupStart,
    IpWarmupStop,
    PoolChanged,
)
from shared.contract.sends import SendFields
from shared.event_clock import Clocks
from shared.messages import BatchResult, Cause, Emit, Received, Rejected

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)
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
    nows: Mapping[str, datetime],
    causes: Mapping[str, str],
    decided: Mapping[str, Step] | None = None,
    *,
    refresh_all: bool = False,
    batch: BatchOfSends | None = None,
) -> list[Emit]:
    """Close what each IP's own `nows[ip_id]` allows, save the states that changed, rewrite
    the views whose content or day changed (every IP's with `refresh_all`) and return one
    `ip.state_changed` per transition.

    `decided` holds steps already taken (a start) whose state is the starting point and
    whose transitions come first. Each event shows the IP as of its transition
    (`render_as_of`), so its data does not depend on how far the IP's partition had been
    read when it was decided; its id derives from `(ip_id, transition key)` alone, so
    whichever of a batch or the sweep decides a transition emits the same id.

    A decided step (a command's) names the command. A limit reached or a suspension names
    the send that crossed its threshold (`crossings`): found among the `batch`'s own sends
    when it holds it, else among those earlier batches noted (each batch notes, once its IPs
    are judged, the crossings a later decision can look for), else `causes[ip_id]`, the
    input being applied. A limit also carries the overflow pool (`overflow_of`). Any other
    transition decided by event time passing carries no cause.
    """
    if not ips:
        return []
    decided = decided or {}
    since = {}
    for ip in ips:
        state = decided[ip.ip_id].state if ip.ip_id in decided else ip.state
        today = nows[ip.ip_id].date()
        since[ip.ip_id] = min(state.current_date or today, today)
    counters = await store.counters_since(conn, since)

    states: dict[str, WarmupState] = {}  # whose views are rewritten
    changed: dict[str, WarmupState] = {}
    judged: dict[str, WarmupState] = {}
    emitting: list[tuple[IpRecord, list[tuple[Transition, WarmupState]]]] = []
    for ip in ips:
        before = decided.get(ip.ip_id)
        state = before.state if before is not None else ip.state
        try:
            step = catch_up(
                state,
                config.schedule_of(ip.ip_id, state),
                config.rules,
                counters.get(ip.ip_id, NO_SENDS),
                nows[ip.ip_id],
                ip.stopped_by,
            )
        except Exception:
            # A state the rules cannot take must not stop the counting of every other IP.
            log.exception("could not bring the IP up to date", ip_id=ip.ip_id)
            continue
        state = judged[ip.ip_id] = step.state
        if state != ip.state:
            changed[ip.ip_id] = state
        # Its view is rewritten only when what it shows changed (most hours closed change
        # only the watermark and the limit flags), or the day it counts.
        if (
            before is not None
            or refresh_all
            or ip.counted_on != as_utc(nows[ip.ip_id]).date()
            or not same_view(ip.state, state)
        ):
            states[ip.ip_id] = state
        moments = [
            (t, after)
            for t, after in (*(before.moments() if before else ()), *step.moments())
            if t.event_type is not None
        ]
        if moments:
            emitting.append((ip, moments))
    if batch is not None:
        await store.note_crossings(conn, _crossings_noted(config, ips, judged, counters, batch))
    if not states and not changed:
        return []

    views = {}
    for ip in ips:
        if ip.ip_id in states:
            state = states[ip.ip_id]
            now = nows[ip.ip_id]
            # Kept without the running counts (and so without the score), which the reading
            # side takes from the counters: only a change of state rewrites a view.
            shown = render(
                state,
                config.schedule_of(ip.ip_id, state),
                counters.get(ip.ip_id, NO_SENDS),
                ZERO,
                now,
                ip.stopped_by,
            )
            score_since, today = score_window(now, config.rules)
            views[ip.ip_id] = store.StoredView(without_counts(shown.view), today, score_since)
    await store.save_states(conn, changed)
    await store.save_views(conn, views)
    if not emitting:
        return []

    # Each event's score covers its window's days before its transition (`render_as_of`).
    cuts = [hour_start(t.at) for _, moments in emitting for t, _ in moments]
    first = min(score_window(cut, config.rules)[0] for cut in cuts)
    last = max(nows[ip.ip_id].date() for ip, _ in emitting)
    daily = await store.daily_totals(conn, [ip.ip_id for ip, _ in emitting], first, last)
    commanded = {t for step in decided.values() for t in step.transitions}
    crossed = await _crossing_sends(conn, config, emitting, commanded, counters, batch)
    rows = await store.registry_rows(conn, [ip.ip_id for ip, _ in emitting])
    overflows = await overflow_of(conn, [ip for ip, moments in emitting if _limits_in(moments)])
    emits: list[Emit] = []
    for ip, moments in emitting:
        row = rows.get(ip.ip_id)
        if row is None:
            log.error("no registry row for the IP; its events are not emitted", ip_id=ip.ip_id)
            continue
        # The registry's part of the view, validated once; each event adds its own warm-up
        # part, which the domain renders JSON-ready.
        registry = view_from_row(row).model_dump(mode="json")
        for transition, after in moments:
            shown = render_as_of(
                transition,
                after,
                config.schedule_of(ip.ip_id, after),
                config.rules,
                counters.get(ip.ip_id, NO_SENDS),
                daily.get(ip.ip_id, {}),
                ip.stopped_by,
            )
            view = {
                **registry,
                "status": merged_status(row["registry_status"], shown.view["status"]),
                "warmup": shown.view,
                "reputation_score": shown.score,
            }
            causation = _cause_of(ip.ip_id, transition, commanded, causes, crossed)
            emits.append(
                Emit(
                    topics.IP_STATE_CHANGED,
                    key=ip.ip_id,
                    type=cast(str, transition.event_type),
                    data=_with_overflow(view, transition, overflows.get(ip.ip_id)),
                    cause=Cause(
                        id=f"{ip.ip_id}:{transition.key}",
                        time=transition.at,
                        causation_id=causation,
                    ),
                )
            )
    _log_changes(emitting)
    return emits


def _log_changes(emitting: Sequence[tuple[IpRecord, list[tuple[Transition, WarmupState]]]]) -> None:
    """One line per batch at info (a batch at 10,000 IPs changes thousands of them, and a
    line each was 3% of its time); each IP's own at debug, built only when debug is on."""
    if len(emitting) == 1:
        ip, moments = emitting[0]
        log.info("warm-up changed", ip_id=ip.ip_id, events=[t.key for t, _ in moments])
        return
    log.info(
        "warm-ups changed",
        ips=len(emitting),
        events=sum(len(moments) for _, moments in emitting),
        ip_ids=[ip.ip_id for ip, _ in emitting[:10]],
    )
    if _stdlib_log.isEnabledFor(logging.DEBUG):
        for ip, moments in emitting:
            log.debug("warm-up changed", ip_id=ip.ip_id, events=[t.key for t, _ in moments])


@dataclass(frozen=True)
class BatchOfSends:
    """The batch being applied, as finding the sends that crossed a threshold needs it: each
    IP's own part of the tally, and its sends in the order they were read."""

    counted: Mapping[str, SendCounters]
    sends_of: Callable[[str], Sequence[BatchSend]]


def _crossings_noted(
    config: WarmupConfig,
    ips: Sequence[IpRecord],
    judged: Mapping[str, WarmupState],
    counters: Mapping[str, SendCounters],
    batch: BatchOfSends,
) -> dict[str, list[Crossing]]:
    """The crossings among the batch's sends that a later decision can look for: in the hours
    each IP's clock has not judged yet, of the thresholds its state as judged now can be
    under next (`watch`)."""
    noted: dict[str, list[Crossing]] = {}
    for ip in ips:
        taken = batch.counted.get(ip.ip_id)
        state = judged.get(ip.ip_id)
        if taken is None or state is None or state.closed_until is None:
            continue
        if ip.stopped_by is not None:
            continue
        last_day = max(at for at, _ in taken).date()
        watching = watch(state, config.schedule_of(ip.ip_id, state), config.rules, last_day)
        if watching is None:
            continue
        found = crossings_in(
            watching,
            counters.get(ip.ip_id, NO_SENDS),
            taken,
            _sends_of(batch, ip.ip_id),
            state.closed_until,
            config.rules,
            limits_judged=True,
        )
        if found:
            noted[ip.ip_id] = found
    return noted


def _sends_of(batch: BatchOfSends, ip_id: str) -> Callable[[], Sequence[BatchSend]]:
    return lambda: batch.sends_of(ip_id)


async def _crossing_sends(
    conn: asyncpg.Connection,
    config: WarmupConfig,
    emitting: Sequence[tuple[IpRecord, list[tuple[Transition, WarmupState]]]],
    commanded: set[Transition],
    counters: Mapping[str, SendCounters],
    batch: BatchOfSends | None,
) -> dict[tuple[str, Transition], str]:
    """The send that crossed the threshold of each limit or suspension about to be emitted:
    one of the batch being applied, found exactly for that threshold, else one an earlier
    batch noted (the store)."""
    crossed: dict[tuple[str, Transition], str] = {}
    unnoted: list[tuple[tuple[str, Transition], tuple[str, Sought]]] = []
    for ip, moments in emitting:
        wanted = [
            (transition, sought_)
            for transition, after in moments
            if transition not in commanded and (sought_ := sought(transition, after)) is not None
        ]
        taken = batch.counted.get(ip.ip_id) if batch is not None else None
        found: list[str | None] = [None] * len(wanted)
        if batch is not None and taken is not None:
            found = crossings_in_batch(
                [w for _, w in wanted],
                counters.get(ip.ip_id, NO_SENDS),
                taken,
                _sends_of(batch, ip.ip_id),
                config.rules,
            )
        for (transition, sought_), send in zip(wanted, found, strict=True):
            if send is not None:
                crossed[(ip.ip_id, transition)] = send
            else:
                unnoted.append(((ip.ip_id, transition), (ip.ip_id, sought_)))
    answers = await store.find_crossings(conn, [w for _, w in unnoted])
    for (key, _), answer in zip(unnoted, answers, strict=True):
        if answer is not None:
            crossed[key] = answer
        else:
            log.info(
                "no send noted as crossing the threshold; the input applied is named",
                ip_id=key[0],
                transition=key[1].key,
            )
    return crossed


def _cause_of(
    ip_id: str,
    transition: Transition,
    commanded: set[Transition],
    causes: Mapping[str, str],
    crossed: Mapping[tuple[str, Transition], str],
) -> str | None:
    """The `causationid` of an emitted transition: a command's step names the command; a
    limit or a suspension the send that crossed its threshold, else the input being applied
    (none in the sweep); anything else decided by event time passing, none."""
    if transition in commanded:
        return causes.get(ip_id)
    if not isinstance(transition, DailyLimitReached | HourlyLimitReached | Suspended):
        return None
    return crossed.get((ip_id, transition)) or causes.get(ip_id)


# ---- overflow: where a limit's excess goes (warmup's own copy of the pools) -------------------


def _limits_in(moments: Sequence[tuple[Transition, WarmupState]]) -> bool:
    return any(isinstance(t, DailyLimitReached | HourlyLimitReached) for t, _ in moments)


async def overflow_of(conn: asyncpg.Connection, ips: Sequence[IpRecord]) -> dict[str, Overflow]:
    """Each IP's overflow pool, judged on the pools and statuses warmup knows now (its own
    copy of `pool.state_changed`, its own states, this batch's changes saved)."""
    if not ips:
        return {}
    accounts = {ip.account_id for ip in ips}
    pools = await store.account_pools(conn, accounts)
    active = await store.active_ips(conn, accounts)
    return {ip.ip_id: choose_overflow(ip.ip_id, pools.get(ip.account_id, []), active) for ip in ips}


def _with_overflow(
    view: dict[str, Any], transition: Transition, overflow: Overflow | None
) -> dict[str, Any]:
    """A limit event's data: the view and where the excess goes (`IpLimitView`); any other
    event's: the view (`IpView`)."""
    if overflow is None or not isinstance(transition, DailyLimitReached | HourlyLimitReached):
        return view
    return {**view, "overflow": overflow.as_data()}


SENDS = f"{NAME}/{topics.SEND_RECORDED}"  # the subscription whose partitions are IPs' clocks


async def _command_now(
    conn: asyncpg.Connection, config: WarmupConfig, ip: IpRecord, event: Received
) -> datetime:
    """When an input from another topic (a command, the registry) brings an IP up to date:
    at its own event time, but never past the IP's own clock (its send partition's, or the
    slowest partition's before its first send), which another topic must not run ahead."""
    own = await _own_clock(conn, ip)
    at = decision_time(event.time, config.lateness)
    return at if own is None else min(at, decision_time(own, config.lateness))


async def _own_clock(conn: asyncpg.Connection, ip: IpRecord) -> datetime | None:
    clock = await event_clock.load_subscription(conn, SENDS)
    return clock.slowest() if ip.partition is None else clock.of(ip.partition)


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
    elif not data.auto_warmup and ip.stopped_by is None and ip.state.status == "not_started":
        # Requested without a warm-up: active at once, at full volume (status `skipped`).
        decided[ip.ip_id] = skip(ip.state, _rewarm_schedule(config, ip, data), event.time)
    nows = {ip.ip_id: await _command_now(conn, config, ip, event)}
    emits = await settle(conn, config, [ip], nows, {ip.ip_id: event.id}, decided, refresh_all=True)
    if any(e.type == "ip.warmup_started" for e in emits):
        return emits
    return await _announced(conn, ip.ip_id, "ip.registered", emits)


def _rewarm_schedule(config: WarmupConfig, ip: IpRecord, data: IpProvisioned) -> Schedule:
    """The schedule a skipped IP keeps for its idle re-warm: the one requested, else (or when
    it is unknown) the default."""
    try:
        return select_schedule(
            config.schedules, data.warmup_schedule, config.rules.default_schedule
        )
    except UnknownSchedule as error:
        log.warning("unknown schedule for a skipped warm-up; the default one is kept",
                    ip_id=ip.ip_id, reason=str(error))  # fmt: skip
        return select_schedule(config.schedules, None, config.rules.default_schedule)


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
    nows = {ip.ip_id: await _command_now(conn, config, ip, event)}
    emits = await settle(
        conn, config, [ip], nows, {ip.ip_id: event.id}, {ip.ip_id: step}, refresh_all=True
    )
    return [accepted(event), *emits]


# ---- ip.commands: ip.warmup.stop, ip.warmup.resume ------------------------------------------


async def _commanded_ip(
    conn: asyncpg.Connection, event: Received
) -> tuple[IpRecord | None, Emit | None]:
    """The command's IP, locked, or the rejection to answer with."""
    data: IpWarmupStop | IpWarmupResume = event.data
    ip = await _known_ip(conn, data.ip_id)
    # Another account's IP reads exactly like a missing one.
    if ip is None or ip.account_id != data.account_id:
        return None, _rejected(event, "not_found", f"no IP {data.ip_id} in this account")
    if ip.stopped_by is not None:
        reason = STOPPED.get(ip.stopped_by, f"stopped: {ip.stopped_by}")
        return None, _rejected(event, "conflict", f"the warm-up is {reason}")
    return ip, None


async def _commanded_step(
    conn: asyncpg.Connection,
    event: Received,
    config: WarmupConfig,
    decide: Callable[[WarmupState], Step],
) -> Sequence[Emit]:
    """A command that changes a started warm-up at its own event time: first what the IP's
    own clock allows before it (as a batch or the sweep would decide it, no cause), then the
    command's step (`decide`, a pure rule; `WarmupRejected` answers `conflict`)."""
    ip, rejection = await _commanded_ip(conn, event)
    if ip is None:
        return [cast(Emit, rejection)]
    nows = {ip.ip_id: await _command_now(conn, config, ip, event)}
    emits = await settle(conn, config, [ip], nows, {})
    ip = cast(IpRecord, await store.lock_ip(conn, ip.ip_id))
    try:
        step = decide(ip.state)
    except WarmupRejected as error:
        return [*emits, _rejected(event, "conflict", str(error))]
    emits += await settle(
        conn, config, [ip], nows, {ip.ip_id: event.id}, {ip.ip_id: step}, refresh_all=True
    )
    return [accepted(event), *emits]


async def on_warmup_stop(
    conn: asyncpg.Connection, event: Received, config: WarmupConfig
) -> Sequence[Emit]:
    """`ip.warmup.stop`: a warming or suspended IP becomes `active` at once, at full volume
    (`ip.warmup_stopped`, warm-up status `stopped`); any other IP is a `conflict`."""
    return await _commanded_step(conn, event, config, lambda state: stop(state, event.time))


async def on_warmup_resume(
    conn: asyncpg.Connection, event: Received, config: WarmupConfig
) -> Sequence[Emit]:
    """`ip.warmup.resume`: a suspended IP resumes now, one day back (`ip.resumed`), exactly
    as the automatic resume would; any other IP is a `conflict`."""
    return await _commanded_step(conn, event, config, lambda state: resume_now(state, event.time))


# ---- pool.state_changed: warmup's own copy of the named pools ---------------------------------


async def on_pool_changed(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    """Keep the pool's whole state as the event carries it (overflow is judged on this copy).
    The dynamic pools are not named pools: they take no overflow."""
    data: PoolChanged = event.data
    if data.name in DYNAMIC_POOLS:
        return []
    if event.type == "pool.deleted":
        await store.pool_deleted(conn, data.account_id, data.name)
        return []
    previous = data.previous_name if event.type == "pool.renamed" else None
    await store.pool_changed(
        conn, data.account_id, data.name, data.is_default, data.ip_ids, event.time, previous
    )
    return []


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
    nows = {ip.ip_id: await _command_now(conn, config, ip, event)}
    emits = await settle(conn, config, [ip], nows, {}, refresh_all=True)
    return await _announced(conn, ip.ip_id, event.type, emits)


# ---- send.recorded (batches) -----------------------------------------------------------------


class SendsRead:
    """The warmup consumer's BatchDigest: the batch's new sends tallied per address and
    account as they are claimed (`BatchTally`), before the IPs they name are locked."""

    __slots__ = ("tally",)

    def __init__(self) -> None:
        self.tally = BatchTally()

    def add(self, fresh: Sequence[Received]) -> None:
        self.tally.add(_recorded(fresh))


def _recorded(fresh: Sequence[Received]) -> Iterator[RecordedSend]:
    for item in fresh:
        data: SendFields = item.data
        yield item.event.id, data.account_id, data.ip, item.event.time, data.outcome


async def on_sends(
    conn: asyncpg.Connection,
    fresh: list[Received],
    clocks: Mapping[int, datetime],
    config: WarmupConfig,
    digest: SendsRead,
) -> BatchResult:
    """Count a batch of (already deduplicated) sends and bring the IPs they touch up to date.

    Counting is one set-based upsert of the batch's tally. Each IP is then judged on its own
    partition's clock after the batch (`clocks`), less the allowed lateness: never on the
    time of another partition's sends, which a batch may mix in. `digest` is the batch's
    SendsRead: the pipeline builds it (as the batch is claimed, for a large one).
    """
    ips = await store.lock_by_address(conn, digest.tally.addresses)
    owners = {ip.address: Owner(ip.ip_id, ip.account_id) for ip in ips}
    attribution = digest.tally.attribute(owners, lambda: _recorded(fresh))
    result = BatchResult()

    for position in attribution.foreign:
        data: SendFields = fresh[position].data
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
    tallied = wide_rows(attribution.counted)
    counted = await store.count_sends(conn, tallied)

    touched = [ip for ip in ips if ip.ip_id in attribution.latest]
    read_on = {ip_id: fresh[position].partition for ip_id, position in attribution.latest.items()}
    await store.save_partitions(
        conn, {ip.ip_id: read_on[ip.ip_id] for ip in touched if ip.partition != read_on[ip.ip_id]}
    )
    nows = {ip.ip_id: decision_time(clocks[read_on[ip.ip_id]], config.lateness) for ip in touched}
    causes = {ip_id: fresh[position].id for ip_id, position in attribution.latest.items()}
    batch = BatchOfSends(counters_by_ip(tallied), _sends_of_ip(attribution))
    # Only the IPs something could happen to are brought up to date (`must_settle`); the
    # others' sends are counted, and their views read them from the counters.
    settling = await _to_settle(conn, config, touched, nows, counted)
    result.extend(await settle(conn, config, settling, nows, causes, batch=batch))
    # The others stay as they are judged; a crossing among their sends is noted all the same.
    chosen = {ip.ip_id for ip in settling}
    others = [ip for ip in touched if ip.ip_id not in chosen]
    await _leave_quiet(conn, config, others, nows)
    read_up_to = {ip.ip_id: clocks[read_on[ip.ip_id]] for ip in others}
    await _note_unsettled(conn, config, others, counted, batch, read_up_to)
    return result


async def _note_unsettled(
    conn: asyncpg.Connection,
    config: WarmupConfig,
    ips: Sequence[IpRecord],
    counted: store.Counted,
    batch: BatchOfSends,
    read_up_to: Mapping[str, datetime],
) -> None:
    """Note the crossings among the sends of IPs the batch did not bring up to date (each
    judged as it stands). Whether the batch can hold one is told from the counting
    statement's totals (`may_cross`); only the IPs where it can have their counters read.
    `read_up_to` is each IP's partition clock: no send of it later than that was read."""
    watched = {}
    for ip in ips:
        state, taken = ip.state, batch.counted.get(ip.ip_id)
        if taken is None or ip.stopped_by is not None or state.closed_until is None:
            continue
        schedule = config.schedule_of(ip.ip_id, state)
        if schedule is None or _too_few_to_cross(config, schedule, ip.ip_id, taken, counted):
            continue
        last_day = max(at for at, _ in taken).date()
        watching = watch(state, schedule, config.rules, last_day)
        if watching is not None:
            watched[ip.ip_id] = (ip, watching)
    if not watched:
        return
    # The day's count up to the watermark's hour: the day's, less what was read ahead of it.
    watermarks = {i: cast(datetime, ip.state.closed_until) for i, (ip, _) in watched.items()}
    # Only a partition read into a later hour can hold sends of it.
    ahead = await store.sent_after_hour(
        conn, {i: w for i, w in watermarks.items() if read_up_to[i] >= w + HOUR}
    )
    maybe: list[IpRecord] = []
    for ip_id, (ip, watching) in watched.items():
        taken = batch.counted[ip_id]
        watermark = watermarks[ip_id]
        day_sent, _ = counted.on(ip_id, watermark)
        through = (day_sent or 0) - ahead.get(ip_id, 0) - taken.day_through(watermark).sent
        totals = BatchTotals(
            through,
            {day: counted.days.get((ip_id, day), 0) for day in {at.date() for at, _ in taken}},
            {at: counted.hours.get((ip_id, at.date(), at.hour), 0) for at, _ in taken},
        )
        if may_cross(watching, watermark, taken, totals, config.rules, limits_judged=True):
            maybe.append(ip)
    if not maybe:
        return
    counters = await store.counters_since(
        conn, {ip.ip_id: watermarks[ip.ip_id].date() for ip in maybe}
    )
    judged = {ip.ip_id: ip.state for ip in maybe}
    await store.note_crossings(conn, _crossings_noted(config, maybe, judged, counters, batch))


def _too_few_to_cross(
    config: WarmupConfig,
    schedule: Schedule,
    ip_id: str,
    taken: SendCounters,
    counted: store.Counted,
) -> bool:
    """Whether the IP's counts after the batch, on each day and in each hour it counted sends
    in, are below every threshold of its schedule (`below_every_threshold`)."""
    hours = [at for at, _ in taken]
    return below_every_threshold(
        schedule,
        config.rules,
        (counted.days.get((ip_id, at.date()), 0) for at in hours),
        (counted.hours.get((ip_id, at.date(), at.hour), 0) for at in hours),
    )


async def _to_settle(
    conn: asyncpg.Connection,
    config: WarmupConfig,
    touched: Sequence[IpRecord],
    nows: Mapping[str, datetime],
    counted: store.Counted,
) -> list[IpRecord]:
    """The IPs the batch must bring up to date (`must_settle`), in the order given. Where the
    day's count alone does not tell, the largest count of their day's hours from the
    watermark's on is read."""
    chosen: set[str] = set()
    unsure: dict[str, tuple[datetime, datetime]] = {}
    for ip in touched:
        now = nows[ip.ip_id]
        if not _must_settle(config, ip, now, counted):
            continue
        if _must_settle(config, ip, now, counted, hour_peak=0):
            chosen.add(ip.ip_id)
        else:  # only an hour at the hourly limit would make it decide something
            watermark = cast(datetime, ip.state.closed_until)
            unsure[ip.ip_id] = (watermark, hour_of(watermark.date(), 23))
    peaks = await store.hour_peaks(conn, unsure)
    for ip in touched:
        if ip.ip_id in peaks and _must_settle(
            config, ip, nows[ip.ip_id], counted, hour_peak=peaks[ip.ip_id]
        ):
            chosen.add(ip.ip_id)
    return [ip for ip in touched if ip.ip_id in chosen]


async def _leave_quiet(
    conn: asyncpg.Connection,
    config: WarmupConfig,
    ips: Sequence[IpRecord],
    nows: Mapping[str, datetime],
) -> None:
    """Of the IPs the batch left as they stand, those behind their clock: the sweep leaves
    them alone until their `quiet_until`."""
    quiet = {}
    for ip in ips:
        watermark = ip.state.closed_until
        if watermark is None or watermark >= hour_start(nows[ip.ip_id]):
            continue
        until = quiet_until(ip.state, config.rules)
        if until != ip.quiet_until:
            quiet[ip.ip_id] = until
    await store.leave_quiet(conn, quiet)


def _must_settle(
    config: WarmupConfig,
    ip: IpRecord,
    now: datetime,
    counted: store.Counted,
    hour_peak: int | None = None,
) -> bool:
    if ip.state.closed_until is None:
        return True
    day_sent, hour_sent = counted.on(ip.ip_id, ip.state.closed_until)
    schedule = config.schedules.get(ip.state.schedule) if ip.state.schedule else None
    return must_settle(
        ip.state, schedule, config.rules, now, ip.stopped_by, day_sent, hour_sent, hour_peak
    )


def _sends_of_ip(attribution: Attribution) -> Callable[[str], Sequence[BatchSend]]:
    """Each IP's sends in the batch, in the order they were read (`in_hours`)."""
    sends = attribution.sends
    return lambda ip_id: sends.get(ip_id, ())


# ---- the close-days sweep --------------------------------------------------------------------


async def close_days(
    conn: asyncpg.Connection, clocks: Clocks, config: WarmupConfig
) -> Sequence[Emit]:
    """Close the hours and days of IPs whose partition moved on without sends for them
    (holds), resume suspended IPs, re-warm idle active ones. Idempotent: an IP's own
    watermark only moves forward, and event ids derive from transition keys.

    Each IP is judged on its own send partition's clock, as a batch would judge it; an IP
    none of whose sends was read yet (its partition unknown) on the slowest partition's
    clock, with the sweep's larger allowance, and not at all until every partition has
    been read."""
    sends = clocks.of(SENDS)
    nows_by_partition = {p: decision_time(at, config.lateness) for p, at in sends.judged().items()}
    slowest = sends.slowest()
    if slowest is not None:
        # No IP judges a day before the slowest partition's (less the lateness) any more.
        await store.forget_crossings(conn, day_start(slowest.date()) - DAY)
    unplaced = decision_time(slowest, config.sweep_lateness) if slowest is not None else None
    ips = await store.due(
        conn,
        {p: hour_start(now) for p, now in nows_by_partition.items()},
        hour_start(unplaced) if unplaced is not None else None,
        sorted(config.schedules),
        config.sweep_batch,
    )
    nows = {
        ip.ip_id: nows_by_partition[ip.partition] if ip.partition is not None else unplaced
        for ip in ips
    }
    return await settle(conn, config, ips, nows, {})  # type: ignore[arg-type]
