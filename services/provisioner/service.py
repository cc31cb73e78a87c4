"""The provisioner: allocates dedicated IPs on request and releases them through a cooldown."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import asyncpg
import structlog

from services.provisioner import handlers, store
from services.provisioner.settings import ProvisionerSettings
from shared.command_results import answer_invalid_command
from shared.consumer import Consumer, by_type
from shared.contract import topics
from shared.contract.envelope import CloudEvent
from shared.contract.events import COMMANDS, REGISTRY_TYPES, IpRequested, IpRequestRejected
from shared.messages import Emit, Rejected
from shared.runtime import Service, Sweep
from shared.settings import Settings

log = structlog.get_logger(__name__)
NAME = "provisioner"
OWN_COMMANDS = ("ip.release", "ip.update")

# The ip.requested subscription's own fetch wait; the fleet-wide default (100 ms) stays for
# the others. A request waits for its fetch: on Kafka a fetch returns as soon as a record
# arrives, so a shorter wait costs only more empty fetches from an idle consumer (50/s
# instead of 10/s, one subscription per replica); Tansu polls its log at halving intervals
# within the wait, so the wait bounds the delay. Measured on a durable Postgres
# (bench/RESULTS.md, 2026-12-02), alternated: p99 at 100 requests/s 80.7 ms with 100 ms,
# 36.3 and 40.2 ms with 20 ms; the highest rate with p99 under 250 ms stayed 600/s.
REQUEST_FETCH_MAX_WAIT_MS = 20


def answer_invalid_request(event: CloudEvent, rejected: Rejected) -> Sequence[Emit]:
    """An `ip.requested` whose data fails validation is dead-lettered, and the account (when
    it can be read) is told why with `invalid_request`."""
    account_id = event.data.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        return []
    return [
        Emit(
            topics.IP_REQUEST_REJECTED,
            key=account_id,
            type="ip.request_rejected",
            data=IpRequestRejected(
                account_id=account_id, reason="invalid_request", message=rejected.message
            ),
        )
    ]


def build(settings: Settings, own: ProvisionerSettings) -> Service:
    """The provisioner, on the fleet's `settings` and its `own`."""

    async def load_inventory(pool: asyncpg.Pool, _: Settings) -> None:
        async with pool.acquire() as conn:
            for region, network in own.inventory_ranges():
                added = await store.add_range(conn, network, region)
                if added:
                    log.info("inventory loaded", region=region, range=str(network), added=added)

    return Service(
        name=NAME,
        consumers=[
            Consumer(
                service=NAME,
                topic=topics.IP_REQUESTED,
                types={"ip.requested": IpRequested},
                handle=partial(handlers.on_ip_requested, settings=own),
                answer_invalid=answer_invalid_request,
                fetch_max_wait_ms=REQUEST_FETCH_MAX_WAIT_MS,
            ),
            Consumer(
                service=NAME,
                topic=topics.IP_COMMANDS,
                types={name: COMMANDS[name] for name in OWN_COMMANDS},
                others=frozenset(COMMANDS) - set(OWN_COMMANDS),
                handle=by_type(
                    {
                        "ip.release": partial(handlers.on_ip_release, settings=own),
                        "ip.update": partial(handlers.on_ip_update, settings=own),
                    }
                ),
                answer_invalid=answer_invalid_command,
            ),
        ],
        sweeps=[
            Sweep(
                "release-after-cooldown",
                partial(handlers.release_due, lateness=own.cooldown_lateness),
            )
        ],
        publishes=[
            (topics.IP_PROVISIONED, list(REGISTRY_TYPES)),
            (topics.IP_REQUEST_REJECTED, ["ip.request_rejected"]),
            (topics.IP_COMMAND_RESULTS, ["command.accepted", "command.rejected"]),
        ],
        on_start=load_inventory,
    )
