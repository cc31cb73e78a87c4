"""Typed `data` of every event type in the wire contract.

Field lists are the contract's minimum; extra fields we add are documented here. Input
models forbid nothing extra (producers may add fields), output models are what we emit.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

Plan = Literal["free", "pro", "max", "enterprise"]
Region = Literal["global", "eu"]
Outcome = Literal["delivered", "deferred", "bounced", "complained", "dropped"]
IpStatus = Literal["provisioning", "warming", "active", "suspended", "cooldown", "released"]
RejectReason = Literal["quota_exceeded", "no_capacity", "plan_not_eligible", "invalid_request"]
InitiatedBy = Literal["system", "override", "operator"]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+\.?$"
)


# Both normalisers are pure and see the same few values over and over (a platform's sending
# IPs and domains): memoised, they cost a dict lookup instead of a parse per event.
@lru_cache(maxsize=16384)
def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a valid hostname")
    return value.lower().rstrip(".")


@lru_cache(maxsize=16384)
def _ip_address(value: str) -> str:
    return str(ipaddress.ip_address(value))


AccountId = Annotated[str, Field(min_length=1, max_length=128)]
PoolName = Annotated[str, Field(min_length=1, max_length=64)]
Hostname = Annotated[
    str, AfterValidator(_hostname), WithJsonSchema({"type": "string", "format": "hostname"})
]
IpAddress = Annotated[
    str,
    AfterValidator(_ip_address),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class AccountScoped(EventData):
    account_id: AccountId


# ---- inputs ---------------------------------------------------------------------------------


class IpRequested(AccountScoped):
    plan: Plan
    region: Region = "global"
    pool: PoolName | None = None
    rdns: Hostname | None = None
    auto_warmup: bool = True
    warmup_schedule: str | None = Field(default=None, min_length=1, max_length=64)


class SendRecorded(AccountScoped):
    ip: IpAddress
    domain: Hostname
    outcome: Outcome
    message_id: str | None = None


class DomainHealthChecked(AccountScoped):
    domain: Hostname
    bounce_rate: Rate
    complaint_rate: Rate
    processed_count: int = Field(ge=0)


# ---- commands (ip.commands) -------------------------------------------------------------------


class IpRelease(AccountScoped):
    ip_id: str = Field(min_length=1)


class IpUpdate(AccountScoped):
    ip_id: str = Field(min_length=1)
    pool: PoolName | None = None
    rdns: Hostname | None = None


class IpWarmupStart(AccountScoped):
    ip_id: str = Field(min_length=1)
    schedule: str | None = Field(default=None, min_length=1, max_length=64)


class IpWarmupStop(AccountScoped):
    """The IP becomes `active` at once, at full volume (an operator's choice)."""

    ip_id: str = Field(min_length=1)


class IpWarmupResume(AccountScoped):
    """A suspended warm-up resumes now, one day back, instead of waiting for the automatic
    resume."""

    ip_id: str = Field(min_length=1)


class PoolCreate(AccountScoped):
    name: PoolName
    is_default: bool = False


class PoolRename(AccountScoped):
    name: PoolName
    new_name: PoolName


class PoolDelete(AccountScoped):
    name: PoolName


class PoolIpMembership(AccountScoped):
    name: PoolName
    ip_id: str = Field(min_length=1)


class DynamicPoolThresholdsIn(EventData):
    bounce_good: Rate | None = None
    bounce_poor: Rate | None = None
    complaint_good: Rate | None = None
    complaint_poor: Rate | None = None
    min_processed_count: int | None = Field(default=None, ge=0)
    good_checks_to_leave_poor: int | None = Field(default=None, ge=1)


class DynamicPoolsConfigure(AccountScoped):
    enabled: bool
    thresholds: DynamicPoolThresholdsIn | None = None
    # Required, as in the contract: an empty list says "no IPs" on purpose.
    good_reputation: list[str]
    poor_reputation: list[str]
    new_senders: list[str]


class DomainEnroll(AccountScoped):
    domain: Hostname


class DomainUnenroll(AccountScoped):
    domain: Hostname
    replacement_pool: PoolName | None = None


class DomainOverrideSet(AccountScoped):
    domain: Hostname
    pool: PoolName


class DomainOverrideClear(AccountScoped):
    domain: Hostname


class DomainEvaluate(AccountScoped):
    domain: Hostname
    bounce_rate: Rate
    complaint_rate: Rate
    processed_count: int = Field(ge=0)


COMMANDS: dict[str, type[AccountScoped]] = {
    "ip.release": IpRelease,
    "ip.update": IpUpdate,
    "ip.warmup.start": IpWarmupStart,
    "ip.warmup.stop": IpWarmupStop,
    "ip.warmup.resume": IpWarmupResume,
    "pool.create": PoolCreate,
    "pool.rename": PoolRename,
    "pool.delete": PoolDelete,
    "pool.add_ip": PoolIpMembership,
    "pool.remove_ip": PoolIpMembership,
    "dynamic_pools.configure": DynamicPoolsConfigure,
    "domain.enroll": DomainEnroll,
    "domain.unenroll": DomainUnenroll,
    "domain.override.set": DomainOverrideSet,
    "domain.override.clear": DomainOverrideClear,
    "domain.evaluate": DomainEvaluate,
}

# ---- outputs ----------------------------------------------------------------------------------


class IpRegistryChanged(AccountScoped):
    """`data` of the registry's lifecycle on the `ip.provisioned` topic (`ip.updated`,
    `ip.cooldown_started`, `ip.released`): the registry's fields, written by the provisioner
    alone. Other services keep their own copy of what they need from it."""

    ip_id: str
    address: str
    region: Region
    pool: str | None
    rdns: str | None
    status: IpStatus


class IpProvisioned(IpRegistryChanged):
    """`data` of `ip.provisioned`, the first event of an IP's registry lifecycle."""

    # Beyond the contract minimum: what warmup needs to start the warm-up on its own.
    auto_warmup: bool = True
    warmup_schedule: str | None = None


class IpRequestRejected(AccountScoped):
    reason: RejectReason
    message: str


class WarmupDay(EventData):
    day: int
    limit: int
    sent: int
    done: bool


WarmupStatus = Literal["not_started", "warming", "suspended", "completed", "skipped", "stopped"]


class WarmupView(EventData):
    # `completed`, `skipped` (requested with `auto_warmup: false`) and `stopped`
    # (`ip.warmup.stop`) are the warm-up statuses of an `active` IP.
    status: WarmupStatus = "not_started"
    schedule: str | None = None
    mode: Literal["earned", "calendar"] | None = None
    day: int | None = None
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    daily_limit: int = -1
    hourly_limit: int = -1
    sent_today: int = 0
    started_at: AwareDatetime | None = None
    hold_reason: str | None = None
    days: list[WarmupDay] = Field(default_factory=list)


class IpView(AccountScoped):
    """`data` of every `ip.state_changed` event: the IP's whole current view."""

    ip_id: str
    address: str
    region: Region
    status: IpStatus
    pool: str | None
    rdns: str | None
    warmup: WarmupView
    reputation_score: int = Field(ge=0, le=100)


OverflowReason = Literal["own_pool", "default_pool", "shared"]


class Overflow(EventData):
    """Where a sender puts what exceeds an IP's limit: a named pool of the account holding an
    `active` IP other than this one (`own_pool`: one this IP is in; `default_pool`), else the
    platform's `shared` IPs."""

    pool: str
    reason: OverflowReason


class IpLimitView(IpView):
    """`data` of `ip.daily_limit_reached` / `ip.hourly_limit_reached`: the whole view, and
    where the overflow goes."""

    overflow: Overflow


class PoolChanged(AccountScoped):
    """`data` of `pool.*` events on `pool.state_changed`."""

    name: str
    previous_name: str | None = None
    is_default: bool = False
    ip_ids: list[str] = Field(default_factory=list)
    ip_id: str | None = None


class DynamicPoolsConfigured(AccountScoped):
    enabled: bool
    thresholds: dict[str, Any]
    good_reputation: list[str]
    poor_reputation: list[str]
    new_senders: list[str]


class DomainPoolChanged(AccountScoped):
    domain: str
    prev_pool: str | None
    new_pool: str | None
    reason: str
    bounce_rate: float | None
    complaint_rate: float | None
    processed_count: int | None
    initiated_by: InitiatedBy


class CommandAccepted(AccountScoped):
    command_id: str
    command_type: str


class CommandRejected(AccountScoped):
    command_id: str
    command_type: str
    reason: str
    message: str


class DomainEvaluated(AccountScoped):
    command_id: str
    domain: str
    pool: str
    metrics: dict[str, Any]


# The registry's lifecycle, on the `ip.provisioned` topic (provisioner), in order.
REGISTRY_TYPES = ("ip.provisioned", "ip.updated", "ip.cooldown_started", "ip.released")
REGISTRY_DATA: dict[str, type[IpRegistryChanged]] = {
    "ip.provisioned": IpProvisioned,
    **dict.fromkeys(REGISTRY_TYPES[1:], IpRegistryChanged),
}
IP_STATE_TYPES = (
    "ip.registered",
    "ip.warmup_started",
    "ip.warmup_advanced",
    "ip.warmup_held",
    "ip.daily_limit_reached",
    "ip.hourly_limit_reached",
    "ip.warmed",
    "ip.warmup_stopped",
    "ip.suspended",
    "ip.resumed",
    "ip.updated",
    "ip.cooldown_started",
    "ip.released",
)
LIMIT_TYPES = ("ip.daily_limit_reached", "ip.hourly_limit_reached")
POOL_STATE_TYPES = (
    "pool.created",
    "pool.renamed",
    "pool.deleted",
    "pool.ip_added",
    "pool.ip_removed",
)

# Every event type on the wire and the model of its `data`, for validation and schemas/.
EVENT_DATA: dict[str, type[EventData]] = {
    "ip.requested": IpRequested,
    "send.recorded": SendRecorded,
    "domain.health_checked": DomainHealthChecked,
    **COMMANDS,
    "ip.provisioned": IpProvisioned,
    "ip.request_rejected": IpRequestRejected,
    **{t: IpView for t in IP_STATE_TYPES},
    **dict.fromkeys(LIMIT_TYPES, IpLimitView),
    **{t: PoolChanged for t in POOL_STATE_TYPES},
    "dynamic_pools.configured": DynamicPoolsConfigured,
    "domain.pool_changed": DomainPoolChanged,
    "command.accepted": CommandAccepted,
    "command.rejected": CommandRejected,
    "domain.evaluated": DomainEvaluated,
}

# Types whose `data` on one topic differs from EVENT_DATA's (the registry's lifecycle on
# `ip.provisioned` shares its type names with the IP's full view on `ip.state_changed`).
TOPIC_DATA: dict[str, dict[str, type[EventData]]] = {"ip.provisioned": dict(REGISTRY_DATA)}


def data_model(topic: str, event_type: str) -> type[EventData]:
    """The model of `data` of `event_type` events on `topic`."""
    return TOPIC_DATA.get(topic, {}).get(event_type) or EVENT_DATA[event_type]


def message_name(topic: str, event_type: str) -> str:
    """A name for `event_type` on `topic` that is unique across topics: the type itself,
    or `type@topic` where the topic gives the type another `data`."""
    if data_model(topic, event_type) is EVENT_DATA[event_type]:
        return event_type
    return f"{event_type}@{topic}"


def split_message_name(name: str) -> tuple[str, str | None]:
    """(event type, topic or None) of a `message_name`."""
    event_type, _, topic = name.partition("@")
    return event_type, topic or None


def message_data(name: str) -> type[EventData]:
    event_type, topic = split_message_name(name)
    return data_model(topic, event_type) if topic is not None else EVENT_DATA[event_type]


# Every message name: each type, and each type that a topic carries with another `data`.
MESSAGE_NAMES = (
    *EVENT_DATA,
    *(message_name(topic, t) for topic, types in TOPIC_DATA.items() for t in types),
)
