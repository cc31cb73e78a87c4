import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from services.provisioner.domain import rules

QUOTAS = {"free": 0, "pro": 0, "max": 1, "enterprise": 5}


def test_plans_without_dedicated_ips_are_not_eligible() -> None:
    assert rules.quota_refusal("free", QUOTAS, 0)[0] == "plan_not_eligible"  # type: ignore[index]
    assert rules.quota_refusal("pro", QUOTAS, 0)[0] == "plan_not_eligible"  # type: ignore[index]


def test_quota_counts_ips_not_yet_released() -> None:
    assert rules.quota_refusal("max", QUOTAS, 0) is None
    assert rules.quota_refusal("max", QUOTAS, 1)[0] == "quota_exceeded"  # type: ignore[index]
    assert rules.quota_refusal("enterprise", QUOTAS, 4) is None
    refusal = rules.quota_refusal("enterprise", QUOTAS, 5)
    assert refusal is not None and refusal[0] == "quota_exceeded" and "5" in refusal[1]


def test_quotas_are_configurable() -> None:
    assert rules.quota_refusal("pro", {**QUOTAS, "pro": 2}, 1) is None


def test_ip_ids_are_stable_per_request_and_distinct_across_requests() -> None:
    assert rules.ip_id_for("req-1") == rules.ip_id_for("req-1")
    assert rules.ip_id_for("req-1") != rules.ip_id_for("req-2")
    assert rules.ip_id_for("req-1").startswith("ip_")


def test_cooldown_ends_a_period_after_the_release_in_event_time() -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert rules.cooldown_ends(at, timedelta(hours=24)) == datetime(2026, 1, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize("status", ["cooldown", "released"])
def test_ips_on_their_way_out_take_no_commands(status: str) -> None:
    refusal = rules.command_refusal(status, "ip.update")
    assert refusal is not None and refusal[0] == "conflict"


@pytest.mark.parametrize("status", ["provisioning", "warming", "active", "suspended"])
def test_live_ips_take_commands(status: str) -> None:
    assert rules.command_refusal(status, "ip.release") is None


def test_usable_hosts_skip_network_and_broadcast_addresses() -> None:
    hosts = list(rules.usable_hosts(ipaddress.ip_network("198.51.100.0/29")))
    assert hosts[0] == "198.51.100.1" and hosts[-1] == "198.51.100.6" and len(hosts) == 6
    assert list(rules.usable_hosts(ipaddress.ip_network("203.0.113.8/31"))) == [
        "203.0.113.8",
        "203.0.113.9",
    ]


def test_huge_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="smaller ranges"):
        list(rules.usable_hosts(ipaddress.ip_network("10.0.0.0/8"), limit=1000))
