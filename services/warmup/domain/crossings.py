"""The send that crossed a threshold: the cause a limit event or a suspension names.

A limit is reached, or the complaint-spike check first holds, at one send: the one after which
the IP's count over the rule's window first met the threshold. The window is the rule's own:
the UTC day up to the end of the hour being judged (daily limit), that hour (hourly limit), or
the current phase of the day up to the end of that hour (complaint spike). Sends are read in
partition order, and an IP's sends all lie on one partition, so "the send after which" is the
same whatever the batching, the replicas, or how far the partition had been read when the rule
was judged: a position in the window is fixed the moment its send is read.

The rules judge an hour only once the IP's clock has passed it, often batches after the send
that crossed the threshold was counted. So every batch notes, while counting, which of its
sends crossed a threshold that a coming decision could compare with (`watch`): each daily and
hourly limit the IP can be under next, and the phases whose spike check can suspend it. The
decision then finds its cause among those notes (`sought`), whatever batch or sweep makes it.

Positions move with the hour judged: a send of 10:00 read after one of 11:00 is the 5th of the
day's sends up to 10:00 but the 6th up to 11:00. So a noted crossing holds for a range of judged
hours (`first_hour`..`last_hour`), each with its own window end.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from services.warmup.domain.event_time import DAY, HOUR, as_utc, day_start, hour_start
from services.warmup.domain.rewarm import idle_deadline
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import UNLIMITED, Schedule
from services.warmup.domain.send_counts import ZERO, OutcomeCounts, SendCounters
from services.warmup.domain.state import WarmupState
from services.warmup.domain.suspension import complaint_spike
from services.warmup.domain.transitions import (
    DailyLimitReached,
    HourlyLimitReached,
    Suspended,
    Transition,
)

Threshold = Literal["daily_limit", "hourly_limit", "complaint_spike"]

# (event id, event time, outcome) of one send counted in a batch, in the order it was read.
BatchSend = tuple[str, datetime, str]

LAST_HOUR = 23


@dataclass(frozen=True, slots=True)
class Crossing:
    """The send (`event_id`) after which the count over a window first met a threshold.

    The window starts at `window_start` and ends with the judged hour, any hour from
    `first_hour` to `last_hour` (the same UTC day). `reached` is the count met: the limit
    for a limit, 0 for the complaint spike (a rate, not a count)."""

    threshold: Threshold
    window_start: datetime
    reached: int
    first_hour: datetime
    last_hour: datetime
    event_id: str

    def answers(self, wanted: Sought) -> bool:
        threshold, window_start, reached, hour = wanted
        return (
            self.threshold == threshold
            and self.window_start == window_start
            and self.reached == reached
            and self.first_hour <= hour <= self.last_hour
        )


# (threshold, window start, count reached, judged hour): what a decision looks for.
Sought = tuple[Threshold, datetime, int, datetime]


def sought(transition: Transition, after: WarmupState) -> Sought | None:
    """The crossing that caused `transition` (a limit reached or a suspension; `after` the
    state right after it), or None for a transition no send causes."""
    if isinstance(transition, DailyLimitReached):
        return ("daily_limit", day_start(transition.on), transition.limit, transition.at)
    if isinstance(transition, HourlyLimitReached):
        return ("hourly_limit", transition.hour, transition.limit, transition.hour)
    if isinstance(transition, Suspended):
        # The sweep suspends at the end of the hour it judged, over the day's phase so far.
        hour = transition.at - HOUR
        return ("complaint_spike", _phase_start(hour, after.judged_since), 0, hour)
    return None


def _phase_start(hour: datetime, judged_since: datetime | None) -> datetime:
    """Where the spike check's window starts when it judges `hour` (as `sweep` has it)."""
    return max(day_start(hour.date()), judged_since or hour)


# ---- what a coming decision can compare the IP's sends with -----------------------------------


@dataclass(frozen=True, slots=True)
class Watch:
    """The thresholds an IP's coming decisions can compare its sends with.

    `daily` and `hourly` are the limits it can be under next (sorted); `phases` the starts of
    the phases whose spike check can suspend it; nothing judged before `from_hour` matters."""

    daily: tuple[int, ...]
    hourly: tuple[int, ...]
    phases: tuple[datetime, ...]
    from_hour: datetime | None = None


