"""Whose send is it: attributing a batch of `send.recorded` events to the IPs they name.

A send names an address and an account. It counts against the IP holding that address when
the account owns the IP; a send on an address no IP of ours holds is counted as unknown (and
reported); a send naming another account's IP is refused (the pipeline dead-letters it).
The sends to count come out already tallied by (IP id, UTC day, UTC hour, outcome), and
each IP's sends in the order they were read, put in their UTC hours (as the search for the
send that crossed a threshold takes them): the batch is walked once.

`attribute` does it in one go. `BatchTally` does the same in two steps: the walk, which
needs no database and can take a large batch part by part while the inbox claims the next
part (`add`), then the attribution to the IPs once they are locked (`attribute`), which
touches each address once, not each send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from services.warmup.domain.crossings import BatchSend
from services.warmup.domain.event_time import as_utc, hour_of
from services.warmup.domain.send_counts import OUTCOMES, TallyKey, utc_hour

# (event id, account_id, address, event time, outcome) of one deduplicated `send.recorded`.
RecordedSend = tuple[str, str, str, datetime, str]


@dataclass(frozen=True, slots=True)
class Owner:
    """The IP holding an address, and the account that owns it."""

    ip_id: str
    account_id: str


@dataclass(slots=True)
class UnknownSends:
    """Sends on one address no IP of ours holds, over one UTC day."""

    n: int
    first_seen: datetime
    last_seen: datetime


@dataclass(slots=True)
class Attribution:
    # The sends to count, tallied by (IP id, UTC day, UTC hour, outcome).
    counted: Counter[TallyKey] = field(default_factory=Counter)
    # Per IP id, the position in the batch of its latest send (by event time): the input
    # named as the cause of what the batch decides for that IP.
    latest: dict[str, int] = field(default_factory=dict)
    # Per IP id, its counted sends in the order read, each with the start of its UTC hour
    # for its time, the dropped ones (which never count) left out: `crossings.in_hours`.
    sends: dict[str, list[BatchSend]] = field(default_factory=dict)
    unknown: dict[tuple[str, date], UnknownSends] = field(default_factory=dict)
    # Positions of sends that name another account's IP.
    foreign: list[int] = field(default_factory=list)


def attribute(sends: Iterable[RecordedSend], owners: Mapping[str, Owner]) -> Attribution:
    """Split a batch into sends to count (tallied per IP), unknown sends (per address and
    UTC day) and sends naming another account's IP. `owners` maps each address to its IP."""
    result = Attribution()
    counted, latest, by_ip = result.counted, result.latest, result.sends
    latest_at: dict[str, datetime] = {}
    hours: dict[tuple[date, int], datetime] = {}
    for position, (event_id, account_id, address, occurred_at, outcome) in enumerate(sends):
        owner = owners.get(address)
        if owner is None:
            _unknown(result.unknown, address, occurred_at)
        elif owner.account_id != account_id:
            result.foreign.append(position)
        else:
            ip_id = owner.ip_id
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r}")
            bucket = utc_hour(occurred_at)
            counted[(ip_id, *bucket, outcome)] += 1
            if outcome != "dropped":
                hour = hours.get(bucket)
                if hour is None:
                    hour = hours[bucket] = hour_of(*bucket)
                ip_sends = by_ip.get(ip_id)
                if ip_sends is None:
                    ip_sends = by_ip[ip_id] = []
                ip_sends.append((event_id, hour, outcome))
            if ip_id not in latest_at or occurred_at >= latest_at[ip_id]:
                latest_at[ip_id] = occurred_at
                latest[ip_id] = position
    return result


def _unknown(unknown: dict[tuple[str, date], UnknownSends], address: str, at: datetime) -> None:
    at = as_utc(at)
    key = (address, at.date())
    seen = unknown.get(key)
    if seen is None:
        unknown[key] = UnknownSends(1, at, at)
    else:
        seen.n += 1
        seen.first_seen = min(seen.first_seen, at)
        seen.last_seen = max(seen.last_seen, at)


@dataclass(slots=True)
class _Sender:
    """The sends of one (address, account) in a batch, walked once."""

    counted: Counter[tuple[date, int, str]]  # (UTC day, UTC hour, outcome)
    sends: list[BatchSend]  # dropped ones left out, as `Attribution.sends`
    latest_at: datetime
    latest: int  # position in the batch of its latest send (by event time, last read wins)


class BatchTally:
    """A batch's sends tallied per address and account they name, before it is known which
    IP holds each address: `add` the batch's parts in the order read, then `attribute`. The
    result equals `attribute(sends, owners)` over the whole batch."""

    __slots__ = ("_hours", "_read", "_senders")

    def __init__(self) -> None:
        self._senders: dict[tuple[str, str], _Sender] = {}
        self._hours: dict[tuple[date, int], datetime] = {}
        self._read = 0

    @property
    def addresses(self) -> set[str]:
        """Every address the sends added so far name."""
        return {address for address, _ in self._senders}

    def add(self, sends: Iterable[RecordedSend]) -> None:
        """Walk the next part of the batch (positions continue from the part before)."""
        senders, hours = self._senders, self._hours
        position = self._read
        for event_id, account_id, address, occurred_at, outcome in sends:
            sender = senders.get((address, account_id))
            if sender is None:
                sender = senders[(address, account_id)] = _Sender(
                    Counter(), [], occurred_at, position
                )
            elif occurred_at >= sender.latest_at:
                sender.latest_at = occurred_at
                sender.latest = position
            bucket = utc_hour(occurred_at)
            sender.counted[(*bucket, outcome)] += 1
            if outcome != "dropped":
                hour = hours.get(bucket)
                if hour is None:
                    hour = hours[bucket] = hour_of(*bucket)
                sender.sends.append((event_id, hour, outcome))
            position += 1
        self._read = position

    def attribute(
        self, owners: Mapping[str, Owner], sends: Callable[[], Iterable[RecordedSend]]
    ) -> Attribution:
        """The batch attributed to the IPs `owners` names. `sends` gives the batch again, in
        the order added: it is walked again only if some send is unknown or foreign (rare),
        as those are reported send by send."""
        result = Attribution()
        counted = result.counted
        elsewhere: set[tuple[str, str]] = set()
        for (address, account_id), sender in self._senders.items():
            owner = owners.get(address)
            if owner is None or owner.account_id != account_id:
                elsewhere.add((address, account_id))
                continue
            ip_id = owner.ip_id
            for (day, hour, outcome), n in sender.counted.items():
                if outcome not in OUTCOMES:
                    raise ValueError(f"unknown outcome {outcome!r}")
                counted[(ip_id, day, hour, outcome)] += n
            if sender.sends:
                result.sends[ip_id] = sender.sends
            result.latest[ip_id] = sender.latest
        if elsewhere:
            for position, (_, account_id, address, occurred_at, _) in enumerate(sends()):
                if (address, account_id) not in elsewhere:
                    continue
                if address in owners:
                    result.foreign.append(position)
                else:
                    _unknown(result.unknown, address, occurred_at)
        return result
