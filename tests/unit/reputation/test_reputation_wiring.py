"""The pure parts of the reputation service's wiring: the rules the handlers added, row
conversion, the CLI's formatting, and which events each consumer takes."""

from datetime import UTC, datetime

import pytest

from services.reputation import commands, store
from services.reputation.domain.assignment import DomainState, rename_pool_reference
from services.reputation.domain.bands import Band
from services.reputation.domain.pools import (
    AccountPools,
    DynamicPoolIps,
    NamedPool,
    check_can_disable,
    check_pool_unused,
    pool_for_new_ip,
)
from services.reputation.domain.refusals import Refusal
from services.reputation.service import build
from shared.contract.events import COMMANDS, IP_STATE_TYPES, REGISTRY_TYPES
from shared.settings import Settings

POOLS = AccountPools(
    pools=(NamedPool(name="marketing", is_default=True), NamedPool(name="transactional"))
)

# ---- new IPs and their pool ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pools", "requested", "joins"),
    [
        (POOLS, None, "marketing"),  # none named: the default
        (POOLS, "transactional", "transactional"),  # named and there
        (POOLS, "nowhere", None),  # named but missing: not the default instead
        (AccountPools(pools=(NamedPool(name="transactional"),)), None, None),  # no default
        (AccountPools(), None, None),
    ],
)
def test_a_new_ip_joins_the_pool_it_names_else_the_default(
    pools: AccountPools, requested: str | None, joins: str | None
) -> None:
    assert pool_for_new_ip(pools, requested) == joins


# ---- refusals the handlers use -------------------------------------------------------------


def test_a_pool_some_domain_sends_from_cannot_be_deleted() -> None:
    assert check_pool_unused("tx", []) is None
    refusal = check_pool_unused("tx", ["a.example", "b.example"])
    assert isinstance(refusal, Refusal) and refusal.code == "conflict"
    assert "a.example, b.example" in refusal.message


def test_a_long_list_of_domains_is_cut_short_in_the_message() -> None:
    refusal = check_can_disable([f"d{i}.example" for i in range(8)])
    assert isinstance(refusal, Refusal) and refusal.code == "conflict"
    assert "8 domain(s)" in refusal.message and "and 3 more" in refusal.message
    assert check_can_disable([]) is None


def test_dynamic_pool_ips_say_where_an_ip_sits_and_let_it_go() -> None:
    ips = DynamicPoolIps(good_reputation=("a", "b"), poor_reputation=("c",), new_senders=("d",))
    assert ips.pools_containing("b") == ("dynamic_good",)
    assert ips.pools_containing("z") == ()
    left = ips.without("b")
    assert left.good_reputation == ("a",) and left.poor_reputation == ("c",)
    assert ips.without("z") == ips


# ---- a renamed pool keeps its domains ---------------------------------------------------------


def test_an_override_follows_a_renamed_pool() -> None:
    pinned = DomainState(enrolled=True, band=Band.GOOD, override_pool="tx")
    assert rename_pool_reference(pinned, "tx", "tx2").override_pool == "tx2"
    assert rename_pool_reference(pinned, "other", "x") == pinned


def test_a_replacement_pool_follows_a_renamed_pool() -> None:
    parked = DomainState(enrolled=False, static_pool="tx")
    assert rename_pool_reference(parked, "tx", "tx2").pool == "tx2"


# ---- rows ------------------------------------------------------------------------------------


def test_pools_come_back_from_rows_in_order() -> None:
    rows = [
        {"name": "b", "is_default": False, "ip_ids": ["ip2", "ip1"]},
        {"name": "a", "is_default": True, "ip_ids": []},
    ]
    pools = store.pools_from_rows(rows)
    assert [p.name for p in pools.pools] == ["b", "a"]
    assert pools.get("b") == NamedPool(name="b", ip_ids=("ip2", "ip1"))
    assert pools.default is not None and pools.default.name == "a"


def test_dynamic_ips_come_back_from_rows() -> None:
    rows = [
        {"pool": "dynamic_good", "ip_id": "a"},
        {"pool": "dynamic_new", "ip_id": "c"},
        {"pool": "dynamic_good", "ip_id": "b"},
    ]
    ips = store.dynamic_ips_from_rows(rows)
    assert ips == DynamicPoolIps(good_reputation=("a", "b"), new_senders=("c",))


def test_an_account_never_configured_has_dynamic_pools_off() -> None:
    config = store.DynamicPoolConfig()
    assert not config.enabled and config.ips == DynamicPoolIps()
    assert config.thresholds.good_checks_to_leave_poor == 2


