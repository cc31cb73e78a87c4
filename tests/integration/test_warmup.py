"""The warmup service over the real broker and real Postgres, with the provisioner beside it.

Every time is event time in the past (January 2026): days pass because sends with later
times are published, never because the clock moves.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.warmup import store
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared.client import Follower, Publisher, Seen, cloud_event
from shared.contract import topics
from shared.contract.envelope import derive_event_id
from shared.database import connect as connect_schema
from shared.settings import Settings
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # provisioning time
D1 = datetime(2026, 1, 5, tzinfo=UTC)  # midnight of the first warm-up day
DAY = timedelta(days=1)
H = timedelta(hours=1)
M = timedelta(minutes=1)
WATCHED = [
    topics.IP_PROVISIONED,
    topics.IP_STATE_CHANGED,
    topics.IP_COMMAND_RESULTS,
    topics.SEND_RECORDED + ".dlq",
]


# ---- helpers ---------------------------------------------------------------------------------


async def start_services(
    start_fleet: Any, settings: Settings, **warmup_overrides: Any
) -> WarmupSettings:
    warmup = WarmupSettings(_env_file=None, **warmup_overrides)  # type: ignore[call-arg]
    await start_fleet(
        [build_provisioner(settings, settings.provisioner), build_warmup(settings, warmup)],
        settings,
    )
    return warmup


async def provision(
    publisher: Publisher, seen: Follower, account: str, **extra: Any
) -> dict[str, Any]:
    """Request an IP at T0 and return its ip.provisioned data once warmup has read it (its
    first ip.state_changed is out: a command naming it earlier would be `not_found`)."""
    request = cloud_event(
        "ip.requested", {"account_id": account, "plan": "enterprise", **extra}, time=T0
    )
    await publisher.send(topics.IP_REQUESTED, request, key=account)
    [provisioned] = await seen.wait_for(
        lambda s: s.topic == topics.IP_PROVISIONED and s.event.get("causationid") == request["id"]
    )
    data: dict[str, Any] = provisioned.event["data"]
    await seen.wait_for(
        lambda s: (
            s.topic == topics.IP_STATE_CHANGED
            and s.key == data["ip_id"]
            and s.event["type"] in ("ip.registered", "ip.warmup_started")
        )
    )
    return data


def send(
    ip: dict[str, Any],
    at: datetime,
    outcome: str = "delivered",
    *,
    account: str | None = None,
    address: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return cloud_event(
        "send.recorded",
        {
            "account_id": account or ip["account_id"],
            "ip": address or ip["address"],
            "domain": "news.example.com",
            "outcome": outcome,
            "message_id": f"<{uuid.uuid4().hex}@example.com>",
        },
        time=at,
        event_id=event_id,
    )


async def publish(publisher: Publisher, sends: list[dict[str, Any]]) -> None:
    for event in sends:
        await publisher.send_soon(topics.SEND_RECORDED, event, key=event["data"]["ip"])
    await publisher.flush()


def spread(ip: dict[str, Any], start: datetime, n: int, outcome: str = "delivered") -> list[Any]:
    """`n` sends a minute apart from `start`."""
    return [send(ip, start + i * M, outcome) for i in range(n)]


async def counted(dsn: str, ip_id: str | None = None) -> dict[str, int]:
    """Counter totals per outcome (of one IP, or all)."""
    conn = await connect_schema(dsn, "warmup")
    try:
        row = await conn.fetchrow(
            """SELECT coalesce(sum(delivered), 0) AS delivered,
                      coalesce(sum(deferred), 0) AS deferred,
                      coalesce(sum(bounced), 0) AS bounced,
                      coalesce(sum(complained), 0) AS complained,
                      coalesce(sum(dropped), 0) AS dropped
               FROM warmup_counters WHERE $1::text IS NULL OR ip_id = $1""",
            ip_id,
        )
        return {k: int(v) for k, v in dict(row).items()}
    finally:
        await conn.close()


async def ipfleet(database: str, *args: str) -> str:
    """`ipfleet ARGS` as an operator runs it, against `database`; its standard output."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services", *args],
        env={**os.environ, "DATABASE_URL": database, "LOG_FORMAT": "json"},
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    )
    return done.stdout


