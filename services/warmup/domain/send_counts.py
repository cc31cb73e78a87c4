"""Counting sends: per IP, UTC day, UTC hour and outcome.

`tally` turns a batch of (already deduplicated) sends into counter increments; adding
increments is commutative and associative, so any order and any batch split give the same
counters. `SendCounters` is one IP's counters as the rules read them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from services.warmup.domain.event_time import HOUR, as_utc, day_start, hour_of, hour_start

Outcome = Literal["delivered", "deferred", "bounced", "complained", "dropped"]
OUTCOMES: tuple[Outcome, ...] = ("delivered", "deferred", "bounced", "complained", "dropped")
_DAY_LONG = timedelta(days=1)

# (ip address, UTC date, UTC hour 0..23, outcome): the natural key of a counter row.
TallyKey = tuple[str, date, int, Outcome]


@dataclass(frozen=True, slots=True)
class Send:
    """One `send.recorded` event as counting sees it."""

    ip: str
    occurred_at: datetime
    outcome: Outcome


def tally(sends: Iterable[Send]) -> dict[TallyKey, int]:
    """Count sends by (ip, UTC date, UTC hour, outcome).

    The input must already be deduplicated by event id; the result is an increment to add
    to the stored counters (see `merge_tallies`).
    """
    counts: Counter[TallyKey] = Counter()
    for send in sends:
        count_send(counts, send.ip, send.occurred_at, send.outcome)
    return dict(counts)


def count_send(counts: Counter[TallyKey], ip: str, occurred_at: datetime, outcome: str) -> None:
    """Add one send to a tally in the making: the step `tally` takes for each send."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    counts[(ip, *utc_hour(occurred_at), outcome)] += 1


def utc_hour(occurred_at: datetime) -> tuple[date, int]:
    """The UTC day and hour (0..23) that hold `occurred_at`, as the tally keys them."""
    offset = occurred_at.utcoffset()
    # At a zero offset the date and hour read off the time are already UTC's (most event
    # times are written with `Z`); anything else, naive included, goes through as_utc.
    at = occurred_at if offset is not None and not offset else as_utc(occurred_at)
    return at.date(), at.hour


def merge_tallies(*tallies: Mapping[TallyKey, int]) -> dict[TallyKey, int]:
    """Add tallies together, as the counter store does with `+=` upserts."""
    total: Counter[TallyKey] = Counter()
    for one in tallies:
        total.update(one)
    return dict(total)


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """How many sends ended in each outcome, over some window."""

    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    complained: int = 0
    dropped: int = 0

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> OutcomeCounts:
        unknown = set(counts) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)}")
        return cls(**{name: int(counts.get(name, 0)) for name in OUTCOMES})

    def __add__(self, other: OutcomeCounts) -> OutcomeCounts:
        # Spelled out: the rules add counts hour by hour, and fields() per addition showed.
        return OutcomeCounts(
            self.delivered + other.delivered,
            self.deferred + other.deferred,
            self.bounced + other.bounced,
            self.complained + other.complained,
            self.dropped + other.dropped,
        )

    def minus(self, other: OutcomeCounts) -> OutcomeCounts:
        """What a running total gained since `other`, an earlier running total."""
        return OutcomeCounts(
            self.delivered - other.delivered,
            self.deferred - other.deferred,
            self.bounced - other.bounced,
            self.complained - other.complained,
            self.dropped - other.dropped,
        )

    @property
    def sent(self) -> int:
        """Messages that left the IP: every outcome but `dropped`, which never reached a
        mailbox provider. This is what daily and hourly limits count."""
        return self.delivered + self.deferred + self.bounced + self.complained

    @property
    def accepted(self) -> int:
        """Messages a mailbox provider accepted: `complained` mail was delivered first."""
        return self.delivered + self.complained

    @property
    def bounce_rate(self) -> float:
        """Bounces over sent messages (0 when nothing was sent)."""
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        """Complaints over accepted messages, as Gmail measures spam rate (0 with no data)."""
        return self.complained / self.accepted if self.accepted else 0.0


ZERO = OutcomeCounts()


