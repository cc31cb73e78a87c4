"""Property tests of the send path's shortcuts: a batch that brings up to date only the IPs
`must_settle` names decides exactly what bringing every IP it touched up to date decides, in
the same batch; and the sweep's jump over a warming IP's hours without sends decides what
going hour by hour does.

The model is the send path's: sends read in partition order (a little late at times, within
the allowed lateness), cut into batches at random; after each batch, each IP a batch counted
sends for is judged at the batch's clock less the lateness. The straightforward path runs
`catch_up` for every such IP; the fast path only for those `must_settle` names, from the
counts the batch's upsert returns (the touched day's and hour's totals). Between batches a
sweep closes the hours of every IP with one to close, as `close_days` does. Both must give,
after every batch and sweep, the same states and the same transitions: the same batch
decides a limit, so the same send is its cause.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.warmup.domain import sweep as sweep_module
from services.warmup.domain.catch_up import catch_up, decision_time
from services.warmup.domain.event_time import hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule, ScheduleDay
from services.warmup.domain.send_counts import (
    Outcome,
    Send,
    SendCounters,
    TallyKey,
    merge_tallies,
    tally,
)
from services.warmup.domain.settling import must_settle
from services.warmup.domain.state import WarmupState
from services.warmup.domain.transitions import Transition
from services.warmup.domain.view import same_view, warmup_view, without_counts
from services.warmup.domain.warmup_day import start

IPS = ("192.0.2.1", "192.0.2.2", "192.0.2.3")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LATENESS = timedelta(minutes=20)
TINY = Schedule(
    name="tiny-4",
    days=(
        ScheduleDay(day=1, daily_limit=8, hourly_limit=3),
        ScheduleDay(day=2, daily_limit=16, hourly_limit=6),
        ScheduleDay(day=3, daily_limit=32, hourly_limit=12),
        ScheduleDay(day=4, daily_limit=-1, hourly_limit=-1),
    ),
)
RULES = WarmupRules(
    advance_share=0.5,
    hold_bounce_rate=0.25,
    hold_complaint_rate=0.2,
    suspend_complaint_rate=0.3,
    suspend_min_sends=6,
    suspension_period=timedelta(hours=5),
)
OUTCOMES: list[Outcome] = [*["delivered"] * 5, "deferred", "bounced", "complained", "dropped"]

# A burst: n sends of one IP and outcome from some minute on, a minute apart; bursts make
# dense hours (limits reached mid-batch, spikes) out of few draws.
burst_strategy = st.builds(
    lambda ip, minute, outcome, n: [
        Send(IPS[ip], T0 + timedelta(minutes=minute + k), outcome) for k in range(n)
    ],
    st.integers(0, len(IPS) - 1),
    st.integers(0, 4 * 24 * 60),
    st.sampled_from(OUTCOMES),
    st.integers(1, 12),
)


def read_order(sends: list[Send], late: list[int]) -> list[Send]:
    """Sends in the order a partition holds them: by time, some of them `late` minutes
    behind (never more than the lateness, which the watermark allows for)."""
    arrival = {
        id(s): s.occurred_at + timedelta(minutes=m) for m, s in zip(late, sends, strict=True)
    }
    return sorted(sends, key=lambda s: arrival[id(s)])


Moment = tuple[dict[str, WarmupState], list[Transition]]


def run(batches: list[list[Send]], fast: bool) -> list[Moment]:
    """After each batch and each sweep: every IP's state and what was decided."""
    counts: dict[TallyKey, int] = {}
    states = {ip: start(WarmupState(), TINY, T0, "earned").state for ip in IPS}
    clock = T0
    history = []
    for batch in batches:
        increment = tally(batch)
        counts = merge_tallies(counts, increment)
        clock = max([clock, *(s.occurred_at for s in batch)])
        now = decision_time(clock, LATENESS)
        decided: list[Transition] = []
        for ip in sorted({s.ip for s in batch}):
            counters = SendCounters.from_tally(counts, ip)
            day_sent, hour_sent = touched(increment, counters, ip, states[ip])
            if fast and not must_settle(states[ip], TINY, now, None, day_sent, hour_sent):
                continue
            states[ip], made = catch_up(states[ip], TINY, RULES, counters, now)
            decided.extend(made)
        history.append((dict(states), decided))
        # The sweep: IPs with an hour to close, at the same clock.
        swept: list[Transition] = []
        for ip in IPS:
            closed_until = states[ip].closed_until
            if closed_until is not None and closed_until < hour_start(now):
                counters = SendCounters.from_tally(counts, ip)
                states[ip], made = catch_up(states[ip], TINY, RULES, counters, now)
                swept.extend(made)
        history.append((dict(states), swept))
    return history


