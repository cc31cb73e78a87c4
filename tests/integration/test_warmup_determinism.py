"""One recorded log of sends, consumed four ways, must give the same warm-up: the same state and
the same emitted events (ids, types, times, data and causes), over the real broker and real
Postgres.

(a) a restarted worker reads the whole log as a backlog, in large batches;
(b) the same backlog in tiny batches;
(c) one partition paused and read long after the others have been read to the end;
(d) two replicas share the backlog and one is killed (SIGKILL) in the middle.

The log covers eight IPs on three partitions over four event-time days, with hourly and daily
limits reached, advances, low-volume and bounce holds, a complaint spike that suspends an IP
and the automatic resume a day later, an IP whose first send comes on day 3, and an IP that
never sends (judged by the sweep on the slowest partition's clock).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.warmup import store
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared import database
from shared.client import cloud_event
from shared.contract import topics
from shared.runtime import Fleet
from tests.integration.processes import ServiceProcess
from tests.integration.replaying import (
    Outcome,
    Replay,
    assert_same,
    partition_of,
    pause_partition,
)
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
D1 = datetime(2026, 1, 5, tzinfo=UTC)
DAY, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
ACCOUNTS = [f"acct_d{i}" for i in range(8)]
STATE = """SELECT w.ip_id, w.state::text, w.status, v.warmup::text, v.reputation_score
           FROM warmup.warmup_ips w LEFT JOIN warmup.ip_warmup_views v USING (ip_id)
           ORDER BY w.ip_id"""
COUNTED = """SELECT coalesce(sum(delivered + deferred + bounced + complained + dropped), 0)
             FROM warmup.warmup_counters"""


def rules() -> WarmupSettings:
    # A complaint spike may suspend from 20 sends of the day on (1,000 by default).
    return WarmupSettings(_env_file=None, suspend_min_sends=20)  # type: ignore[call-arg]


def recorded_log(ips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log: each IP's sends, merged roughly in event-time order, with fixed ids and
    outcomes."""
    rng = random.Random(20261202)
    sends: list[tuple[datetime, int, dict[str, Any]]] = []

    def emit(ip: dict[str, Any], at: datetime, outcome: str) -> None:
        n = len(sends)
        event = cloud_event(
            "send.recorded",
            {
                "account_id": ip["account_id"],
                "ip": ip["address"],
                "domain": "news.example.com",
                "outcome": outcome,
            },
            time=at,
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"determinism/{n}")),
        )
        # Published up to two minutes out of event-time order (within the five minutes of
        # allowed lateness), as sends from many MTAs arrive.
        sends.append((at + rng.randrange(120) * timedelta(seconds=1), n, event))

    def hours(ip: dict[str, Any], day: int, first: int, last: int, per_hour: int, mix: Any) -> None:
        for hour in range(first, last + 1):
            for k in range(per_hour):
                at = D1 + day * DAY + hour * H + k * (H / per_hour) + rng.randrange(30) * 1e-3 * M
                emit(ip, at, mix(k))

    clean = lambda k: "deferred" if k == 7 else "delivered"  # noqa: E731
    steady, busy, busiest, quiet, bouncy, complainer, late, _idle = ips
    for day in range(4):
        hours(steady, day, 9, 13, 30, clean)  # limits on days 1-2, then held for low volume
        hours(busy, day, 9, 13, 40, clean)  # also reaches day 3's hourly limit
        hours(busiest, day, 9, 13, 60, clean)  # earns day 4
        hours(quiet, day, 10, 10, 3, clean)  # held for low volume every day
        # Bounces over 5% hold its first two days; clean after.
        bouncing = (lambda k: "bounced" if k % 5 == 0 else "delivered") if day < 2 else clean
        hours(bouncy, day, 9, 11, 30, bouncing)
        # Day 2's first hour is full of complaints: suspended at 10:00, resumed a day later.
        if day == 1:
            hours(complainer, day, 9, 9, 30, lambda k: "complained" if k % 10 == 0 else "delivered")
            hours(complainer, day, 10, 12, 30, clean)
        else:
            hours(complainer, day, 9, 12, 30, clean)
        if day >= 2:
            hours(late, day, 9, 12, 30, clean)  # its first send is on day 3
    # Day 4 closes for every IP that sends: each one's partition reads past its midnight.
    for ip in ips[:7]:
        emit(ip, D1 + 4 * DAY + H, "delivered")
    return [event for _, _, event in sorted(sends, key=lambda s: (s[0], s[1]))]


async def provision(replay: Replay) -> list[dict[str, Any]]:
    """The eight IPs, one request after another (so each gets the same address every time),
    each registered and warming before the log is published."""
    settings = replay.settings()
    fleet = replay.fleet(
        [build_provisioner(settings, settings.provisioner), build_warmup(settings, rules())],
        settings,
    )
    await fleet.start()
    try:
        async with replay.follower([topics.IP_PROVISIONED, topics.IP_STATE_CHANGED]) as seen:
            ips = await replay.request_ips(seen, ACCOUNTS)
            await seen.wait_for(
                lambda s: s.event["type"] == "ip.warmup_started", count=len(ACCOUNTS)
            )
    finally:
        await fleet.stop()
    return ips


async def counted(replay: Replay) -> int:
    [(total,)] = await replay.fetch(COUNTED)
    return int(total)