def watch(
    state: WarmupState, schedule: Schedule | None, rules: WarmupRules, through: date
) -> Watch | None:
    """What a later decision can look for among an IP's sends up to the UTC day `through`,
    the IP being judged up to its watermark as `state`; None when nothing can be reached.

    Each state can be under these limits by the time those sends' hours are judged: a warming
    IP its day's, the day before's (a resume one day back) or the next day's (the day closing
    with an advance), one day further each way per day between its watermark and `through`;
    a suspended IP the same around the day it resumes on; an active IP only once idle long
    enough to warm again, from its idle deadline on. A warm-up started or resumed by an
    operator's command is caused by the command, so nothing is watched for it here."""
    if schedule is None or state.schedule not in (None, schedule.name):
        return None
    current = state.current_date
    ahead = max(0, (through - current).days) if current is not None else 0
    if state.status == "warming":
        phases = (state.judged_since,) if state.judged_since is not None else ()
        return _watch(schedule, state.day, ahead, phases)
    if state.status == "suspended":
        until = state.suspended_until
        phases = (hour_start(until),) if until is not None else ()
        return _watch(schedule, max(1, state.day - 1), ahead, phases)
    if state.status == "active":
        deadline = idle_deadline(state, rules)
        if deadline is None:
            return None
        day = min(rules.rewarm_day, schedule.last_limited_day)
        begins = hour_start(deadline)
        return _watch(schedule, day, ahead, (begins,), from_hour=begins)
    return None


def _watch(
    schedule: Schedule,
    day: int,
    ahead: int,
    phases: tuple[datetime, ...],
    from_hour: datetime | None = None,
) -> Watch:
    """The limits of the schedule days `day` - 1 .. `day` + 1, widened by `ahead` each way."""
    days = range(day - 1 - ahead, day + 2 + ahead)
    known = [schedule.day(d) for d in days if 1 <= d <= schedule.length]
    daily = tuple(sorted({d.daily_limit for d in known} - {UNLIMITED}))
    hourly = tuple(sorted({d.hourly_limit for d in known} - {UNLIMITED}))
    return Watch(daily, hourly, phases, from_hour)


