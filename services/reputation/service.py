"""The reputation service: named pools, dynamic pools, and sending domains' moves between them."""

from __future__ import annotations

from services.reputation import handlers
from services.reputation.settings import ReputationSettings
from shared.command_results import answer_invalid_command
from shared.consumer import Consumer, by_type
from shared.contract import topics
from shared.contract.events import (
    COMMANDS,
    IP_STATE_TYPES,
    POOL_STATE_TYPES,
    REGISTRY_TYPES,
    DomainHealthChecked,
    IpProvisioned,
    IpView,
)
from shared.runtime import Service
from shared.settings import Settings
from shared.sql import load_statements

NAME = "reputation"

COMMAND_HANDLERS = {
    "pool.create": handlers.on_pool_create,
    "pool.rename": handlers.on_pool_rename,
    "pool.delete": handlers.on_pool_delete,
    "pool.add_ip": handlers.on_pool_add_ip,
    "pool.remove_ip": handlers.on_pool_remove_ip,
    "dynamic_pools.configure": handlers.on_dynamic_pools_configure,
    "domain.enroll": handlers.on_domain_enroll,
    "domain.unenroll": handlers.on_domain_unenroll,
    "domain.override.set": handlers.on_domain_override_set,
    "domain.override.clear": handlers.on_domain_override_clear,
    "domain.evaluate": handlers.on_domain_evaluate,
}


def build(settings: Settings, own: ReputationSettings | None = None) -> Service:
    """The reputation service. It has no settings of its own beyond its database."""
    return Service(
        name=NAME,
        consumers=[
            Consumer(
                service=NAME,
                topic=topics.IP_COMMANDS,
                types={name: COMMANDS[name] for name in COMMAND_HANDLERS},
                others=frozenset(COMMANDS) - set(COMMAND_HANDLERS),
                handle=by_type(COMMAND_HANDLERS),
                answer_invalid=answer_invalid_command,
            ),
            Consumer(
                service=NAME,
                topic=topics.DOMAIN_HEALTH_CHECKED,
                types={"domain.health_checked": DomainHealthChecked},
                handle=handlers.on_health_checked,
            ),
            Consumer(
                service=NAME,
                topic=topics.IP_PROVISIONED,
                types={"ip.provisioned": IpProvisioned},
                # The registry's later changes reach this service with the IP's whole view,
                # on ip.state_changed.
                others=frozenset(REGISTRY_TYPES) - {"ip.provisioned"},
                handle=handlers.on_ip_provisioned,
            ),
            Consumer(
                service=NAME,
                topic=topics.IP_STATE_CHANGED,
                types=dict.fromkeys(IP_STATE_TYPES, IpView),
                handle=handlers.on_ip_state_changed,
            ),
        ],
        gauges=load_statements("services.reputation", "metrics.sql"),
        publishes=[
            (topics.POOL_STATE_CHANGED, [*POOL_STATE_TYPES, "dynamic_pools.configured"]),
            (topics.DOMAIN_POOL_CHANGED, ["domain.pool_changed"]),
            (
                topics.IP_COMMAND_RESULTS,
                ["command.accepted", "command.rejected", "domain.evaluated"],
            ),
        ],
    )