async def wait_counted(dsn: str, total: int, ip_id: str | None = None) -> None:
    async def done() -> bool:
        return sum((await counted(dsn, ip_id)).values()) >= total

    await wait_until(done, 30, f"{total} sends counted")
    assert sum((await counted(dsn, ip_id)).values()) == total


async def view_of(dsn: str, ip_id: str) -> dict[str, Any]:
    conn = await connect_schema(dsn, "warmup")
    try:
        view = (await store.load_views(conn, [ip_id]))[ip_id]
        return view.model_dump(mode="json")
    finally:
        await conn.close()


def warmup_events(seen: Follower, ip_id: str) -> list[dict[str, Any]]:
    """The warmup service's ip.state_changed events for one IP, each id once, in order."""
    events: dict[str, dict[str, Any]] = {}
    for s in seen.seen:
        if s.topic == topics.IP_STATE_CHANGED and s.key == ip_id:
            event = s.event
            if event["source"] == "ipfleet/warmup":
                events.setdefault(event["id"], event)
    return list(events.values())


def is_warmup(ip_id: str, event_type: str) -> Callable[[Seen], bool]:
    def match(s: Seen) -> bool:
        return (
            s.topic == topics.IP_STATE_CHANGED
            and s.key == ip_id
            and s.event["type"] == event_type
            and s.event["source"] == "ipfleet/warmup"
        )

    return match


# ---- tests -----------------------------------------------------------------------------------


async def test_a_whole_test_3_schedule_earned_in_event_time_ends_active_and_warmed(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_w", warmup_schedule="test-3")
        ip_id = ip["ip_id"]
        [started] = await seen.wait_for(is_warmup(ip_id, "ip.warmup_started"))
        assert started.event["data"]["status"] == "warming"
        warmup = started.event["data"]["warmup"]
        assert (warmup["schedule"], warmup["mode"], warmup["day"]) == ("test-3", "earned", 1)
        assert (warmup["daily_limit"], warmup["hourly_limit"]) == (10, 5)
        assert started.event["time"].startswith("2026-01-05T08:00")

        # Day 1: 5 + 5 delivered in two hours (hourly limit 5, daily 10).
        await publish(publisher, spread(ip, D1 + 9 * H + 10 * M, 5))
        await publish(publisher, spread(ip, D1 + 10 * H + 10 * M, 5))
        # Day 2: 10 + 10 (hourly 10, daily 20); its first send closes day 1.
        await publish(publisher, spread(ip, D1 + DAY + 9 * H + 10 * M, 10))
        await publish(publisher, spread(ip, D1 + DAY + 10 * H + 10 * M, 10))
        # Day 3 begins: day 2 closes, day 3 is unlimited.
        await publish(publisher, [send(ip, D1 + 2 * DAY + 10 * M)])
        await seen.wait_for(is_warmup(ip_id, "ip.warmed"), timeout=30)
        await asyncio.sleep(1.0)  # nothing more may follow
        await seen.poll()

    events = warmup_events(seen, ip_id)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "ip.warmup_started",
        "ip.hourly_limit_reached",  # day 1, 09:00
        "ip.daily_limit_reached",  # day 1, reached in the 10:00 hour
        "ip.hourly_limit_reached",  # day 1, 10:00
        "ip.warmup_advanced",  # day 1 -> 2
        "ip.hourly_limit_reached",
        "ip.daily_limit_reached",
        "ip.hourly_limit_reached",
        "ip.warmup_advanced",  # day 2 -> 3
        "ip.warmed",
    ]
    assert [e["time"] for e in events[1:4]] == ["2026-01-05T09:00:00Z"] + 2 * [
        "2026-01-05T10:00:00Z"
    ]
    warmed = events[-1]
    assert warmed["time"] == "2026-01-07T00:00:00Z"
    assert warmed["data"]["status"] == "active"
    assert warmed["data"]["warmup"]["progress"] == 1.0
    assert warmed["data"]["warmup"]["daily_limit"] == -1
    days = warmed["data"]["warmup"]["days"]
    assert [(d["day"], d["sent"], d["done"]) for d in days] == [
        (1, 10, True),
        (2, 20, True),
        (3, 0, True),
    ]
    view = await view_of(database, ip_id)
    assert view["status"] == "active" and view["warmup"]["status"] == "completed"
    assert view["reputation_score"] > 50
    assert await counted(database, ip_id) == {
        "delivered": 31,
        "deferred": 0,
        "bounced": 0,
        "complained": 0,
        "dropped": 0,
    }