# ---- noting the crossings of one batch -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """An IP's counts around a batch, as the statement that counts the batch can return them:
    enough to tell whether the batch can hold a crossing without reading the IP's counters.
    Sends only (dropped excluded)."""

    through_watermark: int  # before the batch: the watermark's day up to its hour included
    day_sent: Mapping[date, int]  # after the batch: each day it counted sends on
    hour_sent: Mapping[datetime, int]  # after the batch: each hour it counted sends in

    @classmethod
    def of(cls, counted: SendCounters, batch: SendCounters, watermark: datetime) -> BatchTotals:
        """From the IP's counters with the batch counted (`counted`) and the batch's part."""
        hour = hour_start(watermark)
        day = hour.date()
        taken = 0
        days: dict[date, int] = {}
        hours: dict[datetime, int] = {}
        for at, counts in batch:  # a batch holds a few hours of an IP: cheaper than a day's
            if at.date() == day and at <= hour:
                taken += counts.sent
            days.setdefault(at.date(), counted.day(at.date()).sent)
            hours[at] = counted.hour(at).sent
        return cls(counted.day_through(hour).sent - taken, days, hours)


def may_cross(
    watching: Watch,
    watermark: datetime,
    batch: SendCounters,
    totals: BatchTotals,
    rules: WarmupRules,
    *,
    limits_judged: bool = False,
) -> bool:
    """Whether the batch can hold a crossing of a watched threshold in an hour judged from the
    `watermark` on (limits from the next hour with `limits_judged`, see `crossings`): a
    bound, never an answer. Most IPs of most batches cross nothing, and this tells so from
    the totals alone.

    In a window judged at an hour H from the watermark on, the count before the batch is at
    least the day's count up to the watermark's hour (0 on a later day), and the count after
    it at most the day's; a limit can be crossed only between those. The spike check can
    first hold only at a complaint, or where the count reaches its minimum."""
    floor = _floor(watching, watermark)
    counts_from = _counts_from(watching, watermark, limits_judged)
    for day in sorted({at.date() for at, _ in batch if at.date() >= floor.date()}):
        start = day_start(day)
        lowest = totals.through_watermark if day == floor.date() else 0
        highest = totals.day_sent.get(day, 0)
        first = max(counts_from, start)
        if first.date() == day and _any_between(watching.daily, lowest, highest):
            return True
        for hour, taken in batch:
            if hour >= first and taken.sent:
                after = totals.hour_sent.get(hour, 0)
                if _any_between(watching.hourly, after - taken.sent, after):
                    return True
        if highest < rules.suspend_min_sends:
            continue  # the spike check needs that many sends in its window: the day has fewer
        for phase in watching.phases:
            since = max(start, phase)
            if since > start + LAST_HOUR * HOUR:
                continue
            if any(c.complained for at, c in batch if since <= at < start + DAY):
                return True
            # Before a later phase start the day's sends are not in the window: no bound.
            floor_count = lowest if since == start else 0
            if floor_count < rules.suspend_min_sends <= highest:
                return True
    return False


def below_every_threshold(
    schedule: Schedule, rules: WarmupRules, day_sent: Iterable[int], hour_sent: Iterable[int]
) -> bool:
    """Whether counts this low cross nothing that any `watch` on `schedule` can look for,
    whatever the IP's state: each day's count (after the batch) below the schedule's lowest
    daily limit and below `suspend_min_sends`, each hour's below its lowest hourly limit.
    Limits never decrease along a schedule, so the lowest are its first day's. `may_cross`
    is then False (every limit it looks for is one of the schedule's, and its spike check
    needs `suspend_min_sends` sends on the day): the same answer from the counting
    statement's totals alone, without building the watch, for the many IPs of a batch that
    send a few times a day."""
    first = schedule.days[0]
    day_floor = min(first.daily_limit, rules.suspend_min_sends)
    if any(sent >= day_floor for sent in day_sent):
        return False
    if first.hourly_limit == UNLIMITED:
        return True  # no day of the schedule has an hourly limit
    return all(sent < first.hourly_limit for sent in hour_sent)


def _counts_from(watching: Watch, watermark: datetime, limits_judged: bool) -> datetime:
    """The first hour whose limits a coming decision compares counts with: the watermark's
    (its next with `limits_judged`), never before the watch's own first hour."""
    first = hour_start(watermark) + HOUR if limits_judged else hour_start(watermark)
    if watching.from_hour is not None and watching.from_hour > first:
        return watching.from_hour
    return first


def _floor(watching: Watch, watermark: datetime) -> datetime:
    """The first hour a coming decision judges."""
    floor = hour_start(watermark)
    if watching.from_hour is not None and watching.from_hour > floor:
        return watching.from_hour
    return floor


def crossings(
    watching: Watch,
    counted: SendCounters,
    batch: SendCounters,
    sends: Callable[[], Sequence[BatchSend]],
    watermark: datetime,
    rules: WarmupRules,
    *,
    limits_judged: bool = False,
) -> list[Crossing]:
    """The crossings among one IP's sends in a batch, for the hours a coming decision judges.

    `counted` holds the IP's counters with the batch counted (at least from the day of
    `watermark`, the IP's first hour not yet judged), `batch` the batch's own part of them,
    and `sends()` the batch's sends of the IP in the order they were read, as `in_hours`
    gives them (asked for only when a threshold was crossed). Only hours from the watermark
    on are judged from now on, so only those are looked at. With `limits_judged`, the limits
    of the watermark's hour were just checked on these counts (a limit reached there was
    decided, with its crossing at hand), so limits are looked at from the next hour on; the
    spike check of the watermark's hour is judged only once the hour closes."""
    totals = BatchTotals.of(counted, batch, watermark)
    if not may_cross(watching, watermark, batch, totals, rules, limits_judged=limits_judged):
        return []
    floor = _floor(watching, watermark)
    counts_from = _counts_from(watching, watermark, limits_judged)
    days = sorted({at.date() for at, _ in batch if at.date() >= floor.date()})
    found: list[Crossing] = []
    for day in days:
        window = _Day(day, counted, batch, sends)
        first = max(counts_from, day_start(day))
        if first.date() == day:
            found += window.count_crossings("daily_limit", watching.daily, first)
            for hour in window.batch_hours(first):
                found += window.count_crossings("hourly_limit", watching.hourly, hour, hour)
        for phase in watching.phases:
            since = max(day_start(day), phase)
            found += window.spike_crossings(since, max(floor, day_start(day), since), rules)
    return found


