"""Property tests of the send path's shortcuts: a batch that brings up to date only the IPs
`must_settle` names decides exactly what bringing every IP it touched up to date decides, in
the same batch; and the sweep's jump over a warming IP's hours without sends decides what
going hour by hour does.

The model is the send path's: sends read in partition order (a little late at times, within
the allowed lateness), cut into batches at random; after each batch, each IP a batch counted
sends for is judged at the batch's clock less the lateness. The straightforward path runs
`catch_up` for every such IP; the fast path only for those `must_settle` names, from the
counts the batch's upsert returns (the touched day's and hour's totals). After some batches
(drawn) and after the last, a sweep closes the hours of every IP with one to close, as
`close_days` does. Both must decide the same transitions in every batch and sweep: the same
batch decides a limit, so the same send is its cause. The states may differ only in what an
IP the fast path left as it stood has not caught up on yet (its watermark and last hour with
sends), and not at all once a sweep has passed.
"""

from __future__ import annotations

import itertools
import sys
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
from services.warmup.domain.settling import must_settle, quiet_until
from services.warmup.domain.state import WarmupState
from services.warmup.domain.transitions import DailyLimitReached, Transition
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


def read_in_batches(
    bursts: list[list[Send]], data: st.DataObject
) -> tuple[list[list[Send]], set[int]]:
    """The bursts' sends in partition order (some a little late), cut into batches at random,
    and the batches after which a sweep runs."""
    sends = [send for burst in bursts for send in burst]
    late = [data.draw(st.integers(0, 15)) for _ in sends]
    ordered = read_order(sends, late)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(ordered) - 1)), max_size=25)))
    bounds = [0, *[c for c in cuts if c < len(ordered)], len(ordered)]
    batches = [ordered[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return batches, data.draw(st.sets(st.integers(0, max(0, len(batches) - 1))))


Moment = tuple[str, dict[str, WarmupState], list[Transition]]  # (batch / sweep, states, decided)

# What an IP left as it stood has not caught up on yet; nothing it shows or decides.
BOOKKEEPING = ("closed_until", "last_send_hour")


def run(
    batches: list[list[Send]],
    fast: bool,
    swept_after: set[int] | None = None,
    schedule: Schedule = TINY,
    rules: WarmupRules = RULES,
) -> list[Moment]:
    """After each batch and each sweep: every IP's state and what was decided. A sweep runs
    after each batch whose index is in `swept_after` (every batch when None) and after the
    last; as `close_days`, it leaves an IP the fast path left as it stood alone until its
    `quiet_until`. Last, every IP is brought up to date (`caught up`)."""
    counts: dict[TallyKey, int] = {}
    states = {ip: start(WarmupState(), schedule, T0, "earned").state for ip in IPS}
    quiet: dict[str, datetime] = {}
    clock = T0
    history: list[Moment] = []

    def sweep(kind: str, now: datetime, everyone: bool = False) -> None:
        swept: list[Transition] = []
        for ip in IPS:
            closed_until = states[ip].closed_until
            if closed_until is None or closed_until >= hour_start(now):
                continue
            if not everyone and quiet.get(ip, closed_until) > hour_start(now):
                continue
            counters = SendCounters.from_tally(counts, ip)
            states[ip], made = catch_up(states[ip], schedule, rules, counters, now)
            quiet.pop(ip, None)
            swept.extend(made)
        history.append((kind, dict(states), swept))

    now = T0
    for index, batch in enumerate(batches):
        increment = tally(batch)
        counts = merge_tallies(counts, increment)
        clock = max([clock, *(s.occurred_at for s in batch)])
        now = decision_time(clock, LATENESS)
        decided: list[Transition] = []
        for ip in sorted({s.ip for s in batch}):
            counters = SendCounters.from_tally(counts, ip)
            day_sent, hour_sent = touched(increment, counters, ip, states[ip])
            judged = states[ip]
            peak = hour_peak(counters, judged)
            if fast and not must_settle(
                judged, schedule, rules, now, None, day_sent, hour_sent, peak
            ):
                if judged.closed_until is not None and judged.closed_until < hour_start(now):
                    quiet[ip] = quiet_until(judged, rules)
                continue
            states[ip], made = catch_up(states[ip], schedule, rules, counters, now)
            quiet.pop(ip, None)
            decided.extend(made)
        history.append(("batch", dict(states), decided))
        if swept_after is None or index in swept_after or index == len(batches) - 1:
            sweep("sweep", now)
    sweep("caught up", now, everyone=True)
    return history


def hour_peak(counters: SendCounters, state: WarmupState) -> int | None:
    """What the batch reads when it must (`store.hour_peaks`): the largest count of the
    hours of the IP's watermark's day from the watermark's on."""
    first = state.closed_until
    if first is None:
        return None
    return max(counts.sent for counts in counters.day_hours(first.date())[first.hour :])


def shown(state: WarmupState) -> WarmupState:
    return state.model_copy(update=dict.fromkeys(BOOKKEEPING))


def assert_same_decisions(fast: list[Moment], slow: list[Moment]) -> None:
    """Step by step the same transitions; the same states but for the bookkeeping of IPs
    left as they stood, and exactly the same once every IP is caught up."""
    assert [(kind, made) for kind, _, made in fast] == [(kind, made) for kind, _, made in slow]
    for (_, ours, _), (_, theirs, _) in zip(fast, slow, strict=True):
        assert {ip: shown(s) for ip, s in ours.items()} == {
            ip: shown(s) for ip, s in theirs.items()
        }
    assert fast[-1][1] == slow[-1][1]


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
    batches, swept_after = read_in_batches(bursts, data)
    assert_same_decisions(run(batches, True, swept_after), run(batches, False, swept_after))
    assert_same_decisions(run(batches, fast=True), run(batches, fast=False))


# A warm-up that ends after one earned day, then idles into a re-warm within hours, and a
# suspension that lasts more than a day: so the IPs the fast path leaves as they stand are
# active and suspended ones too, not only warming ones.
SHORT = Schedule(
    name="short-2",
    days=(
        ScheduleDay(day=1, daily_limit=4, hourly_limit=2),
        ScheduleDay(day=2, daily_limit=-1, hourly_limit=-1),
    ),
)
RESTLESS = RULES.model_copy(
    update={"idle_period": timedelta(hours=7), "suspension_period": timedelta(hours=30)}
)
# A complaint spike that needs more sends than any limit: the limits alone bound a day.
CALM = RULES.model_copy(update={"suspend_min_sends": 1000})
# Limits far above `suspend_min_sends`: a complaint spike is then reached long before a
# limit could be.
WIDE = Schedule(
    name="wide-3",
    days=(
        ScheduleDay(day=1, daily_limit=60, hourly_limit=40),
        ScheduleDay(day=2, daily_limit=120, hourly_limit=80),
        ScheduleDay(day=3, daily_limit=-1, hourly_limit=-1),
    ),
)


@SLOW
@pytest.mark.parametrize(("schedule", "rules"), [(SHORT, RESTLESS), (WIDE, RESTLESS), (TINY, CALM)])
@given(st.lists(burst_strategy, min_size=10, max_size=40), st.data())
def test_leaving_active_and_suspended_ips_as_they_stand_decides_the_same(
    schedule: Schedule, rules: WarmupRules, bursts: list[list[Send]], data: st.DataObject
) -> None:
    batches, swept_after = read_in_batches(bursts, data)

    assert_same_decisions(
        run(batches, True, swept_after, schedule, rules),
        run(batches, False, swept_after, schedule, rules),
    )


def test_an_ip_left_as_it_stands_is_brought_up_to_date_when_something_can_be_decided() -> None:
    """Sparse sends: the fast path leaves the IP as it stands in most batches with hours to
    close, and brings it up to date in the batch whose count reaches the hourly limit, in the
    one after midnight (its day closes) and in the one whose clock passes its idle deadline
    (a re-warm), deciding what the straightforward path decides, in the same batches."""
    ip = IPS[0]
    day_one = [Send(ip, T0 + timedelta(minutes=m), "delivered") for m in (10, 20, 30, 40)]
    day_two = [Send(ip, T0 + timedelta(hours=h), "delivered") for h in range(15, 40, 2)]
    batches = [[s] for s in [*day_one, *day_two]]
    settled: list[tuple[str, bool]] = []
    deciding = must_settle

    def noting(state: WarmupState, *args: Any) -> bool:
        decision = deciding(state, *args)
        now = args[2]
        if state.closed_until is not None and hour_start(now) > state.closed_until:
            settled.append((state.status, decision))
        return decision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules[__name__], "must_settle", noting)
        fast = run(batches, True, set(), SHORT, RESTLESS)
    slow = run(batches, False, set(), SHORT, RESTLESS)

    assert_same_decisions(fast, slow)
    made = [type(t).__name__ for _, _, moment in fast for t in moment]
    assert made[:4] == ["HourlyLimitReached", "DailyLimitReached", "Advanced", "Warmed"]
    assert Counter(settled) == Counter(
        {("active", False): 9, ("active", True): 2, ("warming", True): 2}
    )
    # The last batch leaves the IP behind its clock, and so does the sweep after it (the IP
    # has nothing to decide before its idle deadline); catching up brings it where the
    # straightforward path has it.
    assert [kind for kind, _, _ in fast[-3:]] == ["batch", "sweep", "caught up"]
    (_, after_batch, _), (_, after_sweep, _), (_, caught, _) = fast[-3:]
    behind = after_batch[ip].closed_until
    assert behind == after_sweep[ip].closed_until
    assert behind is not None and behind < caught[ip].closed_until == slow[-1][1][ip].closed_until


DAY2 = T0.replace(hour=0) + timedelta(days=1)


@pytest.mark.parametrize(
    ("day_one", "expected"),
    [
        # Earns its one limited day: active from midnight, idle from 02:00 on.
        ([(10, "delivered"), (20, "delivered")], "Rewarmed"),
        # Six sends, two complaints in the 10:00 hour: suspended at 11:00 until 17:00 on day 2.
        ([(10 + k, "complained" if k < 2 else "delivered") for k in range(6)], "Resumed"),
    ],
)
def test_the_sweep_leaves_a_quiet_ip_alone_only_until_it_has_something_to_decide(
    day_one: list[tuple[int, Outcome]], expected: str
) -> None:
    """An IP left as it stands (active, or suspended) after its last send is judged by the
    sweep once its idle deadline or its resume comes, in the same sweep as on the
    straightforward path, while other IPs' sends move the clock on."""
    ip, other = IPS[0], IPS[1]
    first = [Send(ip, T0 + timedelta(hours=1, minutes=m), o) for m, o in day_one]
    batches = [
        first,
        [Send(ip, DAY2 + timedelta(minutes=40), "delivered")],  # its day 1 closes
        [Send(ip, DAY2 + timedelta(hours=2, minutes=10), "delivered")],  # left as it stands
        *[[Send(other, DAY2 + timedelta(hours=h, minutes=30), "delivered")] for h in (5, 9, 18)],
    ]
    fast = run(batches, True, None, SHORT, RESTLESS)
    slow = run(batches, False, None, SHORT, RESTLESS)

    assert_same_decisions(fast, slow)
    swept = [type(t).__name__ for kind, _, made in fast if kind == "sweep" for t in made]
    assert expected in swept
    left = fast[2 * 2][1][ip]  # after the third batch
    assert left.closed_until is not None and left.closed_until < DAY2 + timedelta(hours=1)


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
        settle = must_settle(
            state, TINY, RULES, now, None, *touched(increment, counters, IPS[0], state)
        )
        skipped[not settle] += 1
        if settle:
            state, _ = catch_up(state, TINY, RULES, counters, now)
    assert skipped == Counter({True: 16, False: 2})  # settled at the hourly and the daily limit
    assert_same_decisions(run(batches, fast=True), run(batches, fast=False))
    assert any(made for _, _, made in run(batches, fast=True))


def hour_by_hour(entering: WarmupState, state: WarmupState, *args: Any) -> datetime:
    """`sweep._next_stop` without the warming IP's jumps."""
    if state.status == "warming":
        return cast(datetime, args[-2])  # end
    return jumping(entering, state, *args)


jumping = sweep_module._next_stop


@SLOW
@pytest.mark.parametrize(("schedule", "rules"), [(TINY, RULES), (WIDE, RESTLESS), (TINY, CALM)])
@given(st.lists(burst_strategy, max_size=30), st.data())
def test_jumping_over_hours_decides_what_going_hour_by_hour_does(
    schedule: Schedule, rules: WarmupRules, bursts: list[list[Send]], data: st.DataObject
) -> None:
    """A warming IP's jumps: over hours without sends, and over a quiet day's hours with
    sends (its last hour with sends noted all the same)."""
    sends = sorted((send for burst in bursts for send in burst), key=lambda s: s.occurred_at)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(sends) - 1)), max_size=25)))
    bounds = [0, *[c for c in cuts if c < len(sends)], len(sends)]
    batches = [sends[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_module, "_next_stop", hour_by_hour)
        expected = run(batches, False, None, schedule, rules)
    assert run(batches, False, None, schedule, rules) == expected


@pytest.mark.parametrize("rules", [RULES, CALM])
def test_a_day_of_small_hours_still_reaches_its_daily_limit_in_its_hour(
    rules: WarmupRules,
) -> None:
    """Two sends an hour never reach the hourly limit (3), but the fourth such hour reaches
    the daily one (8): the day is not quiet, so the sweep stops at that hour."""
    ip = IPS[0]
    sends = [Send(ip, T0 + timedelta(hours=h, minutes=m), "delivered") for h in (1, 2, 3, 4)
             for m in (5, 35)]  # fmt: skip
    # The first batch's clock is read past that hour: the sweep judges it among others.
    later = [Send(ip, T0 + timedelta(hours=h), "delivered") for h in (6, 11)]
    batches = [[*sends, later[0]], [later[1]]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_module, "_next_stop", hour_by_hour)
        expected = run(batches, False, None, TINY, rules)
    history = run(batches, False, None, TINY, rules)

    assert history == expected
    limits = [t for _, _, made in history for t in made if isinstance(t, DailyLimitReached)]
    assert [t.at for t in limits] == [T0 + timedelta(hours=4)]


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
        for (_, before, _), (_, after, _) in itertools.pairwise(history):
            a, b = before[ip], after[ip]
            if a.closed_until is None or b.closed_until is None or not same_view(a, b):
                continue
            now = b.closed_until + timedelta(minutes=30)
            assert without_counts(warmup_view(a, TINY, SendCounters(), now)) == without_counts(
                warmup_view(b, TINY, SendCounters(), now)
            )
