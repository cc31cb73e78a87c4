"""Overflow: where a sender should put what exceeds an IP's daily or hourly limit.

The contract's rule, for an IP that reached a limit: a named pool of the same account that
holds at least one `active` IP other than this one, a pool this IP belongs to first (in the
order the pools were created), then the account's default pool; else `shared`, the
platform's shared IPs. SendGrid's automated warm-up states the need: "you need at least one
other warm IP address. This other IP address handles the overflow traffic from the IP
address warming up" (seed 002).

Pure: the service passes the account's named pools as it knows them (its own copy, from
`pool.state_changed`) and which of the account's IPs are `active` (from its own states).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

SHARED = "shared"
# The reputation service's dynamic pools travel on pool.state_changed too; only named pools
# take overflow.
DYNAMIC_POOLS = frozenset({"dynamic_good", "dynamic_poor", "dynamic_new"})

OverflowReason = Literal["own_pool", "default_pool", "shared"]


@dataclass(frozen=True, slots=True)
class KnownPool:
    """A named pool as warmup knows it."""

    name: str
    is_default: bool
    ip_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Overflow:
    pool: str
    reason: OverflowReason

    def as_data(self) -> dict[str, str]:
        return {"pool": self.pool, "reason": self.reason}


def choose_overflow(ip_id: str, pools: Sequence[KnownPool], active: Collection[str]) -> Overflow:
    """The overflow pool of `ip_id`. `pools` are its account's named pools in creation order;
    `active` the ids of the account's IPs whose status is `active`."""

    def takes_overflow(pool: KnownPool) -> bool:
        return any(other != ip_id and other in active for other in pool.ip_ids)

    named = [p for p in pools if p.name not in DYNAMIC_POOLS]
    for pool in named:
        if ip_id in pool.ip_ids and takes_overflow(pool):
            return Overflow(pool.name, "own_pool")
    for pool in named:
        if pool.is_default and takes_overflow(pool):
            return Overflow(pool.name, "default_pool")
    return Overflow(SHARED, "shared")