async def test_limits_are_reported_once_and_sends_beyond_them_are_still_counted(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_l", warmup_schedule="test-3")
        ip_id = ip["ip_id"]
        await seen.wait_for(is_warmup(ip_id, "ip.warmup_started"))
        # Hour 09: 8 sends (limit 5), one batch at a time, the sweep running all along.
        for i, event in enumerate(spread(ip, D1 + 9 * H, 8)):
            await publish(publisher, [event])
            await wait_counted(database, i + 1, ip_id)
        # Hour 10: 9 more, the day reaches its limit of 10 and goes to 17.
        await publish(publisher, spread(ip, D1 + 10 * H, 9))
        await wait_counted(database, 17, ip_id)
        # Hour 11: 3 sends (under the hourly limit) and the hour after moves time on.
        await publish(publisher, spread(ip, D1 + 11 * H, 3, "deferred"))
        await publish(publisher, [send(ip, D1 + 12 * H + 30 * M, "dropped")])
        await wait_counted(database, 21, ip_id)
        await seen.wait_for(is_warmup(ip_id, "ip.daily_limit_reached"))
        await seen.wait_for(is_warmup(ip_id, "ip.hourly_limit_reached"), count=2)
        await asyncio.sleep(1.5)
        await seen.poll()

    events = warmup_events(seen, ip_id)
    hourly = [e for e in events if e["type"] == "ip.hourly_limit_reached"]
    daily = [e for e in events if e["type"] == "ip.daily_limit_reached"]
    assert [e["time"] for e in hourly] == ["2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z"]
    assert [e["time"] for e in daily] == ["2026-01-05T10:00:00Z"]
    # Every copy on the wire of one limit event has the same id.
    copies = Counter(
        s.event["id"]
        for s in seen.seen
        if s.topic == topics.IP_STATE_CHANGED and s.event["type"].endswith("limit_reached")
    )
    assert set(copies) == {e["id"] for e in hourly + daily}
    view = await view_of(database, ip_id)
    assert view["warmup"]["sent_today"] == 20  # beyond the limit of 10, dropped excluded
    assert await counted(database, ip_id) == {
        "delivered": 17,
        "deferred": 3,
        "bounced": 0,
        "complained": 0,
        "dropped": 1,
    }


async def test_standard_14_in_calendar_mode_started_by_command_ends_active(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_c", auto_warmup=False)
        ip_id = ip["ip_id"]

        async def registered() -> bool:
            conn = await connect_schema(database, "warmup")
            try:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM ip_warmup_views WHERE ip_id=$1", ip_id
                    )
                )
            finally:
                await conn.close()

        await wait_until(registered, 30, "the skipped view")
        # Requested without a warm-up: active at once, at full volume.
        view = await view_of(database, ip_id)
        assert view["status"] == "active" and view["warmup"]["status"] == "skipped"
        assert view["warmup"]["daily_limit"] == -1

        command = cloud_event(
            "ip.warmup.start",
            {"account_id": "acct_c", "ip_id": ip_id, "schedule": "standard-14", "mode": "calendar"},
            time=T0 + H,
        )
        await publisher.send(topics.IP_COMMANDS, command, key="acct_c")
        [started] = await seen.wait_for(is_warmup(ip_id, "ip.warmup_started"))
        assert started.event["causationid"] == command["id"]
        assert started.event["data"]["warmup"]["mode"] == "calendar"
        # One small send a day: in calendar mode every elapsed day advances.
        await publish(publisher, [send(ip, D1 + k * DAY + 12 * H) for k in range(1, 14)])
        await seen.wait_for(is_warmup(ip_id, "ip.warmed"), timeout=30)
        await asyncio.sleep(0.5)
        await seen.poll()

    accepted = seen.of_type("command.accepted")
    assert [a["data"]["command_id"] for a in accepted] == [command["id"]]
    events = warmup_events(seen, ip_id)
    advanced = [e for e in events if e["type"] == "ip.warmup_advanced"]
    assert len(advanced) == 13
    assert [e["data"]["warmup"]["day"] for e in advanced][-1] == 14
    [warmed] = [e for e in events if e["type"] == "ip.warmed"]
    assert warmed["time"] == "2026-01-18T00:00:00Z"
    view = await view_of(database, ip_id)
    assert view["status"] == "active"
    assert view["warmup"]["progress"] == 1.0 and view["warmup"]["hold_reason"] is None


