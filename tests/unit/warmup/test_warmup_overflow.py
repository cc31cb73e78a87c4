"""Overflow of limit events: where the excess of a reached limit goes. Pure rules, no I/O."""

from __future__ import annotations

from services.warmup.domain.overflow import KnownPool, Overflow, choose_overflow

IP = "ip_1"


def pool(name: str, *ips: str, default: bool = False) -> KnownPool:
    return KnownPool(name, default, ips)


def test_a_pool_of_the_ip_with_another_active_ip_comes_first() -> None:
    pools = [pool("marketing", "ip_2", default=True), pool("tx", IP, "ip_3")]
    assert choose_overflow(IP, pools, {"ip_2", "ip_3"}) == Overflow("tx", "own_pool")


def test_own_pools_in_creation_order() -> None:
    pools = [pool("a", IP, "ip_2"), pool("b", IP, "ip_3")]
    assert choose_overflow(IP, pools, {"ip_2", "ip_3"}).pool == "a"
    assert choose_overflow(IP, pools, {"ip_3"}).pool == "b"


def test_the_default_pool_when_no_own_pool_has_another_active_ip() -> None:
    pools = [pool("tx", IP, "ip_3"), pool("marketing", "ip_2", default=True)]
    assert choose_overflow(IP, pools, {"ip_2"}) == Overflow("marketing", "default_pool")


def test_the_ip_itself_does_not_count_and_warming_ips_do_not_count() -> None:
    pools = [pool("tx", IP, "ip_3", default=True)]
    # ip_3 warming (not active), and the IP itself active: nowhere but shared.
    assert choose_overflow(IP, pools, {IP}) == Overflow("shared", "shared")


def test_an_emptied_pool_takes_nothing_and_the_next_rule_applies() -> None:
    pools = [pool("tx", IP), pool("bulk", default=True), pool("later", IP, "ip_4")]
    assert choose_overflow(IP, pools, {"ip_4"}) == Overflow("later", "own_pool")
    assert choose_overflow(IP, pools[:2], {"ip_4"}) == Overflow("shared", "shared")


def test_shared_without_pools_and_dynamic_pools_never_take_overflow() -> None:
    assert choose_overflow(IP, [], {"ip_2"}) == Overflow("shared", "shared")
    pools = [pool("dynamic_good", IP, "ip_2")]
    assert choose_overflow(IP, pools, {"ip_2"}).reason == "shared"
    assert Overflow("shared", "shared").as_data() == {"pool": "shared", "reason": "shared"}
