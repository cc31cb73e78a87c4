import pytest
from pydantic import ValidationError

from services.reputation.domain.pools import (
    AccountPools,
    DynamicPoolIps,
    IpStatus,
    NamedPool,
    add_ip,
    check_dynamic_pools,
    check_pool_name,
    check_pool_reference,
    create_pool,
    delete_pool,
    release_ip,
    remove_ip,
    rename_pool,
)
from services.reputation.domain.refusals import Refusal


def ok(result: AccountPools | Refusal) -> AccountPools:
    assert isinstance(result, AccountPools), result
    return result


def refused(result: object, code: str) -> Refusal:
    assert isinstance(result, Refusal), result
    assert result.code == code
    return result


def account(*pools: NamedPool) -> AccountPools:
    return AccountPools(pools=pools)


MARKETING = NamedPool(name="marketing", is_default=True, ip_ids=("ip1", "ip2"))
TRANSACTIONAL = NamedPool(name="transactional", ip_ids=("ip2",))


# ---- names --------------------------------------------------------------------------------------


def test_pool_names() -> None:
    assert check_pool_name("a" * 64) is None
    assert check_pool_name("Marketing EU") is None
    assert "at most 64" in refused(check_pool_name("a" * 65), "invalid").message
    refused(check_pool_name(""), "invalid")
    refused(check_pool_name("   "), "invalid")
    refused(check_pool_name(" marketing"), "invalid")
    for reserved in ("dynamic_good", "dynamic_poor", "dynamic_new"):
        refused(check_pool_name(reserved), "invalid")


# ---- create / rename / delete ----------------------------------------------------------------


def test_create_pool() -> None:
    pools = ok(create_pool(AccountPools(), "marketing"))
    assert pools.get("marketing") == NamedPool(name="marketing")
    assert pools.default is None


def test_create_refuses_a_name_in_use_or_invalid() -> None:
    refused(create_pool(account(MARKETING), "marketing"), "conflict")
    refused(create_pool(AccountPools(), "x" * 65), "invalid")


def test_names_are_case_sensitive() -> None:
    pools = ok(create_pool(account(MARKETING), "Marketing"))
    assert [p.name for p in pools.pools] == ["marketing", "Marketing"]


def test_a_new_default_demotes_the_old_one() -> None:
    pools = ok(create_pool(account(MARKETING, TRANSACTIONAL), "bulk", is_default=True))
    assert pools.default is not None and pools.default.name == "bulk"
    assert [p.is_default for p in pools.pools] == [False, False, True]
    assert pools.get("marketing") == MARKETING.model_copy(update={"is_default": False})


def test_a_new_pool_that_is_not_default_keeps_the_default() -> None:
    pools = ok(create_pool(account(MARKETING), "bulk"))
    assert pools.default == MARKETING


def test_rename_keeps_ips_and_default() -> None:
    pools = ok(rename_pool(account(MARKETING, TRANSACTIONAL), "marketing", "promo"))
    assert pools.get("marketing") is None
    assert pools.get("promo") == NamedPool(name="promo", is_default=True, ip_ids=("ip1", "ip2"))
    assert [p.name for p in pools.pools] == ["promo", "transactional"]


def test_rename_refusals() -> None:
    pools = account(MARKETING, TRANSACTIONAL)
    refused(rename_pool(pools, "nope", "other"), "not_found")
    refused(rename_pool(pools, "marketing", "transactional"), "conflict")
    refused(rename_pool(pools, "marketing", "marketing"), "invalid")
    refused(rename_pool(pools, "marketing", "dynamic_good"), "invalid")
    refused(rename_pool(pools, "marketing", "y" * 65), "invalid")


def test_delete_pool_keeps_ips_in_their_other_pools() -> None:
    pools = ok(delete_pool(account(MARKETING, TRANSACTIONAL), "marketing"))
    assert [p.name for p in pools.pools] == ["transactional"]
    assert pools.default is None
    assert pools.names_containing("ip2") == ("transactional",)


def test_delete_unknown_pool_is_not_found() -> None:
    refused(delete_pool(account(MARKETING), "nope"), "not_found")


# ---- membership ---------------------------------------------------------------------------------


def test_an_ip_may_sit_in_several_pools() -> None:
    pools = ok(add_ip(account(MARKETING, TRANSACTIONAL), "transactional", "ip1", "warming"))
    assert pools.names_containing("ip1") == ("marketing", "transactional")
    assert pools.get("transactional") == NamedPool(name="transactional", ip_ids=("ip2", "ip1"))


@pytest.mark.parametrize(
    ("pool", "ip", "status", "code"),
    [
        ("nope", "ip9", "active", "not_found"),
        ("marketing", "ip9", None, "not_found"),  # not the account's IP (or another account's)
        ("marketing", "ip9", "released", "not_found"),
        ("marketing", "ip9", "cooldown", "conflict"),
        ("marketing", "ip1", "active", "conflict"),  # already there
    ],
)
def test_add_ip_refusals(pool: str, ip: str, status: IpStatus | None, code: str) -> None:
    refused(add_ip(account(MARKETING), pool, ip, status), code)


def test_remove_ip() -> None:
    pools = ok(remove_ip(account(MARKETING, TRANSACTIONAL), "marketing", "ip2"))
    assert pools.get("marketing") == MARKETING.model_copy(update={"ip_ids": ("ip1",)})
    assert pools.get("transactional") == TRANSACTIONAL


