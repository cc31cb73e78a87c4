"""The IP's whole view, as every `ip.state_changed` event carries it, from warmup's own rows.

The registry's part (identity, address, pool, rDNS, the provisioning / cooldown / released
statuses) is warmup's copy of the provisioner's lifecycle events on `ip.provisioned`; the
warm-up and the reputation score are warmup's own. The status on the wire merges both: the
registry's end-of-life statuses win, then the warm-up's.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shared.contract.events import IpView, WarmupView

_FROM_WARMUP = {
    "warming": "warming",
    "suspended": "suspended",
    "completed": "active",
    "skipped": "active",
    "stopped": "active",
}


def merged_status(registry_status: str, warmup_status: str | None) -> str:
    if registry_status in ("cooldown", "released"):
        return registry_status
    return _FROM_WARMUP.get(warmup_status or "", registry_status)


def view_from_row(row: asyncpg.Record | dict[str, Any]) -> IpView:
    warmup = row["warmup"]
    if isinstance(warmup, str):
        warmup = json.loads(warmup)
    return IpView(
        ip_id=row["ip_id"],
        account_id=row["account_id"],
        address=row["address"],
        region=row["region"],
        status=merged_status(row["registry_status"], row["warmup_status"]),  # type: ignore[arg-type]
        pool=row["pool"],
        rdns=row["rdns"],
        warmup=WarmupView.model_validate(warmup or {}),
        reputation_score=row["reputation_score"] if row["reputation_score"] is not None else 50,
    )