# ---- the CLI's formatting ----------------------------------------------------------------------


def test_cli_times_without_a_zone_are_utc() -> None:
    assert commands.as_utc(datetime(2026, 1, 2, 3, 4)) == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert commands.as_utc(None) is None


@pytest.mark.parametrize(
    ("given", "pool"),
    [
        ("good", "dynamic_good"),
        ("POOR", "dynamic_poor"),
        ("dynamic_new", "dynamic_new"),
        ("marketing", "marketing"),
        (None, None),
    ],
)
def test_band_filter_takes_a_band_or_a_pool(given: str | None, pool: str | None) -> None:
    assert commands.pool_filter(given) == pool


def test_a_history_line_shows_seed_003_fields() -> None:
    line = commands.history_line(
        {
            "occurred_at": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
            "prev_pool": "dynamic_poor",
            "new_pool": "dynamic_good",
            "initiated_by": "system",
            "bounce_rate": 0.01,
            "complaint_rate": 0.0001,
            "processed_count": 5000,
            "reason": "bounce_rate in good threshold",
            "changes_pool": True,
        }
    )
    assert line.startswith("2026-11-02T09:00:00Z")
    for part in (
        "dynamic_poor",
        "dynamic_good",
        "system",
        "1.0000%",
        "5000",
        "bounce_rate in good threshold",
    ):
        assert part in line
    assert "unchanged" not in line


def test_a_history_line_without_metrics_or_pool() -> None:
    line = commands.history_line(
        {
            "occurred_at": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
            "prev_pool": None,
            "new_pool": "dynamic_new",
            "initiated_by": "operator",
            "bounce_rate": None,
            "complaint_rate": None,
            "processed_count": None,
            "reason": "Domain enrolled",
            "changes_pool": False,
        }
    )
    assert "(default)" in line and " - " in line and line.endswith("(pool unchanged)")


def test_a_domain_line_shows_band_streak_and_override() -> None:
    state = DomainState(enrolled=True, band=Band.POOR, good_streak=1, override_pool="tx")
    line = commands.domain_line(
        {
            "domain": "a.example",
            "account_id": "acct",
            "pool": "tx",
            "state": state.model_dump_json(),
            "enrolled_at": datetime(2026, 11, 2, tzinfo=UTC),
            "checked_at": None,
            "bounce_rate": None,
            "complaint_rate": None,
            "processed_count": None,
        }
    )
    assert "dynamic_poor (1 good)" in line and " yes " in line and "tx" in line


def test_pool_headings_say_what_kind_of_pool() -> None:
    named = {"account_id": "a", "name": "m", "is_default": True, "enabled": None, "ip_ids": ["x"]}
    dynamic = {**named, "name": "dynamic_good", "is_default": False, "enabled": False}
    assert commands.pool_heading(named) == "a  m  (named, default)  1 IP(s)"
    assert "(dynamic, disabled)" in commands.pool_heading(dynamic)
    assert commands.ip_line("x", None).strip() == "x  (not in the registry)"
    ip = {"address": "198.51.100.1", "status": "active"}
    assert commands.ip_line("x", ip).split() == ["x", "198.51.100.1", "active"]


# ---- the service's subscriptions --------------------------------------------------------------


def test_the_service_takes_its_commands_and_skips_the_others() -> None:
    service = build(Settings.model_construct())
    by_topic = {c.topic: c for c in service.consumers}
    commands_consumer = by_topic["ip.commands"]
    assert set(commands_consumer.types) | set(commands_consumer.others) == set(COMMANDS)
    assert not set(commands_consumer.types) & set(commands_consumer.others)
    assert set(commands_consumer.others) == {
        "ip.release",
        "ip.update",
        "ip.warmup.start",
        "ip.warmup.stop",
        "ip.warmup.resume",
    }
    # Every change of an IP keeps reputation's copy of its status; ip.released also empties
    # its pools. The registry's other events arrive with the whole view on ip.state_changed.
    state_changed = by_topic["ip.state_changed"]
    assert set(state_changed.types) == set(IP_STATE_TYPES)
    registry = by_topic["ip.provisioned"]
    assert set(registry.types) == {"ip.provisioned"}
    assert set(registry.others) == set(REGISTRY_TYPES) - {"ip.provisioned"}
    assert set(by_topic) == {
        "ip.commands",
        "domain.health_checked",
        "ip.provisioned",
        "ip.state_changed",
    }
