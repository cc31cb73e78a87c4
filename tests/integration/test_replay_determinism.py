"""The provisioner's cooldowns and reputation's moves come out the same whatever the batching
or how far one partition is read ahead of another: one recorded log each, read as a backlog
in large batches, in tiny batches, and with one partition paused until the others are read
to the end, over the real broker and real Postgres.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.reputation.service import build as build_reputation
from services.settings import FleetSettings
from services.warmup.service import build as build_warmup
from shared.client import cloud_event
from shared.contract import topics
from shared.runtime import Fleet, Service
from tests.integration.replaying import Outcome, Replay, assert_same, partition_of, pause_partition
from tests.integration.test_reputation import GOOD, POOR, ask, enable_dynamic_pools, outcome
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
WAYS = ("large batches", "tiny batches", "one partition paused")


async def read_backlog(
    replay: Replay,
    build: Callable[[FleetSettings], list[Service]],
    topic: str,
    key: str,
    log: list[dict[str, Any]],
    done: Callable[[], Awaitable[bool]],
    finish: Callable[[], Awaitable[Outcome]],
    paused: int | None,
    others_done: Callable[[], Awaitable[bool]] | None,
) -> Outcome:
    """The services of `build` in this process read `log`: as a backlog (large or tiny
    batches), or with partition `paused` held back until `others_done()`."""
    if paused is not None:
        # The held-back partition is read one event at a time with sweeps running in between,
        # as often as they can: a sweep that judged it on another partition's clock would act
        # between two of its events.
        settings = replay.settings(IPFLEET_BATCH_MAX_RECORDS=1, IPFLEET_SWEEP_SECONDS=0.02)
    else:
        batch = 1 if replay.name == "tiny batches" else 10_000
        settings = replay.settings(IPFLEET_BATCH_MAX_RECORDS=batch)
    fleet: Fleet = replay.fleet(build(settings), settings)
    if paused is None:
        await replay.publish(topic, log, key=key)
    await fleet.start()
    try:
        if paused is not None:
            assert others_done is not None
            await pause_partition(topic, paused, others_done)(fleet)
            await replay.publish(topic, log, key=key)
        await wait_until(done, 120, f"{replay.name}: the log to be read")
        return await finish()
    finally:
        await fleet.stop()


# ---- provisioner: cooldowns ------------------------------------------------------------------

ACCOUNTS = ["acct_c0", "acct_c1", "acct_c2", "acct_c3"]
REGISTRY = """SELECT ip_id, account_id, host(address), status, pool, rdns, cooldown_until,
                     released_at FROM provisioner.ips ORDER BY ip_id"""


def command(kind: str, account: str, at: datetime, n: int, **data: Any) -> dict[str, Any]:
    return cloud_event(kind, {"account_id": account, **data}, time=at, event_id=f"cmd-{n}")


def cooldown_log(ips: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per account: a release, commands during the cooldown and after its end (answered by
    the IP's state at their own time), a second release whose cooldown only the account's
    later commands end."""
    log = []
    for i, account in enumerate(ACCOUNTS):
        first, second = ips[account]
        at = T0 + i * 7 * timedelta(minutes=1)
        for hours, kind, ip, data in (
            (1, "ip.release", first, {}),
            (2, "ip.update", second, {"pool": "blue"}),
            (10, "ip.update", first, {"rdns": "o1.example"}),  # in cooldown: conflict
            (26, "ip.update", first, {"pool": "red"}),  # released at 25 h: conflict
            (27, "ip.release", second, {}),
            (30, "ip.update", second, {"rdns": "o2.example"}),  # in cooldown: conflict
            (60, "ip.update", "ip_unknown", {"pool": "x"}),  # not_found; 51 h has passed
        ):
            log.append(command(kind, account, at + hours * H, len(log), ip_id=ip, **data))
    # In event-time order, accounts interleaved; a few minutes out of order across accounts
    # (within the allowed lateness), as commands from many clients arrive.
    jitter = random.Random(5)
    return sorted(log, key=lambda e: (e["time"], jitter.random()))


async def provision_pairs(replay: Replay) -> dict[str, list[str]]:
    """Two IPs per account, one request after another (the same addresses every time)."""
    settings = replay.settings()
    fleet = replay.fleet([build_provisioner(settings, settings.provisioner)], settings)
    await fleet.start()
    ips: dict[str, list[str]] = {}
    try:
        async with replay.follower([topics.IP_PROVISIONED]) as seen:
            async with replay.publisher() as publisher:
                for n, account in enumerate(a for a in ACCOUNTS for _ in range(2)):
                    request = cloud_event(
                        "ip.requested",
                        {"account_id": account, "plan": "enterprise"},
                        time=T0,
                        event_id=f"request-{n}",
                    )
                    await publisher.send(topics.IP_REQUESTED, request, key=account)
                    [done] = await seen.wait_for(
                        lambda s, r=request: s.event.get("causationid") == r["id"]
                    )
                    ips.setdefault(account, []).append(done.event["data"]["ip_id"])
    finally:
        await fleet.stop()
    return ips