def _any_between(limits: Sequence[int], low: int, high: int) -> bool:
    """Whether some limit lies in (low, high]."""
    return bisect_right(limits, low) < bisect_right(limits, high)


class _Day:
    """One UTC day of an IP's counters, before and after a batch, hour by hour."""

    def __init__(
        self,
        day: date,
        counted: SendCounters,
        batch: SendCounters,
        sends: Callable[[], Sequence[BatchSend]],
    ) -> None:
        self.day = day
        self.start = day_start(day)
        self._sends = sends
        self._of_day: list[BatchSend] | None = None
        self._by_hour: dict[datetime, list[BatchSend]] = {}
        self.after = counted.day_hours(day)
        self.taken = batch.day_hours(day)
        self.before = [
            a if t is ZERO else a.minus(t) for a, t in zip(self.after, self.taken, strict=True)
        ]

    def sends(self, begin: datetime, end: datetime) -> Iterator[BatchSend]:
        """The batch's sends of the day in [begin, end), in the order they were read; the
        batch's sends are walked once per day, and each hour's are kept."""
        if self._of_day is None:
            every = self._sends()
            if sum(c.sent for c in self.taken) == len(every):
                self._of_day = list(every)  # all on this day (most batches)
            else:
                stop = self.start + DAY
                self._of_day = [s for s in every if self.start <= s[1] < stop]
            for send in self._of_day:
                self._by_hour.setdefault(send[1], []).append(send)
        if end - begin == HOUR:
            return iter(self._by_hour.get(begin, ()))
        return (s for s in self._of_day if begin <= s[1] < end)

    def hour(self, index: int) -> datetime:
        return self.start + index * HOUR

    def batch_hours(self, first: datetime) -> list[datetime]:
        """The hours from `first` on in which the batch counted sends."""
        return [self.hour(h) for h in range(_index(first, self.start), 24) if self.taken[h].sent]

    def _segments(self, first: datetime, last: datetime) -> list[tuple[int, int]]:
        """The judged hours first..last, split where the window's count can change: at each
        hour with sends. Within a segment, every judged hour's window holds the same sends."""
        lo, hi = _index(first, self.start), _index(last, self.start)
        starts = [lo, *(h for h in range(lo + 1, hi + 1) if self.after[h].sent)]
        return [(s, e - 1) for s, e in zip(starts, [*starts[1:], hi + 1], strict=True)]

    def count_crossings(
        self,
        threshold: Threshold,
        limits: Sequence[int],
        first: datetime,
        only: datetime | None = None,
    ) -> list[Crossing]:
        """The sends at which the count from the window's start (the day's start, or the hour
        `only` alone) up to the judged hour met each of `limits`."""
        if not limits:
            return []
        begin = self.start if only is None else only
        last = self.hour(LAST_HOUR) if only is None else only
        found: list[Crossing] = []
        for lo, hi in self._segments(first, last):
            b, e = _index(begin, self.start), lo + 1  # the window's hours: [b, e)
            before = sum(c.sent for c in self.before[b:e])
            after = sum(c.sent for c in self.after[b:e])
            met = limits[
                bisect_right(limits, before) : bisect_right(limits, after)
            ]  # (before, after]
            if not met:
                continue
            # The batch's sends in the window, in the order read, up to the last one needed:
            # the limit's is the (limit - before)-th.
            inside = self.sends(begin, self.hour(lo) + HOUR)
            position = 0
            for limit in met:
                for event_id, _, _ in inside:
                    position += 1
                    if position == limit - before:
                        found.append(
                            Crossing(
                                threshold, begin, limit, self.hour(lo), self.hour(hi), event_id
                            )
                        )
                        break
        return _joined(found)

    def spike_crossings(
        self,
        since: datetime,
        first: datetime,
        rules: WarmupRules,
    ) -> list[Crossing]:
        """The send after which the complaint-spike check over [since, judged hour's end)
        first held, for each judged hour from `first` on, when it first held in this batch.
        One crossing per judged hour: a check that held, stopped holding and held again
        keeps its first crossing (the store keeps the first one noted)."""
        if sum(c.sent for c in self.after) < rules.suspend_min_sends:
            return []  # every window lies within the day: none holds the sends a spike needs
        found: list[Crossing] = []
        b = _index(since, self.start)
        for lo, hi in self._segments(first, self.hour(LAST_HOUR)):
            before = sum(self.before[b : lo + 1], start=ZERO)
            after = sum(self.after[b : lo + 1], start=ZERO)
            if complaint_spike(before, rules) is not None:
                continue  # it held before this batch: noted then
            newly = after.complained > before.complained or (
                before.sent < rules.suspend_min_sends <= after.sent
            )
            if not newly:
                continue  # no complaint and no step past the minimum: it cannot newly hold
            end = self.hour(lo) + HOUR
            event_id = _first_spike(list(self.sends(since, end)), before, rules)
            if event_id is not None:
                found += [
                    Crossing("complaint_spike", since, 0, self.hour(h), self.hour(h), event_id)
                    for h in range(lo, hi + 1)
                ]
        return found


