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

from services.warmup.domain.reputation import NEUTRAL, reputation_score
from services.warmup.domain.send_counts import OUTCOMES, OutcomeCounts
from services.warmup.domain.view import with_counts
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
    """The whole view from a `views` row: a stored warm-up part with its running counts put
    back as counted now (a row stored before they were left out has them already)."""
    warmup = row["warmup"]
    if isinstance(warmup, str):
        warmup = json.loads(warmup)
    score = row["reputation_score"]
    if warmup is not None and row.get("counted_on") is not None:
        warmup = with_counts(warmup, int(row["sent_on"] or 0))
        score = reputation_score(OutcomeCounts(*(int(row[outcome] or 0) for outcome in OUTCOMES)))
    return IpView(
        ip_id=row["ip_id"],
        account_id=row["account_id"],
        address=row["address"],
        region=row["region"],
        status=merged_status(row["registry_status"], row["warmup_status"]),
        pool=row["pool"],
        rdns=row["rdns"],
        warmup=WarmupView.model_validate(warmup or {}),
        reputation_score=score if score is not None else NEUTRAL,
    )