async def test_an_ip_that_sends_too_little_holds_and_the_reason_shows(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_h", warmup_schedule="test-3")
        ip_id = ip["ip_id"]
        await seen.wait_for(is_warmup(ip_id, "ip.warmup_started"))
        await publish(publisher, spread(ip, D1 + 9 * H, 3))
        await publish(publisher, [send(ip, D1 + 9 * H + 30 * M, "bounced")])
        # The next day: day 1 closes with 3 of the 9 deliveries needed.
        await publish(publisher, [send(ip, D1 + DAY + 2 * H)])

        async def held() -> bool:
            return bool((await view_of(database, ip_id))["warmup"]["hold_reason"])

        await wait_until(held, 30, "the hold")
        await asyncio.sleep(0.5)
        await seen.poll()

    # `ipfleet ip show` is what an operator reads.
    view = json.loads(await ipfleet(database, "ip", "show", ip_id))
    warmup = view["warmup"]
    assert view["status"] == "warming" and warmup["day"] == 1
    assert warmup["hold_reason"].startswith("bounce_rate: 25.00% of sent mail")
    assert "low_volume: delivered 3 of the 9 needed (90% of 10)" in warmup["hold_reason"]
    assert warmup["days"][0] == {"day": 1, "limit": 10, "sent": 1, "done": False}
    # The held day is an event of its own, decided by event time (no cause), id from the day.
    events = warmup_events(seen, ip_id)
    assert [e["type"] for e in events] == ["ip.warmup_started", "ip.warmup_held"]
    held = events[1]
    assert held["time"] == "2026-01-06T00:00:00Z" and "causationid" not in held
    assert held["id"] == derive_event_id(f"{ip_id}:held:2026-01-05", "ip.warmup_held")
    assert held["data"]["warmup"]["hold_reason"] == warmup["hold_reason"]

    # `ipfleet ip list`: one row per IP, with status, warm-up status and progress.
    header, *rows = (await ipfleet(database, "ip", "list")).splitlines()
    assert header.split() == [
        "IP_ID", "ACCOUNT", "ADDRESS", "STATUS", "WARMUP", "DAY", "PROGRESS", "LIMIT", "SCORE"
    ]  # fmt: skip
    row = next(r.split() for r in rows if r.startswith(ip_id))
    assert row[1:8] == ["acct_h", view["address"], "warming", "warming", "1", "0%", "10"]
    # Filtered by status: IP status or warm-up status.
    assert ip_id in await ipfleet(database, "ip", "list", "--status", "warming")
    assert ip_id not in await ipfleet(database, "ip", "list", "--status", "skipped")


async def test_a_complaint_spike_suspends_and_the_ip_resumes_one_day_back(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for(), suspend_min_sends=10, suspension_hours=24)
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_s", warmup_schedule="test-3")
        ip_id = ip["ip_id"]
        await seen.wait_for(is_warmup(ip_id, "ip.warmup_started"))
        # Day 1 earned: 5 + 5 delivered.
        await publish(publisher, spread(ip, D1 + 9 * H, 5) + spread(ip, D1 + 10 * H, 5))
        # Day 2, 09:xx: 3 complaints in 10 sends; the hour closes with the 10:30 send.
        day2 = D1 + DAY
        await publish(
            publisher,
            spread(ip, day2 + 9 * H, 7) + spread(ip, day2 + 9 * H + 30 * M, 3, "complained"),
        )
        await publish(publisher, [send(ip, day2 + 10 * H + 30 * M)])
        [suspended] = await seen.wait_for(is_warmup(ip_id, "ip.suspended"))
        data = suspended.event["data"]
        assert suspended.event["time"] == "2026-01-06T10:00:00Z"
        assert data["status"] == "suspended"
        assert data["warmup"]["hold_reason"].startswith("complaint_spike")
        assert (data["warmup"]["daily_limit"], data["warmup"]["hourly_limit"]) == (0, 0)
        # 24 hours later (event time) it resumes, one schedule day back.
        await publish(publisher, [send(ip, day2 + DAY + 10 * H + 30 * M)])
        [resumed] = await seen.wait_for(is_warmup(ip_id, "ip.resumed"))
        await asyncio.sleep(0.5)
        await seen.poll()

    assert resumed.event["time"] == "2026-01-07T10:00:00Z"
    assert resumed.event["data"]["status"] == "warming"
    assert resumed.event["data"]["warmup"]["day"] == 1
    kinds = [e["type"] for e in warmup_events(seen, ip_id)]
    assert kinds.count("ip.suspended") == 1 and kinds.count("ip.resumed") == 1
    assert kinds.index("ip.warmup_advanced") < kinds.index("ip.suspended")
    view = await view_of(database, ip_id)
    assert view["status"] == "warming" and view["warmup"]["day"] == 1


async def test_a_replay_of_the_same_sends_changes_no_counter(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_r", warmup_schedule="test-3")
        await seen.wait_for(is_warmup(ip["ip_id"], "ip.warmup_started"))
        outcomes = ["delivered", "deferred", "bounced", "complained", "dropped"]
        sends = [send(ip, D1 + 9 * H + i * M, outcomes[i % 5]) for i in range(40)]
        await publish(publisher, sends)
        await wait_counted(database, 40)
        before = await counted(database)
        # The same events again (an operator's replay, a redelivery), twice, then a marker.
        await publish(publisher, sends)
        await publish(publisher, sends[::-1])
        await publish(publisher, [send(ip, D1 + 9 * H + 45 * M, "dropped")])
        await wait_counted(database, 41)
        await asyncio.sleep(1.0)
        await seen.poll()
    after = await counted(database)
    assert before == {o: 8 for o in outcomes}
    assert after == {**before, "dropped": 9}
    assert not [s for s in seen.seen if s.topic.endswith(".dlq")]


async def test_sends_on_unknown_ips_are_counted_as_unknown_and_another_accounts_are_dead_lettered(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_u", warmup_schedule="test-3")
        await seen.wait_for(is_warmup(ip["ip_id"], "ip.warmup_started"))
        unknown = [send(ip, D1 + 9 * H + i * M, address="192.0.2.99") for i in range(3)]
        unknown += [send(ip, D1 + DAY + 9 * H, "bounced", address="192.0.2.98")]
        foreign = send(ip, D1 + 9 * H + 30 * M, account="acct_intruder")
        mine = send(ip, D1 + 9 * H + 40 * M)
        await publish(publisher, [*unknown, foreign, mine])
        [dead] = await seen.wait_for(lambda s: s.topic.endswith(".dlq"))
        await wait_counted(database, 1)

    assert dead.topic == topics.SEND_RECORDED + ".dlq"
    assert dead.event["id"] == foreign["id"]  # the input, unchanged
    assert dead.headers["error.class"] == "Unprocessable"
    assert dead.headers["error.consumer"] == "warmup/send.recorded"
    assert dead.key == ip["address"]
    conn = await connect_schema(database, "warmup")
    try:
        rows = await conn.fetch("SELECT address, day, n FROM unknown_ip_sends ORDER BY address")
    finally:
        await conn.close()
    assert [(r["address"], r["day"].isoformat(), r["n"]) for r in rows] == [
        ("192.0.2.98", "2026-01-06", 1),
        ("192.0.2.99", "2026-01-05", 3),
    ]
    assert (await counted(database, ip["ip_id"]))["delivered"] == 1

    # What an operator reads: `ipfleet ip unknown`, newest day first; `--days 1` keeps the
    # newest day only.
    async def report(*args: str) -> list[list[str]]:
        listed = await ipfleet(database, "ip", "unknown", *args)
        return [line.split() for line in listed.splitlines()[1:]]

    first = (D1 + 9 * H).strftime("%Y-%m-%dT%H:%M:%SZ")
    last = (D1 + 9 * H + 2 * M).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await report() == [
        ["2026-01-06", "192.0.2.98", "1", *[(D1 + DAY + 9 * H).strftime("%Y-%m-%dT%H:%M:%SZ")] * 2],
        ["2026-01-05", "192.0.2.99", "3", first, last],
    ]
    assert [row[:2] for row in await report("--days", "1")] == [["2026-01-06", "192.0.2.98"]]


async def test_warmup_start_commands_are_answered_and_a_cooldown_stops_the_warmup(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    await start_services(start_fleet, settings_for())
    async with follow(WATCHED) as seen:
        ip = await provision(publisher, seen, "acct_k", auto_warmup=False)
        ip_id = ip["ip_id"]

        def command(account: str, at: datetime, **data: Any) -> dict[str, Any]:
            return cloud_event("ip.warmup.start", {"account_id": account, **data}, time=at)

        commands = {
            "intruder": command("acct_other", T0 + M, ip_id=ip_id),
            "missing": command("acct_k", T0 + M, ip_id="ip_nope"),
            "unknown_schedule": command("acct_k", T0 + M, ip_id=ip_id, schedule="turbo-1"),
            "bad_mode": command("acct_k", T0 + M, ip_id=ip_id, mode="lunar"),
            "start": command("acct_k", T0 + 2 * M, ip_id=ip_id, schedule="test-3"),
            "again": command("acct_k", T0 + 3 * M, ip_id=ip_id),
        }
        for event in commands.values():
            await publisher.send(topics.IP_COMMANDS, event, key=event["data"]["account_id"])
        await seen.wait_for(lambda s: s.topic == topics.IP_COMMAND_RESULTS, count=len(commands))
        await seen.wait_for(is_warmup(ip_id, "ip.warmup_started"))

        release = cloud_event("ip.release", {"account_id": "acct_k", "ip_id": ip_id}, time=T0 + H)
        await publisher.send(topics.IP_COMMANDS, release, key="acct_k")

        async def stopped() -> bool:
            reason = (await view_of(database, ip_id))["warmup"]["hold_reason"] or ""
            return reason.startswith("stopped")

        await wait_until(stopped, 30, "the warm-up to stop")
        # Sends during the cooldown are counted; nothing more is decided.
        await publish(publisher, spread(ip, T0 + 2 * H, 12))
        await publish(publisher, [send(ip, T0 + 4 * H)])
        await wait_counted(database, 13, ip_id)
        await asyncio.sleep(1.0)
        await seen.poll()

    answers = {e["data"]["command_id"]: e for e in seen.of_type("command.accepted")}
    answers |= {e["data"]["command_id"]: e for e in seen.of_type("command.rejected")}
    reasons = {
        name: answers[e["id"]]["data"].get("reason", answers[e["id"]]["type"])
        for name, e in commands.items()
    }
    assert reasons == {
        "intruder": "not_found",
        "missing": "not_found",
        "unknown_schedule": "invalid",
        "bad_mode": "invalid",
        "start": "command.accepted",
        "again": "conflict",
    }
    assert "already_started" in answers[commands["again"]["id"]]["data"]["message"]
    # Registered at once, started by command, stopped by the registry's cooldown: warmup
    # announces each with the IP's whole view.
    events = warmup_events(seen, ip_id)
    assert [e["type"] for e in events] == [
        "ip.registered",
        "ip.warmup_started",
        "ip.cooldown_started",
    ]
    assert events[0]["data"]["status"] == "active"
    assert events[0]["data"]["warmup"]["status"] == "skipped"
    assert events[-1]["data"]["status"] == "cooldown"
    # Caused by the provisioner's ip.cooldown_started, itself caused by the release.
    assert events[-1]["causationid"] == derive_event_id(release["id"], "ip.cooldown_started")
    view = await view_of(database, ip_id)
    assert view["status"] == "cooldown"
    assert view["warmup"]["hold_reason"] == "stopped: the IP is in cooldown before release"


async def test_days_of_idle_ips_close_in_the_sweep_with_the_ids_a_batch_would_give(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
    database: str,
) -> None:
    # One partition: the idle IPs' days close on the clock safe for every partition, which
    # moves only once every partition has been read, and here only `busy` sends.
    await start_services(start_fleet, settings_for(KAFKA_TOPIC_PARTITIONS=1))
    async with follow(WATCHED) as seen:
        busy = await provision(publisher, seen, "acct_busy", warmup_schedule="test-3")
        idle = await provision(publisher, seen, "acct_idle", auto_warmup=False)
        holding = await provision(publisher, seen, "acct_holding", warmup_schedule="test-3")
        command = cloud_event(
            "ip.warmup.start",
            {"account_id": "acct_idle", "ip_id": idle["ip_id"], "schedule": "test-3"}
            | {"mode": "calendar"},
            time=T0,
        )
        await publisher.send(topics.IP_COMMANDS, command, key="acct_idle")
        for ip in (busy, idle, holding):
            await seen.wait_for(is_warmup(ip["ip_id"], "ip.warmup_started"))
        # Only `busy` sends, every day; its sends move the service's event-time clock.
        for day, per_hour in enumerate((5, 10, 5)):  # test-3 earned: active on day 3
            await publish(publisher, spread(busy, D1 + day * DAY + 9 * H, per_hour))
            await publish(publisher, spread(busy, D1 + day * DAY + 10 * H, per_hour))
        await publish(publisher, [send(busy, D1 + 3 * DAY + 2 * H)])
        await seen.wait_for(is_warmup(idle["ip_id"], "ip.warmed"), timeout=30)

        async def held() -> bool:
            view = await view_of(database, holding["ip_id"])
            return bool(view["warmup"]["hold_reason"])

        await wait_until(held, 30, "the idle earned IP to hold")
        await asyncio.sleep(0.5)
        await seen.poll()

    def expected_id(ip_id: str, key: str, event_type: str) -> str:
        return derive_event_id(f"{ip_id}:{key}", event_type)

    swept = warmup_events(seen, idle["ip_id"])
    assert [(e["type"], e["time"]) for e in swept] == [
        ("ip.registered", "2026-01-05T08:00:00Z"),  # no auto warm-up: registered at once
        ("ip.warmup_started", "2026-01-05T08:00:00Z"),
        ("ip.warmup_advanced", "2026-01-06T00:00:00Z"),
        ("ip.warmup_advanced", "2026-01-07T00:00:00Z"),
        ("ip.warmed", "2026-01-07T00:00:00Z"),
    ]
    keys = ["advanced:2026-01-05", "advanced:2026-01-06", "warmed:2026-01-06"]
    for event, key in zip(swept[2:], keys, strict=True):
        assert event["id"] == expected_id(idle["ip_id"], key, event["type"])
        assert "causationid" not in event  # decided by the sweep, not by an input
    # The busy IP's decisions came from its batches, under the same scheme.
    batched = [e for e in warmup_events(seen, busy["ip_id"]) if e["type"] == "ip.warmup_advanced"]
    assert [e["id"] for e in batched[:2]] == [
        expected_id(busy["ip_id"], "advanced:2026-01-05", "ip.warmup_advanced"),
        expected_id(busy["ip_id"], "advanced:2026-01-06", "ip.warmup_advanced"),
    ]
    # A day closing is decided by event time passing, whoever notices it: no single cause.
    assert not any(e.get("causationid") for e in batched)
    view = await view_of(database, holding["ip_id"])
    assert view["warmup"]["day"] == 1
    assert view["warmup"]["hold_reason"] == "low_volume: delivered 0 of the 9 needed (90% of 10)"