def _first_spike(
    sends: Sequence[BatchSend], before: OutcomeCounts, rules: WarmupRules
) -> str | None:
    """The first of `sends` (a window's, in the order read) after which the spike check holds.
    Only a complaint, or the send that brings the count to the minimum, can turn the check
    from not holding to holding: a delivery lowers the rate, a bounce or deferral leaves it."""
    running = before
    for event_id, _, outcome in sends:
        running = running + OutcomeCounts.of({outcome: 1})
        trigger = outcome == "complained" or running.sent == rules.suspend_min_sends
        if trigger and complaint_spike(running, rules) is not None:
            return event_id
    return None


def _joined(found: list[Crossing]) -> list[Crossing]:
    """Adjacent hour ranges of one crossing (the same send, limit and window) as one."""
    joined: list[Crossing] = []
    for crossing in found:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.event_id == crossing.event_id
            and last.reached == crossing.reached
            and last.window_start == crossing.window_start
            and last.last_hour + HOUR == crossing.first_hour
        ):
            joined[-1] = Crossing(
                last.threshold, last.window_start, last.reached, last.first_hour,
                crossing.last_hour, last.event_id,
            )  # fmt: skip
        else:
            joined.append(crossing)
    return sorted(joined, key=lambda c: (c.reached, c.first_hour))


def _index(moment: datetime, start: datetime) -> int:
    """The hour of the day `start` begins that holds `moment`, clamped to the day."""
    return min(LAST_HOUR, max(0, int((as_utc(moment) - start) / HOUR)))


def in_hours(sends: Iterable[BatchSend]) -> list[BatchSend]:
    """Sends in the order they were read, as the crossings take them: each with the start of
    its UTC hour for its time, the dropped ones (which never count) left out."""
    return [(i, hour_start(at), outcome) for i, at, outcome in sends if outcome != "dropped"]


def crossings_in_batch(
    wanted: Sequence[Sought],
    counted: SendCounters,
    batch: SendCounters,
    sends: Callable[[], Sequence[BatchSend]],
    rules: WarmupRules,
) -> list[str | None]:
    """For each crossing `wanted` of one IP, the send of the batch being applied that crossed
    its threshold, when the batch holds it (`counted` includes the batch, `batch` is its own
    part); None when an earlier batch read it, or nothing crossed it. One pass for them all."""
    if not wanted:
        return []
    watching = Watch(
        tuple(sorted({w[2] for w in wanted if w[0] == "daily_limit"})),
        tuple(sorted({w[2] for w in wanted if w[0] == "hourly_limit"})),
        tuple(sorted({w[1] for w in wanted if w[0] == "complaint_spike"})),
    )
    found = crossings(watching, counted, batch, sends, min(w[3] for w in wanted), rules)
    return [found_in(found, w) for w in wanted]


def found_in(crossings: Sequence[Crossing], wanted: Sought) -> str | None:
    """The id of the send that `wanted` looks for among `crossings`."""
    for crossing in crossings:
        if crossing.answers(wanted):
            return crossing.event_id
    return None


__all__ = [
    "BatchSend",
    "BatchTotals",
    "Crossing",
    "Sought",
    "Threshold",
    "Watch",
    "below_every_threshold",
    "crossings",
    "crossings_in_batch",
    "found_in",
    "in_hours",
    "may_cross",
    "sought",
    "watch",
]