def test_remove_ip_refusals() -> None:
    refused(remove_ip(account(MARKETING), "nope", "ip1"), "not_found")
    refused(remove_ip(account(MARKETING), "marketing", "ip9"), "not_found")


def test_releasing_an_ip_removes_it_from_every_pool() -> None:
    pools = release_ip(account(MARKETING, TRANSACTIONAL), "ip2")
    assert pools.names_containing("ip2") == ()
    assert pools.get("marketing") == MARKETING.model_copy(update={"ip_ids": ("ip1",)})
    assert pools.get("transactional") == NamedPool(name="transactional")


def test_pool_references() -> None:
    pools = account(MARKETING)
    assert check_pool_reference(pools, "marketing") is None
    assert check_pool_reference(pools, "dynamic_poor") is None
    refused(check_pool_reference(pools, "nope"), "not_found")


def test_account_pools_invariants() -> None:
    with pytest.raises(ValidationError):
        account(MARKETING, NamedPool(name="marketing"))
    with pytest.raises(ValidationError):
        account(MARKETING, NamedPool(name="other", is_default=True))


# ---- dynamic_pools.configure --------------------------------------------------------------------

SEED_IPS: dict[str, IpStatus] = {
    "1.0.0.1": "active",
    "1.0.0.2": "active",
    "1.0.0.3": "active",
    "1.0.0.4": "active",
}


def test_seed_003_configuration_is_accepted() -> None:
    result = check_dynamic_pools(SEED_IPS, ["1.0.0.1", "1.0.0.2"], ["1.0.0.3"], ["1.0.0.4"])
    assert result == DynamicPoolIps(
        good_reputation=("1.0.0.1", "1.0.0.2"),
        poor_reputation=("1.0.0.3",),
        new_senders=("1.0.0.4",),
    )
    assert isinstance(result, DynamicPoolIps)
    assert result.by_pool() == {
        "dynamic_good": ("1.0.0.1", "1.0.0.2"),
        "dynamic_poor": ("1.0.0.3",),
        "dynamic_new": ("1.0.0.4",),
    }


def test_an_ip_that_is_not_the_accounts_is_not_found() -> None:
    refusal = refused(
        check_dynamic_pools(SEED_IPS, ["1.0.0.1", "9.9.9.9"], ["1.0.0.3"], ["1.0.0.4"]),
        "not_found",
    )
    assert "9.9.9.9" in refusal.message
    assert "1.0.0.1" not in refusal.message


def test_a_released_ip_is_not_found() -> None:
    ips: dict[str, IpStatus] = {**SEED_IPS, "1.0.0.5": "released"}
    refused(check_dynamic_pools(ips, ["1.0.0.5", "1.0.0.1"], ["1.0.0.3"], ["1.0.0.4"]), "not_found")


def test_an_ip_in_cooldown_is_refused() -> None:
    ips: dict[str, IpStatus] = {**SEED_IPS, "1.0.0.5": "cooldown"}
    refused(check_dynamic_pools(ips, ["1.0.0.5", "1.0.0.1"], ["1.0.0.3"], ["1.0.0.4"]), "conflict")


def test_an_ip_in_two_dynamic_pools_is_refused() -> None:
    refusal = refused(
        check_dynamic_pools(SEED_IPS, ["1.0.0.1"], ["1.0.0.3", "1.0.0.1"], ["1.0.0.4"]),
        "invalid",
    )
    assert "1.0.0.1" in refusal.message
    assert "dynamic_good and dynamic_poor" in refusal.message


def test_an_empty_dynamic_pool_is_refused() -> None:
    refusal = refused(check_dynamic_pools(SEED_IPS, ["1.0.0.1"], ["1.0.0.3"], []), "invalid")
    assert "dynamic_new" in refusal.message


@pytest.mark.parametrize("status", ["warming", "suspended", "provisioning"])
def test_a_pool_of_ips_still_warming_is_refused(status: IpStatus) -> None:
    ips: dict[str, IpStatus] = {**SEED_IPS, "1.0.0.3": status}
    refusal = refused(check_dynamic_pools(ips, ["1.0.0.1"], ["1.0.0.3"], ["1.0.0.4"]), "conflict")
    assert "dynamic_poor needs at least one IP that is not warming" in refusal.message


def test_one_active_ip_is_enough_beside_warming_ones() -> None:
    ips: dict[str, IpStatus] = {**SEED_IPS, "1.0.0.5": "warming"}
    result = check_dynamic_pools(ips, ["1.0.0.1"], ["1.0.0.5", "1.0.0.3"], ["1.0.0.4"])
    assert isinstance(result, DynamicPoolIps)


def test_an_ip_listed_twice_in_one_pool_counts_once() -> None:
    result = check_dynamic_pools(SEED_IPS, ["1.0.0.1", "1.0.0.1"], ["1.0.0.3"], ["1.0.0.4"])
    assert isinstance(result, DynamicPoolIps)
    assert result.good_reputation == ("1.0.0.1",)


def test_disabling_does_not_need_ips_but_still_checks_them() -> None:
    assert check_dynamic_pools(SEED_IPS, [], [], [], enabled=False) == DynamicPoolIps()
    refused(check_dynamic_pools(SEED_IPS, ["9.9.9.9"], [], [], enabled=False), "not_found")
    refused(check_dynamic_pools(SEED_IPS, ["1.0.0.1"], ["1.0.0.1"], [], enabled=False), "invalid")
