"""The reputation service's subscribers: load, decide (`services.reputation.domain`), persist,
emit. Each runs inside the pipeline's transaction (a savepoint per event)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog

from services.reputation import store
from services.reputation.domain import assignment, evaluation, pools
from services.reputation.domain.assignment import Change, DomainState, Move
from services.reputation.domain.bands import HealthMetrics
from services.reputation.domain.pools import AccountPools
from services.reputation.domain.refusals import Refusal
from services.reputation.domain.thresholds import merge_thresholds
from shared import command_results
from shared.contract import topics
from shared.contract.envelope import derive_event_id
from shared.contract.events import (
    CommandAccepted,
    DomainEnroll,
    DomainEvaluate,
    DomainEvaluated,
    DomainHealthChecked,
    DomainOverrideClear,
    DomainOverrideSet,
    DomainPoolChanged,
    DomainUnenroll,
    DynamicPoolsConfigure,
    DynamicPoolsConfigured,
    IpProvisioned,
    IpView,
    PoolChanged,
    PoolCreate,
    PoolDelete,
    PoolIpMembership,
    PoolRename,
)
from shared.messages import Emit, Received, Unprocessable

log = structlog.get_logger(__name__)

POOL_CHANGED = "domain.pool_changed"


# ---- answers --------------------------------------------------------------------------------


def accepted(event: Received) -> Emit:
    account_id = event.data.account_id
    return Emit(
        topics.IP_COMMAND_RESULTS,
        key=account_id,
        type="command.accepted",
        data=CommandAccepted(account_id=account_id, command_id=event.id, command_type=event.type),
    )


def rejected(event: Received, refusal: Refusal) -> list[Emit]:
    return rejected_command(event.data.account_id, event.id, event.type, refusal)


def rejected_command(
    account_id: str, command_id: str, command_type: str, refusal: Refusal
) -> list[Emit]:
    """`command.rejected`: `reason` is the refusal's code (`not_found`, `conflict`, `invalid`)."""
    return [
        command_results.rejected(
            account_id, command_id, command_type, refusal.code, refusal.message
        )
    ]


def pool_event(
    kind: str,
    account_id: str,
    pool: pools.NamedPool,
    *,
    previous_name: str | None = None,
    ip_id: str | None = None,
) -> Emit:
    """One `pool.*` event on `pool.state_changed`, carrying the pool as it now is (as it was,
    for `pool.deleted`). The pool's name tells apart several events of one input."""
    return Emit(
        topics.POOL_STATE_CHANGED,
        key=account_id,
        type=kind,
        data=PoolChanged(
            account_id=account_id,
            name=pool.name,
            previous_name=previous_name,
            is_default=pool.is_default,
            ip_ids=list(pool.ip_ids),
            ip_id=ip_id,
        ),
        discriminator=pool.name,
    )


def _pool(after: AccountPools, name: str) -> pools.NamedPool:
    pool = after.get(name)
    assert pool is not None
    return pool


# ---- named pools ----------------------------------------------------------------------------


