"""The provisioner's rules, as pure functions: quotas, ids, cooldowns, what a status allows."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Literal

_IP_ID_NAMESPACE = uuid.UUID("0b6c1d1e-7f25-5c2a-8d43-3e5f6a7b8c9d")


def ip_id_for(request_id: str) -> str:
    """The id of the IP an `ip.requested` event provisions: the same on every replay."""
    return "ip_" + uuid.uuid5(_IP_ID_NAMESPACE, request_id).hex[:20]


def quota_refusal(plan: str, quotas: Mapping[str, int], live_ips: int) -> tuple[str, str] | None:
    """(reason, message) when the account may not get another IP, else None.

    IPs that are not released (provisioning, warming, active, suspended, cooldown) count.
    """
    allowed = quotas.get(plan, 0)
    if allowed <= 0:
        return "plan_not_eligible", f"the {plan} plan includes no dedicated IPs"
    if live_ips >= allowed:
        return (
            "quota_exceeded",
            f"the {plan} plan allows {allowed} dedicated IP(s) and the account holds {live_ips}",
        )
    return None


def cooldown_ends(released_at: datetime, cooldown: timedelta) -> datetime:
    return released_at + cooldown


def command_refusal(status: str, command: str) -> tuple[Literal["conflict"], str] | None:
    """Why an IP in `status` cannot take `command` (ip.release / ip.update), or None."""
    if status == "released":
        return "conflict", f"the IP is released; {command} does not apply"
    if status == "cooldown":
        return "conflict", f"the IP is in cooldown before release; {command} does not apply"
    return None


def usable_hosts(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, limit: int = 65536
) -> Iterator[str]:
    """Addresses of a range that can be handed out (no network/broadcast address)."""
    hosts = network.hosts() if network.num_addresses > 2 else iter(network)
    for count, address in enumerate(hosts):
        if count >= limit:
            raise ValueError(f"{network} has more than {limit} addresses; add it in smaller ranges")
        yield str(address)