def touched(
    increment: dict[TallyKey, int], counters: SendCounters, ip: str, state: WarmupState
) -> tuple[int | None, int | None]:
    """What the batch's upsert returns for the day and hour of the IP's watermark: their
    totals after the batch when the batch counted sends there, else None."""
    hour = state.closed_until
    if hour is None:
        return None, None
    keys = {(day, h) for (addr, day, h, _), n in increment.items() if addr == ip and n}
    day_sent = counters.day(hour.date()).sent if any(d == hour.date() for d, _ in keys) else None
    hour_sent = counters.hour(hour).sent if (hour.date(), hour.hour) in keys else None
    return day_sent, hour_sent


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(st.lists(burst_strategy, max_size=30), st.data())
def test_settling_only_what_must_be_decides_the_same_in_the_same_batch(
    bursts: list[list[Send]], data: st.DataObject
) -> None:
    sends = [send for burst in bursts for send in burst]
    late = [data.draw(st.integers(0, 15)) for _ in sends]
    ordered = read_order(sends, late)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(ordered) - 1)), max_size=25)))
    bounds = [0, *[c for c in cuts if c < len(ordered)], len(ordered)]
    batches = [ordered[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    assert run(batches, fast=True) == run(batches, fast=False)


def test_the_fast_path_skips_some_ips_and_still_decides_limits() -> None:
    """Worth comparing: in a dense hour most batches skip the IP, and its limits are still
    reached in the batch that holds the crossing send."""
    # 09:25-09:59, judged at 09:05-09:39: all in the hour the warm-up started in.
    sends = [Send(IPS[0], T0 + timedelta(minutes=m), "delivered") for m in range(25, 60, 2)]
    batches = [[s] for s in sends]
    skipped = Counter[bool]()
    counts: dict[TallyKey, int] = {}
    state = start(WarmupState(), TINY, T0, "earned").state
    for batch in batches:
        increment = tally(batch)
        counts = merge_tallies(counts, increment)
        counters = SendCounters.from_tally(counts, IPS[0])
        now = decision_time(batch[-1].occurred_at, LATENESS)
        settle = must_settle(state, TINY, now, None, *touched(increment, counters, IPS[0], state))
        skipped[not settle] += 1
        if settle:
            state, _ = catch_up(state, TINY, RULES, counters, now)
    assert skipped == Counter({True: 16, False: 2})  # settled at the hourly and the daily limit
    assert run(batches, fast=True) == run(batches, fast=False)
    assert any(made for _, made in run(batches, fast=True))


def hour_by_hour(entering: WarmupState, state: WarmupState, *args: Any) -> datetime:
    """`sweep._next_stop` without the warming IP's jump over hours without sends."""
    if state.status == "warming":
        return cast(datetime, args[-2])  # end
    return jumping(entering, state, *args)


jumping = sweep_module._next_stop


@SLOW
@given(st.lists(burst_strategy, max_size=30), st.data())
def test_jumping_over_hours_without_sends_decides_what_going_hour_by_hour_does(
    bursts: list[list[Send]], data: st.DataObject
) -> None:
    sends = sorted((send for burst in bursts for send in burst), key=lambda s: s.occurred_at)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(sends) - 1)), max_size=25)))
    bounds = [0, *[c for c in cuts if c < len(sends)], len(sends)]
    batches = [sends[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_module, "_next_stop", hour_by_hour)
        expected = run(batches, fast=False)
    assert run(batches, fast=False) == expected


@SLOW
@given(st.lists(burst_strategy, max_size=30), st.data())
def test_a_view_is_rewritten_whenever_what_it_shows_changed(
    bursts: list[list[Send]], data: st.DataObject
) -> None:
    """`same_view` (the batch keeps a view as it is) only where `warmup_view` renders the
    stored part alike, on the same day."""
    sends = sorted((send for burst in bursts for send in burst), key=lambda s: s.occurred_at)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(sends) - 1)), max_size=25)))
    bounds = [0, *[c for c in cuts if c < len(sends)], len(sends)]
    batches = [sends[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    history = run(batches, fast=True)
    for ip in IPS:
        for (before, _), (after, _) in itertools.pairwise(history):
            a, b = before[ip], after[ip]
            if a.closed_until is None or b.closed_until is None or not same_view(a, b):
                continue
            now = b.closed_until + timedelta(minutes=30)
            assert without_counts(warmup_view(a, TINY, SendCounters(), now)) == without_counts(
                warmup_view(b, TINY, SendCounters(), now)
            )