class SendCounters:
    """One IP's counters, keyed by the start of each UTC hour.

    Built from a tally (`from_tally`) or from stored rows (`from_rows`). Immutable: `merge`
    returns a new value. Hours with no sends are simply absent.
    """

    __slots__ = ("_by_hour", "_days", "_hours", "_sending")

    def __init__(self, hours: Mapping[datetime, OutcomeCounts] | None = None) -> None:
        # Running totals of each UTC day asked about, hour by hour (see `_running`).
        self._days: dict[date, list[OutcomeCounts]] = {}
        self._by_hour: dict[date, list[OutcomeCounts]] = {}  # each day's 24 hours
        self._sending: list[datetime] | None = None  # hours with sends, sorted, once asked
        self._hours: dict[datetime, OutcomeCounts] = {}
        for start, counts in (hours or {}).items():
            key = hour_start(start)
            seen = self._hours.get(key)
            # Counts are frozen: an hour seen once keeps the given value, no addition.
            self._hours[key] = counts if seen is None else seen + counts

    @classmethod
    def of_hours(cls, hours: dict[datetime, OutcomeCounts]) -> SendCounters:
        """From counts keyed by hour starts already in UTC (`hour_of`), each hour once, as
        the counter table's rows and a tally give them: taken as they are, not re-keyed.
        The dict is kept; the caller hands it over."""
        counters = cls()
        counters._hours = hours
        return counters

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[date, int, str, int]]) -> SendCounters:
        """From (UTC date, hour, outcome, count) rows, e.g. a `SELECT` of the counter table."""
        per_hour: dict[datetime, Counter[str]] = {}
        for day, hour, outcome, count in rows:
            per_hour.setdefault(hour_of(day, hour), Counter())[outcome] += count
        return cls({start: OutcomeCounts.of(c) for start, c in per_hour.items()})

    @classmethod
    def from_tally(cls, counts: Mapping[TallyKey, int], ip: str) -> SendCounters:
        """The counters of one IP out of a tally of many."""
        return cls.from_rows(
            (day, hour, outcome, n)
            for (addr, day, hour, outcome), n in counts.items()
            if addr == ip
        )

    def merge(self, other: SendCounters) -> SendCounters:
        merged = dict(self._hours)
        for start, counts in other._hours.items():
            merged[start] = merged.get(start, ZERO) + counts
        return SendCounters(merged)

    def hour(self, start: datetime) -> OutcomeCounts:
        """The counts of the UTC hour that contains `start`."""
        return self._hours.get(hour_start(start), ZERO)

    def between(self, start: datetime, end: datetime) -> OutcomeCounts:
        """Total over whole hours in [start, end)."""
        first, stop = hour_start(start), as_utc(end)
        if first < stop and stop - day_start(first.date()) <= _DAY_LONG:
            # Within one UTC day (the complaint-spike check, at every hour with sends): the
            # difference of the day's running totals, not a walk over every hour.
            running = self._running(first.date())
            hours = -((day_start(first.date()) - stop) // HOUR)  # hours begun before `stop`
            return running[hours].minus(running[first.hour])
        total = ZERO
        for at, counts in self._hours.items():
            if first <= at < stop:
                total = total + counts
        return total

    def day(self, day: date) -> OutcomeCounts:
        """Total over one UTC day."""
        return self._running(day)[24]

    def day_before(self, cut: datetime) -> OutcomeCounts:
        """Total of the UTC day of `cut` over its whole hours before `cut`'s hour."""
        start = hour_start(cut)
        return self._running(start.date())[start.hour]

    def day_through(self, hour: datetime) -> OutcomeCounts:
        """Total of the UTC day of `hour` up to and including that hour."""
        start = hour_start(hour)
        return self._running(start.date())[start.hour + 1]

    def day_hours(self, day: date) -> list[OutcomeCounts]:
        """The 24 hours of one UTC day, hour 0 first (do not modify: it is kept)."""
        per_hour = self._by_hour.get(day)
        if per_hour is None:
            per_hour = [ZERO] * 24
            for at, counts in self._hours.items():
                if at.date() == day:
                    per_hour[at.hour] = counts
            self._by_hour[day] = per_hour
        return per_hour

    def _running(self, day: date) -> list[OutcomeCounts]:
        """[total before hour 0, before hour 1, ..., the whole day]: built once per day, as
        the rules ask about the same day over and over (every hour closed, every event)."""
        running = self._days.get(day)
        if running is None:
            per_hour = self.day_hours(day)
            running = [ZERO]
            for counts in per_hour:
                running.append(running[-1] + counts if counts is not ZERO else running[-1])
            self._days[day] = running
        return running

    def dates(self, first: date, last: date) -> OutcomeCounts:
        """Total over the UTC days first..last, both included."""
        total = ZERO
        for at, counts in self._hours.items():
            if first <= at.date() <= last:
                total = total + counts
        return total

    def next_hour_with_sends(self, after: datetime) -> datetime | None:
        """The earliest hour at or after `after` in which the IP sent something."""
        sending = self._hours_with_sends()
        i = bisect_left(sending, hour_start(after))
        return sending[i] if i < len(sending) else None

    def last_hour_with_sends_before(self, before: datetime) -> datetime | None:
        """The latest hour before the hour of `before` in which the IP sent something."""
        sending = self._hours_with_sends()
        i = bisect_left(sending, hour_start(before))
        return sending[i - 1] if i else None

    def _hours_with_sends(self) -> list[datetime]:
        sending = self._sending
        if sending is None:
            sending = self._sending = sorted(at for at, c in self._hours.items() if c.sent > 0)
        return sending

    def __iter__(self) -> Iterator[tuple[datetime, OutcomeCounts]]:
        return iter(sorted(self._hours.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SendCounters):
            return NotImplemented
        strip = {k: v for k, v in self._hours.items() if v != ZERO}
        return strip == {k: v for k, v in other._hours.items() if v != ZERO}

    def __hash__(self) -> int:
        return hash(frozenset((k, v) for k, v in self._hours.items() if v != ZERO))

    def __repr__(self) -> str:
        return f"SendCounters({len(self._hours)} hours)"


__all__ = [
    "OUTCOMES",
    "ZERO",
    "Outcome",
    "OutcomeCounts",
    "Send",
    "SendCounters",
    "TallyKey",
    "count_send",
    "merge_tallies",
    "tally",
]