async def test_cooldowns_end_the_same_however_the_commands_are_read(
    postgres_server: Any, kafka_server: Any, tmp_path: Path
) -> None:
    outcomes: dict[str, Outcome] = {}
    for name in WAYS:
        async with Replay(
            postgres_server.url, kafka_server.bootstrap_servers, tmp_path, name
        ) as replay:
            ips = await provision_pairs(replay)
            log = cooldown_log(ips)
            paused = partition_of(ACCOUNTS[0]) if name == "one partition paused" else None
            every = [e["id"] for e in log]
            others = [e["id"] for e in log if partition_of(e["data"]["account_id"]) != paused]

            async def answered(r: Replay = replay, ids: list[str] = every) -> bool:
                return await r.applied("provisioner/ip.commands", ids) >= len(ids)

            async def others_answered(r: Replay = replay, ids: list[str] = others) -> bool:
                return await r.applied("provisioner/ip.commands", ids) >= len(ids)

            async def finish(r: Replay = replay) -> Outcome:
                state = await r.until_still(lambda: r.fetch(REGISTRY))
                watched = [topics.IP_PROVISIONED, topics.IP_COMMAND_RESULTS]
                return Outcome(state, await r.events(watched))

            outcomes[name] = await read_backlog(
                replay,
                lambda s: [build_provisioner(s, s.provisioner)],
                topics.IP_COMMANDS,
                "account_id",
                log,
                answered,
                finish,
                paused,
                others_answered if paused is not None else None,
            )

    reference = outcomes["large batches"]
    statuses = [row[3] for row in reference.state]
    assert statuses.count("released") == 2 * len(ACCOUNTS), reference.state
    kinds = [body[0] for body in reference.events.values()]
    assert kinds.count("ip.released") == 2 * len(ACCOUNTS)
    assert kinds.count("command.rejected") == 4 * len(ACCOUNTS)
    assert_same(outcomes, "large batches")


# ---- reputation: domain moves ----------------------------------------------------------------

DOMAINS = [f"d{i}.example" for i in range(9)]
HISTORY = """SELECT id, domain, prev_pool, new_pool, reason, initiated_by, occurred_at
             FROM reputation.domain_history ORDER BY id"""
CHECKED = "SELECT count(*) FROM reputation.health_checks"


def health_log() -> list[dict[str, Any]]:
    """Each domain checked every hour for a day and a half, good and poor by turns of its own."""
    rng = random.Random(11)
    log = []
    for d, domain in enumerate(DOMAINS):
        for hour in range(36):
            metrics = GOOD if rng.random() < 0.6 else POOR
            log.append(
                cloud_event(
                    "domain.health_checked",
                    {"account_id": "acct_rep", "domain": domain, **metrics},
                    time=T0 + hour * H + d * timedelta(minutes=1),
                    event_id=f"check-{d}-{hour}",
                )
            )
    return sorted(log, key=lambda e: e["time"])


async def enrol(replay: Replay) -> None:
    settings = replay.settings()
    fleet = replay.fleet(
        [
            build_reputation(settings),
            build_provisioner(settings, settings.provisioner),
            build_warmup(settings, settings.warmup),
        ],
        settings,
    )
    await fleet.start()
    try:
        watched = [
            topics.IP_PROVISIONED,
            topics.IP_STATE_CHANGED,
            topics.IP_COMMAND_RESULTS,
            topics.DOMAIN_POOL_CHANGED,
        ]
        async with replay.follower(watched) as seen:
            async with replay.publisher() as publisher:
                await enable_dynamic_pools(publisher, seen, replay.dsn, "acct_rep")
                for n, domain in enumerate(DOMAINS):
                    enrol = cloud_event(
                        "domain.enroll",
                        {"account_id": "acct_rep", "domain": domain},
                        time=T0,
                        event_id=f"enrol-{n}",
                    )
                    [answer] = await ask(publisher, seen, enrol)
                    assert outcome(answer) == "accepted", answer
    finally:
        await fleet.stop()


async def test_domains_move_the_same_however_the_health_checks_are_read(
    postgres_server: Any, kafka_server: Any, tmp_path: Path
) -> None:
    outcomes: dict[str, Outcome] = {}
    log = health_log()
    for name in WAYS:
        async with Replay(
            postgres_server.url, kafka_server.bootstrap_servers, tmp_path, name
        ) as replay:
            await enrol(replay)
            paused = partition_of(DOMAINS[0]) if name == "one partition paused" else None

            async def checked(r: Replay = replay, n: int = len(log)) -> bool:
                [(count,)] = await r.fetch(CHECKED)
                return int(count) >= n

            async def others_checked(r: Replay = replay, p: Any = paused) -> bool:
                wanted = sum(1 for e in log if partition_of(e["data"]["domain"]) != p)
                [(count,)] = await r.fetch(CHECKED)
                return int(count) >= wanted

            async def finish(r: Replay = replay) -> Outcome:
                state = await r.until_still(lambda: r.fetch(HISTORY))
                return Outcome(state, await r.events([topics.DOMAIN_POOL_CHANGED]))

            outcomes[name] = await read_backlog(
                replay,
                lambda s: [build_reputation(s)],
                topics.DOMAIN_HEALTH_CHECKED,
                "domain",
                log,
                checked,
                finish,
                paused,
                others_checked if paused is not None else None,
            )

    reference = outcomes["large batches"]
    moved = [row for row in reference.state if row[5] == "system"]
    assert len({row[1] for row in moved}) == len(DOMAINS), "every domain moved at least once"
    assert_same(outcomes, "large batches")