async def on_pool_create(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: PoolCreate = event.data
    await store.lock_account(conn, data.account_id)
    after = pools.create_pool(
        await store.load_pools(conn, data.account_id), data.name, is_default=data.is_default
    )
    if isinstance(after, Refusal):
        return rejected(event, after)
    await store.create_pool(conn, data.account_id, data.name, data.is_default, event.time)
    return [accepted(event), pool_event("pool.created", data.account_id, _pool(after, data.name))]


async def on_pool_rename(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: PoolRename = event.data
    await store.lock_account(conn, data.account_id)
    before = await store.load_pools(conn, data.account_id)
    after = pools.rename_pool(before, data.name, data.new_name)
    if isinstance(after, Refusal):
        return rejected(event, after)
    await store.rename_pool(conn, data.account_id, data.name, data.new_name)
    # Domains pinned to (or unenrolled into) the pool follow it: same IPs, new name. Each is
    # locked and read again, so a health check judging it meanwhile is not overwritten.
    for domain, _ in await store.domains_sending_from(conn, data.account_id, data.name):
        record = await store.lock_domain(conn, domain)
        assert record is not None
        renamed = assignment.rename_pool_reference(record.state, data.name, data.new_name)
        await store.update_domain_state(conn, domain, renamed)
    pool = _pool(after, data.new_name)
    return [
        accepted(event),
        pool_event("pool.renamed", data.account_id, pool, previous_name=data.name),
    ]


async def on_pool_delete(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: PoolDelete = event.data
    await store.lock_account(conn, data.account_id)
    before = await store.load_pools(conn, data.account_id)
    after = pools.delete_pool(before, data.name)
    if isinstance(after, Refusal):
        return rejected(event, after)
    users = [d for d, _ in await store.domains_sending_from(conn, data.account_id, data.name)]
    if (refusal := pools.check_pool_unused(data.name, users)) is not None:
        return rejected(event, refusal)
    await store.delete_pool(conn, data.account_id, data.name)
    return [accepted(event), pool_event("pool.deleted", data.account_id, _pool(before, data.name))]


async def on_pool_add_ip(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: PoolIpMembership = event.data
    await store.lock_account(conn, data.account_id)
    status = await store.ip_status(conn, data.account_id, data.ip_id)
    before = await store.load_pools(conn, data.account_id)
    after = pools.add_ip(before, data.name, data.ip_id, status)
    if isinstance(after, Refusal):
        return rejected(event, after)
    await store.add_pool_ip(conn, data.account_id, data.name, data.ip_id, event.time)
    pool = _pool(after, data.name)
    return [accepted(event), pool_event("pool.ip_added", data.account_id, pool, ip_id=data.ip_id)]


async def on_pool_remove_ip(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: PoolIpMembership = event.data
    await store.lock_account(conn, data.account_id)
    after = pools.remove_ip(await store.load_pools(conn, data.account_id), data.name, data.ip_id)
    if isinstance(after, Refusal):
        return rejected(event, after)
    await store.remove_pool_ip(conn, data.account_id, data.name, data.ip_id)
    pool = _pool(after, data.name)
    return [
        accepted(event),
        pool_event("pool.ip_removed", data.account_id, pool, ip_id=data.ip_id),
    ]


# ---- IPs coming and going ---------------------------------------------------------------------


async def on_ip_provisioned(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    """A new IP is known from now on, and joins the pool its request named, else the
    account's default pool."""
    data: IpProvisioned = event.data
    await store.lock_account(conn, data.account_id)
    await store.ip_provisioned(
        conn, data.ip_id, data.account_id, data.address, data.status, event.time
    )
    before = await store.load_pools(conn, data.account_id)
    name = pools.pool_for_new_ip(before, data.pool)
    if name is None:
        if data.pool is not None:
            log.warning("new IP names a pool the account does not have", pool=data.pool)
        return []
    # The status as this service knows it now, not the event's: an IP whose ip.state_changed
    # said released (read first: another topic) must not come back into a pool.
    status = await store.ip_status(conn, data.account_id, data.ip_id)
    after = pools.add_ip(before, name, data.ip_id, status)
    if isinstance(after, Refusal):
        log.info("new IP not added to its pool", pool=name, reason=after.message)
        return []
    await store.add_pool_ip(conn, data.account_id, name, data.ip_id, event.time)
    return [pool_event("pool.ip_added", data.account_id, _pool(after, name), ip_id=data.ip_id)]


async def on_ip_state_changed(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    """Keep the IP's status as warmup's `ip.state_changed` carries it (with its whole view);
    a released IP also leaves its pools."""
    data: IpView = event.data
    await store.lock_account(conn, data.account_id)
    await store.ip_state_changed(
        conn, data.ip_id, data.account_id, data.address, data.status, event.time
    )
    if event.type == "ip.released":
        return await _release(conn, data)
    return []


async def _release(conn: asyncpg.Connection, data: IpView) -> list[Emit]:
    """A released IP leaves every named pool and every dynamic pool it was in."""
    before = await store.load_pools(conn, data.account_id)
    config = await store.load_dynamic_config(conn, data.account_id)
    named = before.names_containing(data.ip_id)
    dynamic = config.ips.pools_containing(data.ip_id)
    if not named and not dynamic:
        return []
    after = pools.release_ip(before, data.ip_id)
    left = config.ips.without(data.ip_id).by_pool()
    await store.release_from_pools(conn, data.account_id, data.ip_id)
    emits = [
        pool_event("pool.ip_removed", data.account_id, _pool(after, name), ip_id=data.ip_id)
        for name in named
    ]
    for name in dynamic:
        if config.enabled and not left[name]:
            log.warning("a dynamic pool lost its last IP", pool=name, account_id=data.account_id)
        remaining = pools.NamedPool(name=name, ip_ids=left[name])
        emits.append(pool_event("pool.ip_removed", data.account_id, remaining, ip_id=data.ip_id))
    return emits


# ---- dynamic pools --------------------------------------------------------------------------


async def on_dynamic_pools_configure(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: DynamicPoolsConfigure = event.data
    account_id = data.account_id
    await store.lock_account(conn, account_id)
    current = await store.load_dynamic_config(conn, account_id)
    named = [*data.good_reputation, *data.poor_reputation, *data.new_senders]
    ips = pools.check_dynamic_pools(
        await store.ip_statuses(conn, account_id, named),
        data.good_reputation,
        data.poor_reputation,
        data.new_senders,
        enabled=data.enabled,
    )
    if isinstance(ips, Refusal):
        return rejected(event, ips)
    given = data.thresholds.model_dump() if data.thresholds is not None else None
    thresholds = merge_thresholds(given, base=current.thresholds)
    if isinstance(thresholds, Refusal):
        return rejected(event, thresholds)
    if not data.enabled:
        refusal = pools.check_can_disable(await store.enrolled_domains(conn, account_id))
        if refusal is not None:
            return rejected(event, refusal)
    config = store.DynamicPoolConfig(enabled=data.enabled, thresholds=thresholds, ips=ips)
    await store.save_dynamic_config(conn, account_id, config, event.time, event.id)
    configured = DynamicPoolsConfigured(
        account_id=account_id,
        enabled=config.enabled,
        thresholds=thresholds.model_dump(),
        good_reputation=list(ips.good_reputation),
        poor_reputation=list(ips.poor_reputation),
        new_senders=list(ips.new_senders),
    )
    return [
        accepted(event),
        Emit(
            topics.POOL_STATE_CHANGED,
            key=account_id,
            type="dynamic_pools.configured",
            data=configured,
        ),
    ]


# ---- domains --------------------------------------------------------------------------------


def _no_domain(domain: str) -> Refusal:
    # Another account's domain reads exactly like one this account never enrolled.
    return Refusal("not_found", f"no domain {domain} in this account's dynamic IP pools")


async def _record_move(
    conn: asyncpg.Connection, event: Received, account_id: str, domain: str, move: Move
) -> list[Emit]:
    """Store the history record of `move`; announce it when the pool really changes. The
    record's id is the id of its `domain.pool_changed`, so the two can be matched."""
    record_id = derive_event_id(event.id, POOL_CHANGED)
    await store.add_history(conn, record_id, domain, account_id, move, event.time, event.id)
    log.info(
        "domain pool change recorded",
        domain=domain,
        prev_pool=move.prev_pool,
        new_pool=move.new_pool,
        initiated_by=move.initiated_by,
    )
    if not move.changes_pool:
        return []
    data = DomainPoolChanged(domain=domain, account_id=account_id, **move.as_event_data())
    return [Emit(topics.DOMAIN_POOL_CHANGED, key=domain, type=POOL_CHANGED, data=data)]


async def _apply_change(
    conn: asyncpg.Connection, event: Received, domain: str, change: Change
) -> list[Emit]:
    account_id = event.data.account_id
    await store.save_domain(conn, domain, account_id, change.state, event.time)
    return [accepted(event), *await _record_move(conn, event, account_id, domain, change.move)]


async def _own_domain(
    conn: asyncpg.Connection, event: Received, domain: str
) -> store.DomainRecord | None:
    """The domain, locked, when this command's account owns it; None otherwise."""
    record = await store.lock_domain(conn, domain)
    if record is None or record.account_id != event.data.account_id:
        return None
    return record


async def on_domain_enroll(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: DomainEnroll = event.data
    record = await store.lock_domain(conn, data.domain)
    if record is not None and record.account_id != data.account_id:
        return rejected(event, _no_domain(data.domain))
    config = await store.load_dynamic_config(conn, data.account_id)
    state = record.state if record is not None else DomainState()
    change = assignment.enroll(state, feature_enabled=config.enabled)
    if isinstance(change, Refusal):
        return rejected(event, change)
    return await _apply_change(conn, event, data.domain, change)


async def on_domain_unenroll(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: DomainUnenroll = event.data
    record = await _own_domain(conn, event, data.domain)
    if record is None:
        return rejected(event, _no_domain(data.domain))
    change = assignment.unenroll(record.state, data.replacement_pool)
    if isinstance(change, Refusal):
        return rejected(event, change)
    if data.replacement_pool is not None:
        account_pools = await store.load_pools(conn, data.account_id)
        refusal = pools.check_pool_reference(account_pools, data.replacement_pool)
        if refusal is not None:
            return rejected(event, refusal)
    return await _apply_change(conn, event, data.domain, change)


async def on_domain_override_set(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: DomainOverrideSet = event.data
    record = await _own_domain(conn, event, data.domain)
    if record is None:
        return rejected(event, _no_domain(data.domain))
    change = assignment.set_override(record.state, data.pool)
    if isinstance(change, Refusal):
        return rejected(event, change)
    refusal = pools.check_pool_reference(await store.load_pools(conn, data.account_id), data.pool)
    if refusal is not None:
        return rejected(event, refusal)
    return await _apply_change(conn, event, data.domain, change)


async def on_domain_override_clear(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    data: DomainOverrideClear = event.data
    record = await _own_domain(conn, event, data.domain)
    if record is None:
        return rejected(event, _no_domain(data.domain))
    change = assignment.clear_override(record.state)
    if isinstance(change, Refusal):
        return rejected(event, change)
    return await _apply_change(conn, event, data.domain, change)


async def on_domain_evaluate(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    """A dry run: answers which pool a check with these metrics would give; stores nothing."""
    data: DomainEvaluate = event.data
    record = await store.load_domain(conn, data.domain)
    if record is not None and record.account_id != data.account_id:
        return rejected(event, _no_domain(data.domain))
    config = await store.load_dynamic_config(conn, data.account_id)
    metrics = HealthMetrics(
        bounce_rate=data.bounce_rate,
        complaint_rate=data.complaint_rate,
        processed_count=data.processed_count,
    )
    answer = evaluation.evaluate(
        metrics, config.thresholds, record.state if record is not None else None
    )
    evaluated = DomainEvaluated(
        account_id=data.account_id,
        command_id=event.id,
        domain=data.domain,
        pool=answer.pool,
        metrics=answer.metrics(),
        # Beyond the contract minimum (allowed as extra fields): why, and what a real check
        # would do (`moved`, `held_in_poor`, `held_by_override`, `not_enrolled`, ...).
        reason=answer.reason,
        outcome=answer.outcome.value,
    )
    return [
        Emit(
            topics.IP_COMMAND_RESULTS, key=data.account_id, type="domain.evaluated", data=evaluated
        )
    ]


async def on_health_checked(conn: asyncpg.Connection, event: Received) -> Sequence[Emit]:
    """Judge a health check. Every check is stored with what it did; only an enrolled domain
    can move. A check naming another account than the domain's owner is dead-lettered."""
    data: DomainHealthChecked = event.data
    record = await store.lock_domain(conn, data.domain)
    if record is not None and record.account_id != data.account_id:
        raise Unprocessable(
            f"domain {data.domain} belongs to another account than {data.account_id}"
        )
    state = record.state if record is not None else DomainState()
    config = await store.load_dynamic_config(conn, data.account_id)
    metrics = HealthMetrics(
        bounce_rate=data.bounce_rate,
        complaint_rate=data.complaint_rate,
        processed_count=data.processed_count,
    )
    judgement = assignment.judge_health_check(state, metrics, config.thresholds)
    stored = await store.add_check(
        conn, event.id, data.domain, data.account_id, event.time, metrics, judgement, state.pool
    )
    if not stored:
        return []  # applied before (the inbox was pruned since)
    log.info(
        "health check judged",
        domain=data.domain,
        outcome=judgement.outcome.value,
        reason=judgement.reason,
    )
    if record is None:
        return []  # a domain never enrolled: the stored check is all there is
    if judgement.state != state:
        await store.save_domain(conn, data.domain, data.account_id, judgement.state, event.time)
    if judgement.move is None:
        return []
    return await _record_move(conn, event, data.account_id, data.domain, judgement.move)
