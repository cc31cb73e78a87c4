"""The reputation service over the real broker and real Postgres: named pools, dynamic pools,
domains judged by health checks, overrides, dry runs and replays.

IPs come from the real provisioner (`ip.requested` → `ip.provisioned`) and the real warmup
(their `ip.state_changed`), which start them warming. Where a rule needs IPs that are not
warming (`active`), the test publishes on `ip.state_changed` what warmup would publish for a
completed warm-up (see `mark_active`): reputation learns statuses from events only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.provisioner.service import build as build_provisioner
from services.reputation import commands
from services.reputation.service import build
from services.warmup.service import build as build_warmup
from shared.client import Follower, Publisher, Seen, cloud_event
from shared.contract import topics
from shared.database import connect as connect_schema
from shared.settings import Settings
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WATCHED = [
    topics.IP_PROVISIONED,
    topics.IP_STATE_CHANGED,
    topics.IP_COMMAND_RESULTS,
    topics.POOL_STATE_CHANGED,
    topics.DOMAIN_POOL_CHANGED,
    topics.dead_letter(topics.IP_COMMANDS),
    topics.dead_letter(topics.DOMAIN_HEALTH_CHECKED),
]
GOOD = {"bounce_rate": 0.01, "complaint_rate": 0.0001, "processed_count": 5000}
POOR = {"bounce_rate": 0.25, "complaint_rate": 0.0002, "processed_count": 5000}


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def command(kind: str, account: str, at: datetime = T0, **data: Any) -> dict[str, Any]:
    return cloud_event(kind, {"account_id": account, **data}, time=at)


def check(account: str, domain: str, metrics: dict[str, Any], at: datetime) -> dict[str, Any]:
    return cloud_event(
        "domain.health_checked", {"account_id": account, "domain": domain, **metrics}, time=at
    )


async def start(start_fleet: Any, settings_for: Callable[..., Settings], **overrides: Any) -> None:
    """Reputation, and the provisioner and warmup for real IPs and their statuses."""
    settings = settings_for(**overrides)
    await start_fleet(
        [
            build(settings),
            build_provisioner(settings, settings.provisioner),
            build_warmup(settings, settings.warmup),
        ],
        settings,
    )


async def ask(publisher: Publisher, seen: Follower, *sent: dict[str, Any]) -> list[dict[str, Any]]:
    """Send commands (in order, on their account's partition); their answers, in order."""
    for cmd in sent:
        await publisher.send(topics.IP_COMMANDS, cmd, key=cmd["data"]["account_id"])
    wanted = {cmd["id"] for cmd in sent}

    def answers(s: Seen) -> bool:
        return s.topic == topics.IP_COMMAND_RESULTS and s.event["data"]["command_id"] in wanted

    found = await seen.wait_for(answers, count=len(sent))
    by_command = {s.event["data"]["command_id"]: s.event for s in found}
    return [by_command[cmd["id"]] for cmd in sent]


def outcome(answer: dict[str, Any]) -> str:
    """`accepted`, `evaluated`, or the rejection's reason."""
    if answer["type"] == "command.rejected":
        return str(answer["data"]["reason"])
    return str(answer["type"]).split(".")[-1]


async def provision(
    publisher: Publisher,
    seen: Follower,
    account: str,
    n: int = 1,
    at: datetime = T0,
    **extra: Any,
) -> list[str]:
    """Real IPs from the provisioner: their ids, in request order."""
    data = {"account_id": account, "plan": "enterprise", **extra}
    sent = [cloud_event("ip.requested", data, time=at) for _ in range(n)]
    for event in sent:
        await publisher.send(topics.IP_REQUESTED, event, key=account)
    ids = {e["id"] for e in sent}
    found = await seen.wait_for(
        lambda s: s.topic == topics.IP_PROVISIONED and s.event.get("causationid") in ids, count=n
    )
    by_cause = {s.event["causationid"]: s.event["data"]["ip_id"] for s in found}
    return [by_cause[e["id"]] for e in sent]


async def mark_active(
    publisher: Publisher, seen: Follower, database: str, ip_ids: Sequence[str]
) -> None:
    """Publish, for each IP, what warmup publishes when a warm-up completes (`ip.warmed`, the
    view `active`), once warmup's own first event of the IP is out; then wait until
    reputation has read them. A real warm-up takes weeks of event time."""
    for ip_id in ip_ids:
        first, *_ = await seen.wait_for(
            lambda s, ip_id=ip_id: s.topic == topics.IP_STATE_CHANGED and s.key == ip_id
        )
        view = first.event["data"]
        warmed = {**view, "status": "active", "warmup": {**view["warmup"], "status": "completed"}}
        event = cloud_event("ip.warmed", warmed, time=T0, source="ipfleet/warmup")
        await publisher.send(topics.IP_STATE_CHANGED, event, key=ip_id)

    await known_as(database, ip_ids, "active")


async def known_as(database: str, ip_ids: Sequence[str], status: str) -> None:
    """Wait until reputation's copy of the IPs (learnt from events) has them in `status`."""

    async def known() -> bool:
        rows = await query(
            database,
            "SELECT count(*) FROM ips WHERE ip_id = ANY($1::text[]) AND status = $2",
            list(ip_ids),
            status,
        )
        return bool(rows[0][0] == len(ip_ids))

    await eventually(known, f"reputation reads the IPs {status}")


async def query(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect_schema(database, "reputation")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    await wait_until(probe, within, what)


async def enable_dynamic_pools(
    publisher: Publisher, seen: Follower, database: str, account: str, **thresholds: Any
) -> dict[str, str]:
    """Three real IPs, warmed, one per dynamic pool; the feature enabled for `account`."""
    good, poor, new = await provision(publisher, seen, account, 3)
    await mark_active(publisher, seen, database, [good, poor, new])
    configure = command(
        "dynamic_pools.configure",
        account,
        enabled=True,
        thresholds=thresholds or None,
        good_reputation=[good],
        poor_reputation=[poor],
        new_senders=[new],
    )
    [answer] = await ask(publisher, seen, configure)
    assert outcome(answer) == "accepted", answer
    return {"dynamic_good": good, "dynamic_poor": poor, "dynamic_new": new}


def pool_changes(seen: Follower, domain: str) -> list[dict[str, Any]]:
    """The domain's `domain.pool_changed` events, once each, in the order published."""
    unique = {e["id"]: e for e in seen.of_type("domain.pool_changed") if e["subject"] == domain}
    return list(unique.values())


async def echoed(call: Callable[[Callable[[str], None]], Awaitable[None]]) -> str:
    lines: list[str] = []
    await call(lines.append)
    return "\n".join(lines)


# ---- named pools -----------------------------------------------------------------------------


async def test_named_pools_take_commands_new_ips_and_lose_released_ips(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    # No cooldown: a released IP is released as soon as the provisioner's clock reaches it.
    # No cooldown and no allowed lateness: the release is over as soon as it is read.
    await start(
        start_fleet, settings_for, IPFLEET_COOLDOWN_HOURS=0, IPFLEET_COOLDOWN_LATENESS_MINUTES=0
    )
    acct, other = "acct_pools", "acct_other"
    async with follow(WATCHED) as seen:
        created = await ask(
            publisher,
            seen,
            command("pool.create", acct, name="marketing", is_default=True),
            command("pool.create", acct, name="transactional"),
            command("pool.create", acct, name="marketing"),  # names are unique per account
            command("pool.create", acct, name="dynamic_good"),  # reserved
            command("pool.create", acct, name="x" * 65),  # fails validation: DLQ, and answered
        )
        assert [outcome(a) for a in created] == [
            "accepted",
            "accepted",
            "conflict",
            "invalid",
            "invalid",
        ]
        await seen.wait_for(lambda s: s.topic == topics.dead_letter(topics.IP_COMMANDS))

        # A new IP without a pool joins the default pool; one naming a pool joins that pool;
        # one naming a pool the account does not have joins none.
        [ip1] = await provision(publisher, seen, acct)
        [ip2] = await provision(publisher, seen, acct, pool="transactional")
        [ip3] = await provision(publisher, seen, acct, pool="nowhere")
        [foreign] = await provision(publisher, seen, other)
        joined = await seen.wait_for(lambda s: s.event["type"] == "pool.ip_added", count=2)
        assert {(s.event["data"]["name"], s.event["data"]["ip_id"]) for s in joined} == {
            ("marketing", ip1),
            ("transactional", ip2),
        }
        assert all(s.key == acct for s in joined)

        answers = await ask(
            publisher,
            seen,
            command("pool.add_ip", acct, name="transactional", ip_id=ip1),  # in two pools now
            command("pool.add_ip", acct, name="transactional", ip_id=ip1),  # already there
            command("pool.add_ip", acct, name="transactional", ip_id=foreign),  # another's IP
            command("pool.add_ip", acct, name="nowhere", ip_id=ip3),
            command("pool.remove_ip", acct, name="transactional", ip_id=ip2),
            command("pool.remove_ip", acct, name="transactional", ip_id=ip2),  # not in it now
            command("pool.rename", acct, name="transactional", new_name="tx"),
            command("pool.rename", acct, name="tx", new_name="marketing"),  # taken
            command("pool.delete", other, name="marketing"),  # another account's pool
            command("pool.create", acct, name="doomed"),
            command("pool.add_ip", acct, name="doomed", ip_id=ip3),
            command("pool.delete", acct, name="doomed"),
        )
        assert [outcome(a) for a in answers] == [
            "accepted",
            "conflict",
            "not_found",
            "not_found",
            "accepted",
            "not_found",
            "accepted",
            "conflict",
            "not_found",
            "accepted",
            "accepted",
            "accepted",
        ]

        # The dynamic pools too hold IPs; a release takes the IP out of every pool.
        await mark_active(publisher, seen, database, [ip1, ip2, ip3])
        [configured] = await ask(
            publisher,
            seen,
            command(
                "dynamic_pools.configure",
                acct,
                enabled=True,
                good_reputation=[ip1],
                poor_reputation=[ip2],
                new_senders=[ip3],
            ),
        )
        assert outcome(configured) == "accepted"
        [released] = await ask(publisher, seen, command("ip.release", acct, at=hours(1), ip_id=ip1))
        assert outcome(released) == "accepted"
        # A later event moves the provisioner's event-time clock on past the (zero) cooldown.
        await provision(publisher, seen, "acct_clock", at=hours(2))
        removed = await seen.wait_for(
            lambda s: s.event["type"] == "pool.ip_removed" and s.event["data"]["ip_id"] == ip1,
            count=3,
            timeout=30,
        )

    assert sorted(s.event["data"]["name"] for s in removed) == ["dynamic_good", "marketing", "tx"]
    assert len({s.event["id"] for s in removed}) == 3  # one event id per pool
    assert all(s.event["causationid"] is not None for s in removed)

    kinds = [e["type"] for e in seen.of_type("pool.created", topics.POOL_STATE_CHANGED)]
    assert kinds == ["pool.created"] * 3
    [renamed] = seen.of_type("pool.renamed")
    assert renamed["data"]["name"] == "tx" and renamed["data"]["previous_name"] == "transactional"
    assert renamed["data"]["ip_ids"] == [ip1]
    [deleted] = seen.of_type("pool.deleted")
    assert deleted["data"]["name"] == "doomed" and deleted["data"]["ip_ids"] == [ip3]
    [configured_event] = seen.of_type("dynamic_pools.configured")
    assert configured_event["data"]["good_reputation"] == [ip1]

    # ip1 released, ip2 removed, ip3's pool deleted: no named pool holds an IP any more.
    assert await query(database, "SELECT pool, ip_id FROM pool_ips") == []
    dynamic = await query(database, "SELECT pool, ip_id FROM dynamic_pool_ips ORDER BY pool")
    assert [tuple(r) for r in dynamic] == [("dynamic_new", ip3), ("dynamic_poor", ip2)]

    listing = await echoed(lambda echo: commands.print_pools(database, acct, echo))
    assert "acct_pools  marketing  (named, default)  0 IP(s)" in listing
    assert "acct_pools  tx  (named)  0 IP(s)" in listing
    assert "dynamic_poor  (dynamic, enabled)  1 IP(s)" in listing
    assert ip2 in listing and "active" in listing


# ---- dynamic pools: configure and enrol ------------------------------------------------------


async def test_dynamic_pools_configure_refuses_each_broken_rule_and_gates_enrolment(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start(start_fleet, settings_for)  # the default 24 h cooldown keeps a released IP in it
    acct = "acct_dyn"
    async with follow(WATCHED) as seen:
        good, poor, new, warming, leaving = await provision(publisher, seen, acct, 5)
        [foreign] = await provision(publisher, seen, "acct_elsewhere")
        await mark_active(publisher, seen, database, [good, poor, new, leaving])
        [release] = await ask(publisher, seen, command("ip.release", acct, ip_id=leaving))
        assert outcome(release) == "accepted"
        # The cooldown reaches reputation as events do: provisioner, then warmup's view.
        await known_as(database, [leaving], "cooldown")

        def configure(g: list[str], p: list[str], n: list[str], **extra: Any) -> dict[str, Any]:
            return command(
                "dynamic_pools.configure",
                acct,
                enabled=extra.pop("enabled", True),
                good_reputation=g,
                poor_reputation=p,
                new_senders=n,
                **extra,
            )

        answers = await ask(
            publisher,
            seen,
            command("domain.enroll", acct, domain="early.example"),  # the feature is off
            configure([good, foreign], [poor], [new]),  # another account's IP
            configure([good, "ip_unknown"], [poor], [new]),  # not a dedicated IP at all
            configure([good, leaving], [poor], [new]),  # in cooldown before release
            configure([good], [poor, good], [new]),  # in two dynamic pools
            configure([good], [poor], []),  # a dynamic pool without IPs
            configure([good], [poor], [warming]),  # a dynamic pool with only a warming IP
            configure([good], [poor], [new], thresholds={"bounce_good": 0.2}),  # good > poor
            configure([good, warming], [poor], [new], thresholds={"good_checks_to_leave_poor": 3}),
            command("domain.enroll", acct, domain="shop.example"),
            command("domain.enroll", acct, domain="shop.example"),  # already enrolled
        )
        # Another account's commands travel on another partition: sent once acct's are done.
        answers += await ask(
            publisher,
            seen,
            command("domain.enroll", "acct_elsewhere", domain="shop.example"),  # not theirs
        )
        answers += await ask(
            publisher,
            seen,
            configure([], [], [], enabled=False),  # a domain is still enrolled
            command("domain.unenroll", acct, domain="shop.example"),
            configure([], [], [], enabled=False),
            command("domain.enroll", acct, domain="late.example"),  # off again
        )
    got = [(outcome(a), a["data"].get("message", "")) for a in answers]
    assert [reason for reason, _ in got] == [
        "conflict",
        "not_found",
        "not_found",
        "conflict",
        "invalid",
        "invalid",
        "conflict",
        "invalid",
        "accepted",
        "accepted",
        "conflict",
        "not_found",
        "conflict",
        "accepted",
        "accepted",
        "conflict",
    ]
    messages = [message for _, message in got]
    assert "dynamic_pools.configure" in messages[0]
    assert foreign in messages[1] and "ip_unknown" in messages[2]
    assert "cooldown" in messages[3] and "two dynamic pools" in messages[4]
    assert "dynamic_new needs at least one IP" in messages[5]
    assert "not warming" in messages[6] and "bounce_good" in messages[7]
    assert "enrolled" in messages[12]
    # Nobody learns what another account owns: the same answer as for an unknown IP.
    assert answers[11]["data"]["message"] == (
        "no domain shop.example in this account's dynamic IP pools"
    )

    configured = seen.of_type("dynamic_pools.configured")
    assert [e["data"]["enabled"] for e in configured] == [True, False]
    assert configured[0]["data"]["good_reputation"] == [good, warming]
    assert configured[0]["data"]["thresholds"]["good_checks_to_leave_poor"] == 3
    assert configured[0]["data"]["thresholds"]["bounce_good"] == 0.02  # the default, kept
    # Turned off, the thresholds set before are kept for the next time it is turned on.
    assert configured[1]["data"]["thresholds"]["good_checks_to_leave_poor"] == 3

    moves = pool_changes(seen, "shop.example")
    assert [
        (m["data"]["prev_pool"], m["data"]["new_pool"], m["data"]["initiated_by"]) for m in moves
    ] == [
        (None, "dynamic_new", "operator"),
        ("dynamic_new", None, "operator"),
    ]


# ---- health checks and hysteresis ------------------------------------------------------------


async def test_health_checks_move_a_domain_poor_to_good_only_after_the_hysteresis(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start(start_fleet, settings_for)
    acct, domain = "acct_health", "shop.example"
    async with follow(WATCHED) as seen:
        await enable_dynamic_pools(publisher, seen, database, acct)
        [enrolled] = await ask(publisher, seen, command("domain.enroll", acct, domain=domain))
        assert outcome(enrolled) == "accepted"
        checks = [
            check(acct, domain, GOOD, hours(1)),  # new → good
            check(acct, domain, POOR, hours(2)),  # good → poor at once
            check(acct, domain, GOOD, hours(3)),  # held: 1 of 2 good checks
            check(acct, domain, POOR, hours(4)),  # poor again: the streak restarts
            check(acct, domain, GOOD, hours(5)),  # held: 1 of 2
            check(acct, domain, GOOD, hours(6)),  # poor → good
            check("acct_intruder", domain, POOR, hours(7)),  # not the domain's account: DLQ
            check(acct, "quiet.example", POOR, hours(7)),  # not enrolled: kept, moves nothing
        ]
        for event in checks:
            await publisher.send(topics.DOMAIN_HEALTH_CHECKED, event, key=event["data"]["domain"])
        await seen.wait_for(
            lambda s: s.topic == topics.DOMAIN_POOL_CHANGED and s.key == domain, count=4
        )
        [dead] = await seen.wait_for(
            lambda s: s.topic == topics.dead_letter(topics.DOMAIN_HEALTH_CHECKED)
        )

        async def quiet_check_stored() -> bool:
            # quiet.example's partition is not the one of shop.example's checks
            rows = await query(
                database, "SELECT 1 FROM health_checks WHERE event_id = $1", checks[7]["id"]
            )
            return bool(rows)

        await eventually(quiet_check_stored, "the check of a domain not enrolled")

    assert dead.headers["error.class"] == "Unprocessable"
    assert dead.headers["error.consumer"] == "reputation/domain.health_checked"
    assert dead.event["id"] == checks[6]["id"]

    moves = pool_changes(seen, domain)
    assert [(m["data"]["prev_pool"], m["data"]["new_pool"]) for m in moves] == [
        (None, "dynamic_new"),
        ("dynamic_new", "dynamic_good"),
        ("dynamic_good", "dynamic_poor"),
        ("dynamic_poor", "dynamic_good"),
    ]
    assert [m["causationid"] for m in moves[1:]] == [checks[i]["id"] for i in (0, 1, 5)]
    recovered = moves[3]["data"]
    assert recovered["reason"] == "bounce_rate in good threshold"
    assert recovered["initiated_by"] == "system" and recovered["account_id"] == acct
    assert recovered["bounce_rate"] == 0.01 and recovered["processed_count"] == 5000
    assert moves[3]["time"].startswith(hours(6).strftime("%Y-%m-%dT%H:%M"))

    history = await query(
        database, "SELECT * FROM domain_history WHERE domain = $1 ORDER BY occurred_at", domain
    )
    assert [r["id"] for r in history] == [m["id"] for m in moves]
    assert [r["occurred_at"] for r in history] == [T0, hours(1), hours(2), hours(6)]
    stored = await query(
        database, "SELECT domain, outcome, reason FROM health_checks ORDER BY checked_at, domain"
    )
    assert [(r["domain"], r["outcome"]) for r in stored] == [
        (domain, "moved"),
        (domain, "moved"),
        (domain, "held_in_poor"),
        (domain, "unchanged"),
        (domain, "held_in_poor"),
        (domain, "moved"),
        ("quiet.example", "not_enrolled"),
    ]
    assert stored[2]["reason"] == "Held in dynamic_poor: 1 of 2 consecutive good checks"
    assert (
        await query(database, "SELECT 1 FROM domain_assignments WHERE domain = $1", "quiet.example")
        == []
    )

    # What operators see.
    listing = await echoed(lambda echo: commands.print_domains(database, acct, echo))
    assert domain in listing and "dynamic_good" in listing
    assert "quiet.example" in listing.split("Not enrolled")[1]
    poor_only = await echoed(
        lambda echo: commands.print_history(database, domain, None, None, "poor", echo)
    )
    assert "History of shop.example: 2 record(s)" in poor_only
    window = await echoed(
        lambda echo: commands.print_history(database, domain, hours(1), hours(2), None, echo)
    )
    assert "2 record(s)" in window and "Health checks of shop.example: 2" in window
    quiet = await echoed(
        lambda echo: commands.print_history(database, "quiet.example", None, None, None, echo)
    )
    assert "0 record(s)" in quiet and "not_enrolled" in quiet


# ---- overrides -------------------------------------------------------------------------------


async def test_an_override_holds_through_bad_checks_and_is_recorded(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start(start_fleet, settings_for)
    acct, domain = "acct_override", "news.example"
    async with follow(WATCHED) as seen:
        await enable_dynamic_pools(publisher, seen, database, acct)
        setup = await ask(
            publisher,
            seen,
            command("pool.create", acct, name="vip"),
            command("domain.enroll", acct, domain=domain),
            command("domain.override.set", acct, at=hours(1), domain=domain, pool="nowhere"),
            command("domain.override.set", acct, at=hours(1), domain=domain, pool="vip"),
            command("pool.delete", acct, at=hours(1), name="vip"),  # a domain sends from it
            command("pool.rename", acct, at=hours(1), name="vip", new_name="vip2"),
        )
        assert [outcome(a) for a in setup] == [
            "accepted",
            "accepted",
            "not_found",
            "accepted",
            "conflict",
            "accepted",
        ]
        await seen.wait_for(lambda s: s.topic == topics.DOMAIN_POOL_CHANGED, count=2)
        bad = [check(acct, domain, POOR, hours(2 + i)) for i in range(3)]
        for event in bad:
            await publisher.send(topics.DOMAIN_HEALTH_CHECKED, event, key=domain)

        async def all_checks_stored() -> bool:
            rows = await query(database, "SELECT 1 FROM health_checks WHERE domain = $1", domain)
            return len(rows) == 3

        await eventually(all_checks_stored, "the health checks")
        await asyncio.sleep(1.0)  # anything they emitted would be on the topic by now
        await seen.poll()
        pinned = pool_changes(seen, domain)
        clear = await ask(
            publisher,
            seen,
            command("domain.override.clear", acct, at=hours(6), domain=domain),
            command("domain.override.clear", acct, at=hours(6), domain=domain),  # none left
        )
        assert [outcome(a) for a in clear] == ["accepted", "conflict"]
        await seen.wait_for(lambda s: s.topic == topics.DOMAIN_POOL_CHANGED, count=3)

    # While pinned, the bad checks moved nothing.
    assert [(m["data"]["new_pool"], m["data"]["initiated_by"]) for m in pinned] == [
        ("dynamic_new", "operator"),
        ("vip", "override"),
    ]
    moves = pool_changes(seen, domain)
    assert [
        (
            m["data"]["prev_pool"],
            m["data"]["new_pool"],
            m["data"]["initiated_by"],
            m["data"]["reason"],
        )
        for m in moves
    ] == [
        (None, "dynamic_new", "operator", "Domain enrolled"),
        ("dynamic_new", "vip", "override", "Override set"),
        # the pool was renamed under the override: the same pool, so the same IPs
        ("vip2", "dynamic_poor", "override", "Override cleared"),
    ]
    outcomes = await query(
        database, "SELECT outcome, pool_after FROM health_checks WHERE domain = $1", domain
    )
    assert {(r["outcome"], r["pool_after"]) for r in outcomes} == {("held_by_override", "vip2")}
    history = await query(
        database,
        "SELECT initiated_by, new_pool FROM domain_history WHERE domain = $1 ORDER BY occurred_at",
        domain,
    )
    assert [(r["initiated_by"], r["new_pool"]) for r in history] == [
        ("operator", "dynamic_new"),
        ("override", "vip"),
        ("override", "dynamic_poor"),
    ]
    by_override = await echoed(
        lambda echo: commands.print_history(database, domain, None, None, "dynamic_poor", echo)
    )
    assert "1 record(s)" in by_override and "Override cleared" in by_override


# ---- dry runs --------------------------------------------------------------------------------


async def test_a_dry_run_answers_and_changes_nothing(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start(start_fleet, settings_for)
    acct, domain = "acct_dry", "dry.example"
    async with follow(WATCHED) as seen:
        await enable_dynamic_pools(publisher, seen, database, acct)
        [enrolled] = await ask(publisher, seen, command("domain.enroll", acct, domain=domain))
        assert outcome(enrolled) == "accepted"
        await seen.wait_for(lambda s: s.topic == topics.DOMAIN_POOL_CHANGED)
        before = await query(database, "SELECT * FROM domain_assignments")
        history_before = await query(database, "SELECT id FROM domain_history")

        seed_003 = {"bounce_rate": 0.25, "complaint_rate": 0.0002, "processed_count": 5000}
        answers = await ask(
            publisher,
            seen,
            command("domain.evaluate", acct, at=hours(1), domain=domain, **seed_003),
            command("domain.evaluate", acct, at=hours(1), domain="other.example", **GOOD),
            command("domain.evaluate", "acct_stranger", at=hours(1), domain=domain, **GOOD),
        )
        # Anything the dry run emitted would be out by now, behind these answers.
        await asyncio.sleep(1.0)
        await seen.poll()

    assert [outcome(a) for a in answers] == ["evaluated", "evaluated", "not_found"]
    poor = answers[0]["data"]
    assert poor["pool"] == "dynamic_poor"
    assert poor["metrics"]["bounce_rate"] == {"value": 0.25, "band": "dynamic_poor"}
    assert poor["metrics"]["complaint_rate"] == {"value": 0.0002, "band": "dynamic_good"}
    assert poor["reason"] == "bounce_rate in poor threshold" and poor["outcome"] == "moved"
    unknown = answers[1]["data"]
    assert unknown["pool"] == "dynamic_good" and unknown["outcome"] == "not_enrolled"

    assert await query(database, "SELECT * FROM domain_assignments") == before
    assert await query(database, "SELECT id FROM domain_history") == history_before
    assert await query(database, "SELECT 1 FROM health_checks") == []
    assert len(pool_changes(seen, domain)) == 1  # the enrolment's only


# ---- replays ---------------------------------------------------------------------------------


async def test_a_replayed_health_check_adds_no_record_and_no_new_event_id(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start(start_fleet, settings_for)
    acct, domain = "acct_replay", "replay.example"
    async with follow(WATCHED) as seen:
        await enable_dynamic_pools(publisher, seen, database, acct)
        [enrolled] = await ask(publisher, seen, command("domain.enroll", acct, domain=domain))
        assert outcome(enrolled) == "accepted"
        checks = [check(acct, domain, GOOD, hours(1)), check(acct, domain, POOR, hours(2))]
        for event in checks:
            await publisher.send(topics.DOMAIN_HEALTH_CHECKED, event, key=domain)
        await seen.wait_for(lambda s: s.topic == topics.DOMAIN_POOL_CHANGED, count=3)
        history = await query(database, "SELECT id FROM domain_history ORDER BY seq")
        emitted = {e["id"] for e in seen.of_type("domain.pool_changed")}

        # An operator replays the topic: the same events, the same ids, then one new check.
        for event in [*checks, *checks]:
            await publisher.send(topics.DOMAIN_HEALTH_CHECKED, event, key=domain)
        marker = check(acct, domain, GOOD, hours(3))  # held in poor: moves nothing
        await publisher.send(topics.DOMAIN_HEALTH_CHECKED, marker, key=domain)

        async def marker_applied() -> bool:
            rows = await query(
                database, "SELECT 1 FROM health_checks WHERE event_id = $1", marker["id"]
            )
            return bool(rows)

        await eventually(marker_applied, "the marker check")
        await asyncio.sleep(1.0)  # let anything emitted reach the topic
        await seen.poll()

    assert await query(database, "SELECT id FROM domain_history ORDER BY seq") == history
    assert len(history) == 3
    assert {e["id"] for e in seen.of_type("domain.pool_changed")} == emitted
    assert len(await query(database, "SELECT 1 FROM health_checks")) == 3