async def shown(replay: Replay) -> dict[str, Any]:
    """Every IP's whole view as `ipfleet ip show` reads it (the stored part, with the running
    counts read back from the counters)."""
    conn = await database.connect(replay.dsn, "warmup")
    try:
        return {view.ip_id: view.model_dump(mode="json") for view in await store.all_views(conn)}
    finally:
        await conn.close()


async def settled(replay: Replay, total: int) -> Outcome:
    """Every send counted, nothing more decided or waiting to be published for a while."""

    async def all_counted() -> bool:
        return await counted(replay) >= total

    await wait_until(all_counted, 180, f"{replay.name}: every send to be counted")

    async def read() -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
        return await replay.fetch(STATE), await shown(replay)

    rows, views = await replay.until_still(read)
    state = {
        ip_id: (json.loads(st), status, json.loads(view or "null"), score, views.get(ip_id))
        for ip_id, st, status, view, score in rows
    }
    return Outcome(state, await replay.events([topics.IP_STATE_CHANGED]))


async def in_process(
    replay: Replay,
    log: list[dict[str, Any]],
    batch: int,
    before: Callable[[Fleet], Awaitable[None]] | None = None,
) -> Outcome:
    """The warmup worker in this process, started on the backlog (or, with `before`, given a
    chance to act once it has its partitions, before the log is published)."""
    settings = replay.settings(IPFLEET_BATCH_MAX_RECORDS=batch)
    fleet = replay.fleet([build_warmup(settings, rules())], settings)
    if before is None:
        await replay.publish(topics.SEND_RECORDED, log, key="ip")
    await fleet.start()
    try:
        if before is not None:
            await before(fleet)
            await replay.publish(topics.SEND_RECORDED, log, key="ip")
        return await settled(replay, len(log))
    finally:
        await fleet.stop()


async def two_replicas_one_killed(replay: Replay, log: list[dict[str, Any]]) -> Outcome:
    env = replay.process_env(IPFLEET_BATCH_MAX_RECORDS="200", IPFLEET_WARMUP_SUSPEND_MIN_SENDS="20")
    replicas = [
        ServiceProcess(["warmup"], env, replay.tmp_path / f"replica{n}.log") for n in range(2)
    ]
    await replay.publish(topics.SEND_RECORDED, log, key="ip")
    for replica in replicas:
        replica.start()
    try:

        async def some_counted() -> bool:
            return await counted(replay) > len(log) // 4

        await wait_until(some_counted, 120, "a quarter of the sends to be counted")
        replicas[0].kill()
        assert await counted(replay) < len(log), "the kill came too late to test anything"
        outcome = await settled(replay, len(log))
        assert replicas[1].terminate() == 0
        return outcome
    finally:
        for replica in replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.kill()


async def test_a_recorded_log_gives_the_same_warmup_however_it_is_read(
    postgres_server: Any, kafka_server: Any, tmp_path: Path
) -> None:
    outcomes: dict[str, Outcome] = {}
    ways = ("large batches", "tiny batches", "one partition paused", "two replicas, one killed")
    for name in ways:
        async with Replay(
            postgres_server.url, kafka_server.bootstrap_servers, tmp_path, name
        ) as replay:
            ips = await provision(replay)
            log = recorded_log(ips)
            if name == "large batches":
                outcomes[name] = await in_process(replay, log, batch=10_000)
            elif name == "tiny batches":
                outcomes[name] = await in_process(replay, log, batch=5)
            elif name == "one partition paused":
                # The complainer's partition: its suspension and resume are read last.
                paused = partition_of(ips[5]["address"])
                others = sum(1 for e in log if partition_of(e["data"]["ip"]) != paused)

                async def others_done(r: Replay = replay, n: int = others) -> bool:
                    return await counted(r) >= n

                pause = pause_partition(topics.SEND_RECORDED, paused, others_done)
                outcomes[name] = await in_process(replay, log, batch=10_000, before=pause)
            else:
                outcomes[name] = await two_replicas_one_killed(replay, log)

    reference = outcomes["large batches"]
    kinds = {event[0] for event in reference.events.values()}
    # The log exercises what it is meant to.
    assert {
        "ip.warmup_started",
        "ip.hourly_limit_reached",
        "ip.daily_limit_reached",
        "ip.warmup_advanced",
        "ip.suspended",
        "ip.resumed",
    } <= kinds, kinds
    holds = {view["hold_reason"] for _, _, view, *_ in reference.state.values() if view}
    assert any(h and h.startswith("low_volume") for h in holds), holds
    addresses = [
        json.loads(data)["address"]
        for kind, _, data, _ in reference.events.values()
        if kind == "ip.warmup_started"
    ]
    assert len({partition_of(a) for a in addresses}) == 3  # every partition carries IPs
    # Every limit and suspension names the send of the log that crossed its threshold (the
    # comparison below says it is the same send however the log is read).
    sends = {event["id"] for event in log}
    caused = [
        (kind, cause)
        for kind, _, _, cause in reference.events.values()
        if kind in ("ip.hourly_limit_reached", "ip.daily_limit_reached", "ip.suspended")
    ]
    assert all(cause in sends for _, cause in caused), caused
    assert_same(outcomes, "large batches")
