"""The warmup service: raises each new IP's sending limits along a schedule, counting every
send, holding or suspending the warm-up when bounces or complaints rise (docs/warmup.md)."""

from __future__ import annotations

from functools import partial

from services.warmup import handlers
from services.warmup.handlers import NAME, WarmupConfig
from services.warmup.settings import WarmupSettings
from shared.command_results import answer_invalid_command
from shared.consumer import Consumer, by_type
from shared.contract import topics
from shared.contract.events import (
    COMMANDS,
    IP_STATE_TYPES,
    POOL_STATE_TYPES,
    REGISTRY_DATA,
    PoolChanged,
    SendRecorded,
)
from shared.contract.sends import decode_send
from shared.runtime import Service, Sweep
from shared.settings import Settings
from shared.sql import load_statements

# The send.recorded subscription's own batch size; the fleet-wide default (500) stays for the
# quiet topics. Measured on a durable Postgres (bench/RESULTS.md, 2026-12-02): 200k sends went
# 13.9k/s at 500, 18.3k/s at 2,000, 22.2k/s at 10,000 (one transaction per batch; the
# overlapped inbox claim starts at 2,000); a 200 ms batch timeout made no difference.
SEND_BATCH_MAX_RECORDS = 10_000

OWN_COMMANDS = ("ip.warmup.start", "ip.warmup.stop", "ip.warmup.resume")
# Warmup is the single writer of `ip.state_changed`: every type of it, each with the IP's
# whole view (the registry's lifecycle it learns from the provisioner's `ip.provisioned`
# topic among them).
EMITS = IP_STATE_TYPES


def config_from(warmup: WarmupSettings) -> WarmupConfig:
    """Schedules and rules, loaded and validated once: a bad schedule file or rule override
    stops the service at start, naming the fault."""
    rules = warmup.rules()
    return WarmupConfig(
        schedules=warmup.schedules(rules),
        rules=rules,
        lateness=warmup.lateness,
        sweep_lateness=warmup.sweep_lateness,
        sweep_batch=warmup.sweep_batch,
    )


def build(settings: Settings, warmup: WarmupSettings | None = None) -> Service:
    """The warmup service. Its own settings (`IPFLEET_WARMUP_*`) come from the environment
    unless given."""
    warmup = warmup if warmup is not None else WarmupSettings()
    config = config_from(warmup)
    commands = {
        "ip.warmup.start": partial(handlers.on_warmup_start, config=config),
        "ip.warmup.stop": partial(handlers.on_warmup_stop, config=config),
        "ip.warmup.resume": partial(handlers.on_warmup_resume, config=config),
    }
    return Service(
        name=NAME,
        consumers=[
            # First: subscribers start one after another, each joining its group, and this
            # is the one with a backlog after a restart.
            Consumer(
                service=NAME,
                topic=topics.SEND_RECORDED,
                types={"send.recorded": SendRecorded},
                handle_batch=partial(handlers.on_sends, config=config),
                # Deduplicated by event id in a day-partitioned inbox dropped in bulk after
                # the retention window; older sends are dead-lettered (OutsideRetention).
                inbox="daily",
                retention_days=warmup.dedup_retention_days,
                batch_max_records=SEND_BATCH_MAX_RECORDS,
                # The common shape of a send, decoded without pydantic's full pass.
                fast_decode=decode_send,
                digest=handlers.SendsRead,
            ),
            Consumer(
                service=NAME,
                topic=topics.IP_PROVISIONED,
                types=REGISTRY_DATA,
                handle=by_type(
                    {
                        "ip.provisioned": partial(handlers.on_ip_provisioned, config=config),
                        "ip.updated": partial(handlers.on_ip_updated, config=config),
                        "ip.cooldown_started": partial(handlers.on_ip_stopped, config=config),
                        "ip.released": partial(handlers.on_ip_stopped, config=config),
                    }
                ),
            ),
            Consumer(
                service=NAME,
                topic=topics.IP_COMMANDS,
                types={name: COMMANDS[name] for name in OWN_COMMANDS},
                others=frozenset(COMMANDS) - set(OWN_COMMANDS),
                handle=by_type(commands),
                answer_invalid=answer_invalid_command,
            ),
            # Warmup's own copy of the named pools, for the overflow of limit events.
            Consumer(
                service=NAME,
                topic=topics.POOL_STATE_CHANGED,
                types=dict.fromkeys(POOL_STATE_TYPES, PoolChanged),
                others=frozenset({"dynamic_pools.configured"}),
                handle=handlers.on_pool_changed,
            ),
        ],
        sweeps=[Sweep("close-days", partial(handlers.close_days, config=config))],
        gauges=load_statements("services.warmup", "metrics.sql"),
        publishes=[
            (topics.IP_STATE_CHANGED, list(EMITS)),
            (topics.IP_COMMAND_RESULTS, ["command.accepted", "command.rejected"]),
        ],
    )
