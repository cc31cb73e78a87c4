"""Which IPs sit in which pool: named pools and the three dynamic pools of an account.

Named pools (`pool.create` … `pool.remove_ip`): an `AccountPools` value changed by pure
functions that return the account's next pools, or a `Refusal`. Names are unique per account
(exact, case-sensitive match), 1 to 64 characters, without surrounding blanks, and may not
take a dynamic pool's name. One pool may be the default: creating another default demotes the
old one (there is no other command to move the default). An IP may sit in several pools.

Dynamic pools (`dynamic_pools.configure`): `check_dynamic_pools` validates which of the
account's IPs form `dynamic_good`, `dynamic_poor` and `dynamic_new`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from services.reputation.domain.bands import DYNAMIC_POOLS, Band
from services.reputation.domain.refusals import Refusal

POOL_NAME_MAX_LENGTH = 64

IpStatus = Literal["provisioning", "warming", "active", "suspended", "cooldown", "released"]

# The IPs seed 003 calls "not currently warming": those that can carry a pool's traffic at full
# volume now. `provisioning` (not sending yet) and `suspended` (a paused warm-up) do not count.
FULL_VOLUME_STATUSES: frozenset[str] = frozenset({"active"})


class NamedPool(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    is_default: bool = False
    ip_ids: tuple[str, ...] = ()


class AccountPools(BaseModel):
    """An account's named pools, in creation order, each with its IPs in the order added."""

    model_config = ConfigDict(frozen=True)

    pools: tuple[NamedPool, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> AccountPools:
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names are unique per account")
        if sum(pool.is_default for pool in self.pools) > 1:
            raise ValueError("an account has at most one default pool")
        return self

    def get(self, name: str) -> NamedPool | None:
        return next((pool for pool in self.pools if pool.name == name), None)

    @property
    def default(self) -> NamedPool | None:
        """The pool a new IP joins when its request names none."""
        return next((pool for pool in self.pools if pool.is_default), None)

    def names_containing(self, ip_id: str) -> tuple[str, ...]:
        return tuple(pool.name for pool in self.pools if ip_id in pool.ip_ids)


def check_pool_name(name: str) -> Refusal | None:
    """Refusal (`invalid`) when `name` cannot name a pool: empty, longer than 64 characters,
    blanks around it, or a dynamic pool's name."""
    if not name.strip():
        return Refusal("invalid", "a pool name cannot be empty")
    if name != name.strip():
        return Refusal("invalid", f"pool name {name!r} has leading or trailing blanks")
    if len(name) > POOL_NAME_MAX_LENGTH:
        return Refusal(
            "invalid",
            f"a pool name has at most {POOL_NAME_MAX_LENGTH} characters ({len(name)} given)",
        )
    if name in DYNAMIC_POOLS:
        return Refusal("invalid", f"{name} is reserved for dynamic IP pools")
    return None


def create_pool(
    pools: AccountPools, name: str, *, is_default: bool = False
) -> AccountPools | Refusal:
    """Add an empty pool. Refused: a bad name (`invalid`), a name in use (`conflict`).
    With `is_default`, the new pool becomes the default and the old default stops being it."""
    if (refusal := check_pool_name(name)) is not None:
        return refusal
    if pools.get(name) is not None:
        return Refusal("conflict", f"a pool named {name!r} already exists")
    kept = (
        tuple(p.model_copy(update={"is_default": False}) for p in pools.pools)
        if is_default
        else pools.pools
    )
    return AccountPools(pools=(*kept, NamedPool(name=name, is_default=is_default)))


def rename_pool(pools: AccountPools, name: str, new_name: str) -> AccountPools | Refusal:
    """Rename a pool, keeping its IPs and default flag. Refused: no such pool (`not_found`),
    a bad new name or the same name (`invalid`), a new name in use (`conflict`)."""
    if pools.get(name) is None:
        return _no_pool(name)
    if (refusal := check_pool_name(new_name)) is not None:
        return refusal
    if new_name == name:
        return Refusal("invalid", f"pool {name!r} already has that name")
    if pools.get(new_name) is not None:
        return Refusal("conflict", f"a pool named {new_name!r} already exists")
    return _replace(pools, name, lambda pool: pool.model_copy(update={"name": new_name}))


def delete_pool(pools: AccountPools, name: str) -> AccountPools | Refusal:
    """Delete a pool; its IPs stay the account's and stay in their other pools. Deleting the
    default pool leaves the account without one. Refused: no such pool (`not_found`)."""
    if pools.get(name) is None:
        return _no_pool(name)
    return AccountPools(pools=tuple(pool for pool in pools.pools if pool.name != name))


def add_ip(
    pools: AccountPools, name: str, ip_id: str, ip_status: IpStatus | None
) -> AccountPools | Refusal:
    """Put one of the account's IPs in a pool. `ip_status` is the IP's status, None when the IP
    is not the account's. Refused: no such pool, or an IP that is not the account's or is
    released (`not_found`); an IP in cooldown or already in the pool (`conflict`)."""
    pool = pools.get(name)
    if pool is None:
        return _no_pool(name)
    if ip_status is None or ip_status == "released":
        return _no_ip(ip_id)
    if ip_status == "cooldown":
        return Refusal("conflict", f"IP {ip_id} is in cooldown before release")
    if ip_id in pool.ip_ids:
        return Refusal("conflict", f"IP {ip_id} is already in pool {name!r}")
    return _replace(pools, name, lambda p: p.model_copy(update={"ip_ids": (*p.ip_ids, ip_id)}))


def remove_ip(pools: AccountPools, name: str, ip_id: str) -> AccountPools | Refusal:
    """Take an IP out of one pool. Refused: no such pool, or the IP is not in it (`not_found`)."""
    pool = pools.get(name)
    if pool is None:
        return _no_pool(name)
    if ip_id not in pool.ip_ids:
        return Refusal("not_found", f"IP {ip_id} is not in pool {name!r}")
    return _replace(pools, name, lambda p: _without(p, ip_id))


def release_ip(pools: AccountPools, ip_id: str) -> AccountPools:
    """A released IP leaves every pool it was in (`names_containing` says which)."""
    return AccountPools(pools=tuple(_without(pool, ip_id) for pool in pools.pools))


def pool_for_new_ip(pools: AccountPools, requested: str | None) -> str | None:
    """The named pool a newly provisioned IP joins: the one its request named, when the account
    has it; the account's default pool when the request named none; otherwise none. A request
    that names a pool the account does not have does not land in the default instead: the
    requester asked for that pool, and a silent substitute would send mail from the wrong IPs."""
    if requested is not None:
        return requested if pools.get(requested) is not None else None
    default = pools.default
    return default.name if default is not None else None


def check_pool_unused(name: str, domains: Sequence[str]) -> Refusal | None:
    """Refusal (`conflict`) to delete pool `name` while `domains` send from it (pinned to it by
    an override, or unenrolled into it): they would be left naming a pool that is gone."""
    if not domains:
        return None
    shown = ", ".join(domains[:5]) + (f" and {len(domains) - 5} more" if len(domains) > 5 else "")
    return Refusal(
        "conflict",
        f"pool {name!r} is the pool of domain(s) {shown}: "
        "clear their override or unenroll them into another pool first",
    )


def check_pool_reference(pools: AccountPools, name: str) -> Refusal | None:
    """Refusal (`not_found`) unless `name` is a dynamic pool or one of the account's named pools:
    for `domain.override.set`'s pool and `domain.unenroll`'s replacement pool."""
    if name in DYNAMIC_POOLS or pools.get(name) is not None:
        return None
    return _no_pool(name)


class DynamicPoolIps(BaseModel):
    """The IPs of an account's three dynamic pools, as `dynamic_pools.configure` names them."""

    model_config = ConfigDict(frozen=True)

    good_reputation: tuple[str, ...] = ()
    poor_reputation: tuple[str, ...] = ()
    new_senders: tuple[str, ...] = ()

    def by_pool(self) -> dict[str, tuple[str, ...]]:
        return {
            Band.GOOD.pool: self.good_reputation,
            Band.POOR.pool: self.poor_reputation,
            Band.NEW.pool: self.new_senders,
        }

    def pools_containing(self, ip_id: str) -> tuple[str, ...]:
        return tuple(pool for pool, ips in self.by_pool().items() if ip_id in ips)

    def without(self, ip_id: str) -> DynamicPoolIps:
        """These pools once `ip_id` has left them (it was released)."""
        return DynamicPoolIps(
            good_reputation=tuple(i for i in self.good_reputation if i != ip_id),
            poor_reputation=tuple(i for i in self.poor_reputation if i != ip_id),
            new_senders=tuple(i for i in self.new_senders if i != ip_id),
        )


def check_dynamic_pools(
    account_ips: Mapping[str, IpStatus],
    good_reputation: Sequence[str],
    poor_reputation: Sequence[str],
    new_senders: Sequence[str],
    *,
    enabled: bool = True,
) -> DynamicPoolIps | Refusal:
    """Validate the IPs of a `dynamic_pools.configure`; they replace the pools' current IPs.

    `account_ips` maps each of the account's dedicated IPs to its status. Refused, in this
    order: an IP that is not the account's or is released (`not_found`); an IP in cooldown
    (`conflict`); an IP named for two dynamic pools (`invalid`); when `enabled`, a pool with no
    IP (`invalid`) or whose IPs are all still warming, i.e. none is `active` (`conflict`).
    An IP listed twice in the same pool counts once.
    """
    proposed = DynamicPoolIps(
        good_reputation=_unique(good_reputation),
        poor_reputation=_unique(poor_reputation),
        new_senders=_unique(new_senders),
    )
    by_pool = proposed.by_pool()
    every = _unique([ip for ips in by_pool.values() for ip in ips])

    unknown = [ip for ip in every if account_ips.get(ip) in (None, "released")]
    if unknown:
        return Refusal("not_found", f"not a dedicated IP of this account: {', '.join(unknown)}")
    leaving = [ip for ip in every if account_ips[ip] == "cooldown"]
    if leaving:
        return Refusal("conflict", f"in cooldown before release: {', '.join(leaving)}")
    for ip in every:
        holders = [pool for pool, ips in by_pool.items() if ip in ips]
        if len(holders) > 1:
            return Refusal(
                "invalid",
                f"IP {ip} cannot sit in two dynamic pools ({' and '.join(holders)})",
            )
    if not enabled:
        return proposed
    for pool, ips in by_pool.items():
        if not ips:
            return Refusal("invalid", f"{pool} needs at least one IP")
        if not any(account_ips[ip] in FULL_VOLUME_STATUSES for ip in ips):
            return Refusal(
                "conflict",
                f"{pool} needs at least one IP that is not warming; "
                f"{', '.join(ips)} {'is' if len(ips) == 1 else 'are'} not active yet",
            )
    return proposed


def check_can_disable(enrolled_domains: Sequence[str]) -> Refusal | None:
    """Refusal (`conflict`) to turn dynamic pools off while domains are enrolled: they would be
    judged into pools the account no longer runs. Unenrolling them first says where each goes."""
    if not enrolled_domains:
        return None
    count = len(enrolled_domains)
    shown = ", ".join(enrolled_domains[:5]) + (f" and {count - 5} more" if count > 5 else "")
    return Refusal(
        "conflict",
        f"{count} domain(s) are enrolled in dynamic IP pools ({shown}): "
        "unenroll them before disabling the feature",
    )


def _no_pool(name: str) -> Refusal:
    return Refusal("not_found", f"no pool named {name!r}")


def _no_ip(ip_id: str) -> Refusal:
    return Refusal("not_found", f"IP {ip_id} is not a dedicated IP of this account")


def _without(pool: NamedPool, ip_id: str) -> NamedPool:
    if ip_id not in pool.ip_ids:
        return pool
    return pool.model_copy(update={"ip_ids": tuple(i for i in pool.ip_ids if i != ip_id)})


def _replace(
    pools: AccountPools, name: str, change: Callable[[NamedPool], NamedPool]
) -> AccountPools:
    return AccountPools(
        pools=tuple(change(pool) if pool.name == name else pool for pool in pools.pools)
    )


def _unique(ips: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ips))
