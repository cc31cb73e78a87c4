"""What the contract adds for operators and senders, over the real broker and real Postgres:
IPs active without a warm-up, stop and resume commands, a new start on an active IP, held
days as events, and the overflow pool of every limit event (warmup's own copy of the pools,
with pools created, renamed, emptied and deleted while an IP warms, and the only other active
IP released); and dynamic pools running on IPs made active by `auto_warmup: false`.

Every time is event time in the past (January 2026).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.reputation.service import build as build_reputation
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared.client import Follower, Publisher, Seen, cloud_event
from shared.contract import topics
from shared.contract.envelope import derive_event_id
from shared.database import connect as connect_schema
from shared.settings import Settings
from tests.integration.test_warmup import (
    D1,
    DAY,
    H,
    M,
    ipfleet,
    is_warmup,
    provision,
    publish,
    send,
    spread,
    start_services,
    view_of,
    warmup_events,
)
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

WATCHED = [
    topics.IP_PROVISIONED,
    topics.IP_STATE_CHANGED,
    topics.IP_COMMAND_RESULTS,
    topics.POOL_STATE_CHANGED,
    topics.DOMAIN_POOL_CHANGED,
]


def command(kind: str, account: str, at: datetime, **data: Any) -> dict[str, Any]:
    return cloud_event(kind, {"account_id": account, **data}, time=at)


async def ask(publisher: Publisher, seen: Follower, cmd: dict[str, Any]) -> dict[str, Any]:
    """Send one command on its account's partition; its answer (from whichever service
    owns it)."""
    await publisher.send(topics.IP_COMMANDS, cmd, key=cmd["data"]["account_id"])
    [answer] = await seen.wait_for(
        lambda s: (
            s.topic == topics.IP_COMMAND_RESULTS and s.event["data"]["command_id"] == cmd["id"]
        )
    )
    return answer.event


def outcome(answer: dict[str, Any]) -> str:
    if answer["type"] == "command.rejected":
        return str(answer["data"]["reason"])
    return "accepted"


async def all_services(start_fleet: Any, settings: Settings) -> None:
    await start_fleet(
        [
            build_provisioner(settings, settings.provisioner),
            build_warmup(settings, WarmupSettings(_env_file=None)),  # type: ignore[call-arg]
            build_reputation(settings, settings.reputation),
        ],
        settings,
    )


async def warmup_pools(database: str, account: str) -> dict[str, tuple[bool, frozenset[str]]]:
    """Warmup's own copy of the account's named pools: name -> (is_default, IP ids)."""
    conn = await connect_schema(database, "warmup")
    try:
        rows = await conn.fetch(
            "SELECT name, is_default, ip_ids FROM warmup_pools WHERE account_id = $1", account
        )
    finally:
        await conn.close()
    return {r["name"]: (r["is_default"], frozenset(r["ip_ids"])) for r in rows}


async def pools_become(
    database: str, account: str, expected: dict[str, tuple[bool, frozenset[str]]]
) -> None:
    async def known() -> bool:
        return await warmup_pools(database, account) == expected

    await wait_until(known, 30, f"warmup to know the pools {expected}")


def limit_events(seen: Follower, ip_id: str) -> list[dict[str, Any]]:
    return [e for e in warmup_events(seen, ip_id) if e["type"].endswith("_limit_reached")]


# ---- skip, stop, resume, start again, held ------------------------------------------------------


async def test_skipped_stopped_resumed_and_restarted_ips_over_the_broker(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for(), suspend_min_sends=10)
    acct = "acct_op"
    async with follow(WATCHED[:3]) as seen:
        skipped = (await provision(publisher, seen, acct, auto_warmup=False))["ip_id"]
        held_ip = await provision(publisher, seen, acct, warmup_schedule="test-3")
        spiky_ip = await provision(publisher, seen, acct, warmup_schedule="test-3")
        held, spiky = held_ip["ip_id"], spiky_ip["ip_id"]

        # 1. auto_warmup: false -> active at once, skipped, no limit.
        [registered] = await seen.wait_for(is_warmup(skipped, "ip.registered"))
        data = registered.event["data"]
        assert (data["status"], data["warmup"]["status"]) == ("active", "skipped")
        assert (data["warmup"]["daily_limit"], data["warmup"]["hourly_limit"]) == (-1, -1)
        skipped_ip = {"account_id": acct, "address": data["address"]}
        await publish(publisher, spread(skipped_ip, D1 + 9 * H + 10 * M, 30))

        # 4. A day that closes without advancing: ip.warmup_held, once, with why.
        await publish(publisher, [send(held_ip, D1 + DAY + 2 * H)])
        [hold] = await seen.wait_for(is_warmup(held, "ip.warmup_held"))
        assert hold.event["time"] == "2026-01-06T00:00:00Z"
        assert hold.event["data"]["warmup"]["hold_reason"].startswith("low_volume")
        assert "causationid" not in hold.event
        assert hold.event["id"] == derive_event_id(f"{held}:held:2026-01-05", "ip.warmup_held")

        # 2. ip.warmup.stop: active at once, stopped; refused where nothing warms.
        stop = command("ip.warmup.stop", acct, D1 + DAY + 3 * H, ip_id=held)
        assert outcome(await ask(publisher, seen, stop)) == "accepted"
        [stopped] = await seen.wait_for(is_warmup(held, "ip.warmup_stopped"))
        assert stopped.event["causationid"] == stop["id"]
        assert stopped.event["time"] == "2026-01-06T03:00:00Z"
        assert stopped.event["id"] == derive_event_id(
            f"{held}:warmup_stopped:2026-01-06T03:00:00Z", "ip.warmup_stopped"
        )
        view = stopped.event["data"]
        assert (view["status"], view["warmup"]["status"]) == ("active", "stopped")
        assert view["warmup"]["daily_limit"] == -1 and view["warmup"]["day"] == 1
        refusals = {
            "stopped again": command("ip.warmup.stop", acct, D1 + DAY + 4 * H, ip_id=held),
            "skipped": command("ip.warmup.stop", acct, D1 + DAY + 4 * H, ip_id=skipped),
            "resume skipped": command("ip.warmup.resume", acct, D1 + DAY, ip_id=skipped),
            "another account": command("ip.warmup.stop", "acct_x", D1 + DAY, ip_id=spiky),
        }
        answers = {name: await ask(publisher, seen, cmd) for name, cmd in refusals.items()}
        assert {n: outcome(a) for n, a in answers.items()} == {
            "stopped again": "conflict",
            "skipped": "conflict",
            "resume skipped": "conflict",
            "another account": "not_found",
        }
        assert "not warming (warm-up skipped)" in answers["skipped"]["data"]["message"]
        assert "not warming (warm-up stopped)" in answers["stopped again"]["data"]["message"]
        assert "not suspended" in answers["resume skipped"]["data"]["message"]

        # 3. ip.warmup.resume: a suspended IP resumes now, one day back.
        spike = spread(spiky_ip, D1 + 9 * H + 10 * M, 7)
        spike += spread(spiky_ip, D1 + 9 * H + 30 * M, 3, "complained")
        await publish(publisher, spike)
        await publish(publisher, [send(spiky_ip, D1 + 10 * H + 30 * M)])
        [suspension] = await seen.wait_for(is_warmup(spiky, "ip.suspended"))
        # Judged at the hour's end, by the batch of the send that closed the hour: caused by
        # the third complaint (the tenth send), counted by an earlier batch.
        assert suspension.event["causationid"] == spike[9]["id"]
        resume = command("ip.warmup.resume", acct, D1 + 11 * H, ip_id=spiky)
        assert outcome(await ask(publisher, seen, resume)) == "accepted"
        [resumed] = await seen.wait_for(is_warmup(spiky, "ip.resumed"))
        assert resumed.event["causationid"] == resume["id"]
        assert resumed.event["time"] == "2026-01-05T11:00:00Z"
        assert resumed.event["data"]["status"] == "warming"
        assert resumed.event["data"]["warmup"]["day"] == 1
        again = command("ip.warmup.resume", acct, D1 + 12 * H, ip_id=spiky)
        assert outcome(await ask(publisher, seen, again)) == "conflict"

        # 2. ip.warmup.start on an active IP: a new warm-up on day 1 of the chosen schedule.
        restart = command(
            "ip.warmup.start", acct, D1 + DAY + 5 * H, ip_id=skipped, schedule="test-3"
        )
        assert outcome(await ask(publisher, seen, restart)) == "accepted"
        [started] = await seen.wait_for(is_warmup(skipped, "ip.warmup_started"))
        assert started.event["causationid"] == restart["id"]
        data = started.event["data"]
        assert (data["status"], data["warmup"]["day"], data["warmup"]["daily_limit"]) == (
            "warming", 1, 10
        )  # fmt: skip

    # A skipped IP has no limit to reach: 30 sends in an hour, no limit event.
    assert [e["type"] for e in warmup_events(seen, skipped)] == [
        "ip.registered",
        "ip.warmup_started",
    ]
    # What an operator reads: the stopped warm-up, the filter by status.
    shown = json.loads(await ipfleet(database, "ip", "show", held))
    assert (shown["status"], shown["warmup"]["status"]) == ("active", "stopped")
    listed = await ipfleet(database, "ip", "list", "--status", "stopped")
    assert held in listed and spiky not in listed and skipped not in listed
    assert (await view_of(database, spiky))["warmup"]["status"] == "warming"


# ---- overflow ---------------------------------------------------------------------------------


async def test_limit_events_name_the_overflow_pool_as_warmup_knows_the_pools(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await all_services(start_fleet, settings_for())
    acct = "acct_ov"
    at = D1 + 7 * H
    async with follow(WATCHED) as seen:
        create = command("pool.create", acct, at, name="marketing", is_default=True)
        assert outcome(await ask(publisher, seen, create)) == "accepted"
        # Both join the default pool (reputation), which warmup learns from pool.state_changed.
        warm = await provision(publisher, seen, acct, warmup_schedule="test-3")
        other = await provision(publisher, seen, acct, auto_warmup=False)
        w, s = warm["ip_id"], other["ip_id"]
        await pools_become(database, acct, {"marketing": (True, frozenset({w, s}))})

        # Day 1, 09:xx: the hourly limit (5). Its own pool holds another active IP.
        h9 = spread(warm, D1 + 9 * H + 10 * M, 5)
        await publish(publisher, h9)
        [first] = await seen.wait_for(is_warmup(w, "ip.hourly_limit_reached"))
        assert first.event["data"]["overflow"] == {"pool": "marketing", "reason": "own_pool"}
        # Caused by the send that reached the limit: the fifth.
        assert first.event["causationid"] == h9[4]["id"]

        # A pool created, the IP moved into it alone, the default renamed: the default pool.
        for cmd in (
            command("pool.create", acct, at + M, name="tx"),
            command("pool.add_ip", acct, at + 2 * M, name="tx", ip_id=w),
            command("pool.rename", acct, at + 3 * M, name="marketing", new_name="bulk"),
            command("pool.remove_ip", acct, at + 4 * M, name="bulk", ip_id=w),
        ):
            assert outcome(await ask(publisher, seen, cmd)) == "accepted", cmd["type"]
        await pools_become(
            database, acct, {"bulk": (True, frozenset({s})), "tx": (False, frozenset({w}))}
        )
        h10 = spread(warm, D1 + 10 * H + 10 * M, 5)
        await publish(publisher, h10)
        await seen.wait_for(is_warmup(w, "ip.daily_limit_reached"))
        await seen.wait_for(is_warmup(w, "ip.hourly_limit_reached"), count=2)

        # The default emptied and deleted, the other IP added to the IP's own pool.
        for cmd in (
            command("pool.remove_ip", acct, at + 5 * M, name="bulk", ip_id=s),
            command("pool.delete", acct, at + 6 * M, name="bulk"),
            command("pool.add_ip", acct, at + 7 * M, name="tx", ip_id=s),
        ):
            assert outcome(await ask(publisher, seen, cmd)) == "accepted", cmd["type"]
        await pools_become(database, acct, {"tx": (False, frozenset({w, s}))})
        # Day 2 (limits 20 a day, 10 an hour): 09:xx reaches the hourly limit.
        await publish(publisher, spread(warm, D1 + DAY + 9 * H + 10 * M, 10))
        await seen.wait_for(is_warmup(w, "ip.hourly_limit_reached"), count=3)

        # The only other active IP released (in cooldown: not active): shared.
        release = command("ip.release", acct, D1 + DAY + 9 * H, ip_id=s)
        assert outcome(await ask(publisher, seen, release)) == "accepted"
        await seen.wait_for(is_warmup(s, "ip.cooldown_started"))
        await publish(publisher, spread(warm, D1 + DAY + 10 * H + 10 * M, 9))
        await publish(publisher, spread(warm, D1 + DAY + 11 * H + 10 * M, 10))
        await seen.wait_for(is_warmup(w, "ip.daily_limit_reached"), count=2)
        await seen.wait_for(is_warmup(w, "ip.hourly_limit_reached"), count=4)

    limits = [
        (e["type"].removeprefix("ip.").removesuffix("_limit_reached"), e["time"], e["data"])
        for e in limit_events(seen, w)
    ]
    overflows = [
        (kind, time, d["overflow"]["pool"], d["overflow"]["reason"]) for kind, time, d in limits
    ]
    assert overflows == [
        ("hourly", "2026-01-05T09:00:00Z", "marketing", "own_pool"),
        ("daily", "2026-01-05T10:00:00Z", "bulk", "default_pool"),
        ("hourly", "2026-01-05T10:00:00Z", "bulk", "default_pool"),
        ("hourly", "2026-01-06T09:00:00Z", "tx", "own_pool"),
        ("daily", "2026-01-06T11:00:00Z", "shared", "shared"),
        ("hourly", "2026-01-06T11:00:00Z", "shared", "shared"),
    ]  # fmt: skip
    # Each limit names the send that crossed it: day 1's daily limit, the tenth of the day.
    daily = next(e for e in limit_events(seen, w) if e["type"] == "ip.daily_limit_reached")
    assert daily["causationid"] == h10[4]["id"]
    # The limit events' data is the whole view, plus the overflow.
    assert limits[0][2]["warmup"]["hourly_limit"] == 5 and limits[0][2]["status"] == "warming"


# ---- dynamic pools on IPs active without a warm-up ---------------------------------------------

GOOD = {"bounce_rate": 0.01, "complaint_rate": 0.0001, "processed_count": 5000}
POOR = {"bounce_rate": 0.25, "complaint_rate": 0.0002, "processed_count": 5000}


async def test_dynamic_pools_run_on_ips_active_without_a_warmup(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await all_services(start_fleet, settings_for())
    acct, domain = "acct_dyn", "shop.example"
    at = D1 + 8 * H
    async with follow(WATCHED) as seen:
        ids = [
            (await provision(publisher, seen, acct, auto_warmup=False))["ip_id"] for _ in range(3)
        ]

        async def reputation_knows_them_active() -> bool:
            conn = await connect_schema(database, "reputation")
            try:
                n = await conn.fetchval(
                    "SELECT count(*) FROM ips WHERE ip_id = ANY($1::text[]) AND status = 'active'",
                    ids,
                )
            finally:
                await conn.close()
            return bool(n == 3)

        await wait_until(reputation_knows_them_active, 30, "reputation to read them active")
        configure = command(
            "dynamic_pools.configure",
            acct,
            at,
            enabled=True,
            good_reputation=[ids[0]],
            poor_reputation=[ids[1]],
            new_senders=[ids[2]],
        )
        # Accepted: every dynamic pool needs an IP that is not warming, and these never warmed.
        assert outcome(await ask(publisher, seen, configure)) == "accepted"
        enroll = command("domain.enroll", acct, at + M, domain=domain)
        assert outcome(await ask(publisher, seen, enroll)) == "accepted"
        for k, metrics in enumerate((GOOD, POOR)):
            check = cloud_event(
                "domain.health_checked",
                {"account_id": acct, "domain": domain, **metrics},
                time=at + (k + 1) * H,
            )
            await publisher.send(topics.DOMAIN_HEALTH_CHECKED, check, key=domain)

        def moved(s: Seen) -> bool:
            return s.topic == topics.DOMAIN_POOL_CHANGED and s.key == domain

        await seen.wait_for(moved, count=3)

    moves = list({e["id"]: e for e in seen.of_type("domain.pool_changed")}.values())
    assert [(m["data"]["prev_pool"], m["data"]["new_pool"]) for m in moves][-2:] == [
        ("dynamic_new", "dynamic_good"),
        ("dynamic_good", "dynamic_poor"),
    ]
    # The dynamic pools are not named pools: warmup keeps no copy of them.
    assert await warmup_pools(database, acct) == {}
    # And the configure named three IPs that the warmup service shows active, skipped.
    for ip_id in ids:
        view = await view_of(database, ip_id)
        assert (view["status"], view["warmup"]["status"]) == ("active", "skipped")
