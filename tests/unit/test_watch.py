"""The watch view from events alone, without I/O."""

from __future__ import annotations

from shared.contract import topics
from shared.contract.events import IpView, WarmupView
from shared.watch import FleetView, render


def ip_event(ip_id: str, account: str, status: str, **warmup: object) -> dict[str, object]:
    return {
        "type": "ip.warmup_advanced",
        "time": "2026-11-23T10:00:00Z",
        "data": {
            "ip_id": ip_id,
            "account_id": account,
            "address": "198.51.100.7",
            "status": status,
            "pool": None,
            "warmup": {
                "status": "warming",
                "day": 3,
                "progress": 0.25,
                "daily_limit": 500,
                "sent_today": 120,
                **warmup,
            },
            "reputation_score": 87,
        },
    }


def test_the_last_view_per_ip_wins_and_moves_are_kept_recent() -> None:
    view = FleetView(recent_size=2)
    view.apply(topics.IP_STATE_CHANGED, ip_event("ip_1", "acct_1", "warming", day=2))
    view.apply(topics.IP_STATE_CHANGED, ip_event("ip_1", "acct_1", "warming"))
    for n, (prev, new) in enumerate(
        [(None, "dynamic_new"), ("dynamic_new", "dynamic_good"), ("dynamic_good", "dynamic_poor")]
    ):
        view.apply(
            topics.DOMAIN_POOL_CHANGED,
            {
                "type": "domain.pool_changed",
                "time": f"2026-11-23T1{n}:00:00Z",
                "data": {
                    "account_id": "acct_1",
                    "domain": "shop.example",
                    "prev_pool": prev,
                    "new_pool": new,
                    "reason": "why",
                    "initiated_by": "system",
                },
            },
        )
    screen = render(view)
    [line] = [x for x in screen.splitlines() if x.startswith("acct_1")]
    assert line.split()[5:9] == ["3", "25%", "120/500", "87"]
    assert "default -> dynamic_new" not in screen  # the oldest move scrolled away
    assert "dynamic_good -> dynamic_poor (system: why)" in screen


def test_a_deleted_pool_is_forgotten_and_garbage_is_ignored() -> None:
    view = FleetView()
    created = {
        "type": "pool.created",
        "time": "t",
        "data": {"account_id": "a", "name": "p", "ip_ids": ["ip_1"]},
    }
    view.apply(topics.POOL_STATE_CHANGED, created)
    assert view.pools == {("a", "p"): ["ip_1"]}
    view.apply(topics.POOL_STATE_CHANGED, {**created, "type": "pool.deleted"})
    assert view.pools == {}
    view.apply(topics.IP_STATE_CHANGED, {"type": "x", "data": "not an object"})
    assert view.events == 2


def test_an_ip_registered_by_warmup_shows_from_its_first_view() -> None:
    # warmup's first event of an IP (ip.registered, the whole IpView as the contract has it),
    # then its cooldown: the registry's lifecycle reaches watch through warmup's view alone.
    data = IpView(
        account_id="acct_r",
        ip_id="ip_r",
        address="203.0.113.9",
        region="eu",
        status="provisioning",
        pool=None,
        rdns=None,
        warmup=WarmupView(),
        reputation_score=50,
    ).model_dump(mode="json")
    view = FleetView()
    when = "2026-11-23T10:00:00Z"
    view.apply(topics.IP_STATE_CHANGED, {"type": "ip.registered", "time": when, "data": data})
    [line] = [x for x in render(view).splitlines() if x.startswith("acct_r")]
    assert "provisioning" in line and "ip.registered" in line
    cooled = {**data, "status": "cooldown"}
    view.apply(
        topics.IP_STATE_CHANGED, {"type": "ip.cooldown_started", "time": when, "data": cooled}
    )
    assert view.ips["ip_r"].status == "cooldown"
    assert view.ips["ip_r"].last_event == "ip.cooldown_started"
