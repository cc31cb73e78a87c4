"""The send that crossed a threshold: noted while counting, found by the decision. Pure rules.

The property tests compare what batches note with the straightforward definition over the
whole log read in order (the L-th send in the window; the first send after which the spike
check held), for any batching and any order of event times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.warmup.domain.crossings import (
    BatchSend,
    BatchTotals,
    Crossing,
    Watch,
    below_every_threshold,
    crossings,
    found_in,
    in_hours,
    may_cross,
    sought,
    watch,
)
from services.warmup.domain.event_time import HOUR, as_utc, day_start, hour_start
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule, ScheduleDay
from services.warmup.domain.send_counts import OutcomeCounts, Send, SendCounters, tally
from services.warmup.domain.state import WarmupState
from services.warmup.domain.suspension import complaint_spike
from services.warmup.domain.transitions import DailyLimitReached, HourlyLimitReached, Suspended

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
M = timedelta(minutes=1)
RULES = WarmupRules(suspend_min_sends=10)


def counters(sends: Sequence[BatchSend]) -> SendCounters:
    return SendCounters.from_tally(
        tally(Send("a", at, outcome) for _, at, outcome in sends),  # type: ignore[arg-type]
        "a",
    )


def note(
    watching: Watch,
    log: Sequence[BatchSend],
    cuts: Sequence[int],
    watermarks: Sequence[datetime],
    limits_judged: bool = False,
) -> dict[tuple[object, ...], Crossing]:
    """Read `log` in batches ending at `cuts`, each judged from its watermark, as the service
    does; the first crossing noted per key stays, as in the store."""
    noted: dict[tuple[object, ...], Crossing] = {}
    start = 0
    for end, watermark in zip(cuts, watermarks, strict=True):
        batch = log[start:end]
        for c in crossings(
            watching,
            counters(log[:end]),
            counters(batch),
            lambda b=batch: in_hours(b),
            watermark,
            RULES,
            limits_judged=limits_judged,
        ):
            noted.setdefault((c.threshold, c.window_start, c.reached, c.first_hour), c)
        start = end
    return noted


def test_an_hourly_limit_names_the_send_that_made_the_count_reach_it() -> None:
    earlier = [(f"e{i}", T0 + i * M, "delivered") for i in range(3)]
    batch = [
        ("d", T0 + 3 * M, "dropped"),  # never left the IP: does not count
        ("x", T0 + 4 * M, "delivered"),
        ("y", T0 + 5 * M, "bounced"),  # the 5th sent: reaches 5
        ("z", T0 + 6 * M, "delivered"),
    ]
    noted = note(Watch((), (5,), ()), earlier + batch, [3, 7], [T0, T0])
    limit = HourlyLimitReached(hour=T0, day=1, limit=5)
    assert found_in(list(noted.values()), sought(limit, WarmupState())) == "y"  # type: ignore[arg-type]


def test_a_crossing_noted_batches_before_the_decision_is_still_found() -> None:
    # The 5th send of 09:00 is read in the first batch; the limit is decided only when a later
    # batch moves the IP's clock past 09:00: its cause is still the 5th send.
    log = [(f"s{i}", T0 + i * M, "delivered") for i in range(6)]
    log += [("next-hour", T0 + HOUR + 10 * M, "delivered")]
    noted = note(Watch((), (5,), ()), log, [6, 7], [T0, T0])
    limit = HourlyLimitReached(hour=T0, day=1, limit=5)
    assert found_in(list(noted.values()), sought(limit, WarmupState())) == "s4"  # type: ignore[arg-type]


def test_a_daily_crossing_depends_on_the_judged_hour() -> None:
    # Read in this order: 3 sends of 09:00, one of 10:00 read early, then 2 more of 09:00.
    log = [(f"a{i}", T0 + i * M, "delivered") for i in range(3)]
    log += [("ahead", T0 + HOUR + M, "delivered")]
    log += [("b0", T0 + 10 * M, "delivered"), ("b1", T0 + 11 * M, "delivered")]
    noted = list(note(Watch((5,), (), ()), log, [6], [T0]).values())
    on_9 = DailyLimitReached(on=T0.date(), day=1, limit=5, at=T0)
    on_10 = DailyLimitReached(on=T0.date(), day=1, limit=5, at=T0 + HOUR)
    # Judged at 09:00 the window ends at 10:00: the 5th is b1. Judged at 10:00 it is b0.
    assert found_in(noted, sought(on_9, WarmupState())) == "b1"  # type: ignore[arg-type]
    assert found_in(noted, sought(on_10, WarmupState())) == "b0"  # type: ignore[arg-type]


def test_sends_read_ahead_of_the_judged_hour_do_not_hide_a_crossing() -> None:
    # The first batch reads five sends of 10:00 while the IP is still judged at 09:00; the
    # second brings 09:00's own sends: the third of the day up to 09:00 crosses the limit of
    # 3, although the day had five sends already.
    log = [(f"ahead{i}", T0 + HOUR + i * M, "delivered") for i in range(5)]
    log += [(f"late{i}", T0 + 50 * M + i * M, "delivered") for i in range(3)]
    noted = list(note(Watch((3,), (), ()), log, [5, 8], [T0, T0]).values())
    on_9 = DailyLimitReached(on=T0.date(), day=1, limit=3, at=T0)
    assert found_in(noted, sought(on_9, WarmupState())) == "late2"  # type: ignore[arg-type]


def test_an_idle_ip_is_watched_from_its_deadline_even_after_its_hour_was_judged() -> None:
    # An active IP judged up to 09:00 whose idle deadline is 11:00: the limits of 11:00 are
    # the re-warmed IP's first, not judged yet, so their crossing is noted.
    deadline = T0 + 2 * HOUR
    log = [(f"s{i}", deadline + i * M, "delivered") for i in range(3)]
    watching = Watch((), (3,), (deadline,), from_hour=deadline)
    noted = list(note(watching, log, [3], [T0], limits_judged=True).values())
    limit = HourlyLimitReached(hour=deadline, day=1, limit=3)
    assert found_in(noted, sought(limit, WarmupState())) == "s2"  # type: ignore[arg-type]


def test_hours_already_judged_are_not_noted() -> None:
    log = [(f"s{i}", T0 + i * M, "delivered") for i in range(5)]
    # The IP's watermark is already past 09:00 (these sends are late): 09:00 is not judged
    # again, so its hourly limit is not noted; the day's count from 10:00 on still is.
    noted = list(note(Watch((5,), (5,), ()), log, [5], [T0 + HOUR]).values())
    assert [(c.threshold, c.first_hour, c.event_id) for c in noted] == [
        ("daily_limit", T0 + HOUR, "s4")
    ]


def test_the_spike_crossing_is_the_send_after_which_the_check_first_held() -> None:
    sends = [(f"d{i}", T0 + i * M, "delivered") for i in range(7)]
    sends += [(f"c{i}", T0 + (30 + i) * M, "complained") for i in range(3)]
    noted = list(note(Watch((), (), (T0,)), sends, [10], [T0]).values())
    suspended = Suspended(at=T0 + HOUR, until=T0 + 25 * HOUR, reason="complaint_spike")
    after = WarmupState(status="suspended", judged_since=T0)
    # The tenth send, the third complaint, brings the count to 10 with 30% complaints.
    assert found_in(noted, sought(suspended, after)) == "c2"
    # Held, stopped holding (deliveries), held again: the first crossing stays.
    more = [(f"m{i}", T0 + (40 + i) * M, "delivered") for i in range(200)]
    more += [("again", T0 + 50 * M, "complained")] * 80
    noted = list(note(Watch((), (), (T0,)), sends + more, [10, 210, 290], [T0] * 3).values())
    assert found_in(noted, sought(suspended, after)) == "c2"


def test_a_phase_begun_mid_day_counts_its_minimum_from_its_own_start() -> None:
    # 30 sends before the phase that began at 12:00 (a resume) do not count toward its spike
    # check's minimum of 10: the send that brings the phase to 10, after a complaint in an
    # earlier batch, is the crossing, though the day had 30 sends already.
    resumed = T0 + 3 * HOUR
    log = [(f"morning{i}", T0 + i * M, "delivered") for i in range(30)]
    log += [("complaint", resumed + M, "complained")]
    log += [(f"after{i}", resumed + (2 + i) * M, "delivered") for i in range(9)]
    cuts, watermarks = [30, 31, 40], [T0, resumed, resumed]
    noted = list(note(Watch((), (), (resumed,)), log, cuts, watermarks).values())
    suspended = Suspended(at=resumed + HOUR, until=resumed + 25 * HOUR, reason="spike")
    after = WarmupState(status="suspended", judged_since=resumed)
    assert found_in(noted, sought(suspended, after)) == "after8"


def test_what_a_warming_ip_watches() -> None:
    schedule = Schedule(
        name="tiny",
        days=(
            ScheduleDay(day=1, daily_limit=10, hourly_limit=5),
            ScheduleDay(day=2, daily_limit=20, hourly_limit=8),
            ScheduleDay(day=3, daily_limit=40, hourly_limit=12),
            ScheduleDay(day=4, daily_limit=80, hourly_limit=20),
            ScheduleDay(day=5, daily_limit=-1, hourly_limit=-1),
        ),
    )
    today = T0.date()
    warming = WarmupState(
        status="warming", schedule="tiny", day=2, judged_since=T0, closed_until=T0
    )
    # Its sends of today and tomorrow: the day before (a resume), its day, the next (advance).
    assert watch(warming, schedule, RULES, today) == Watch((10, 20, 40), (5, 8, 12), (T0,))
    # A backlog two days ahead of its watermark: one more day each way per day ahead.
    assert watch(warming, schedule, RULES, today + timedelta(days=1)).daily == (10, 20, 40, 80)
    suspended = warming.model_copy(
        update={"status": "suspended", "day": 3, "suspended_until": T0 + 24 * HOUR}
    )
    # It resumes one day back, on day 2, at the end of its suspension.
    assert watch(suspended, schedule, RULES, today) == Watch(
        (10, 20, 40), (5, 8, 12), (T0 + 24 * HOUR,)
    )
    assert watch(WarmupState(), schedule, RULES, today) is None  # a command starts it
    active = WarmupState(
        status="active", schedule="tiny", day=5, warmed_at=T0, finished="completed"
    )
    watching = watch(active, schedule, RULES, today)
    assert watching is not None and watching.from_hour == hour_start(T0 + RULES.idle_period)


# ---- the property: any batching notes what the whole log in order says -------------------------

# Complaints often, or seldom (then the spike check turns on its minimum count alone).
OUTCOMES = [
    st.sampled_from(["delivered", "delivered", "delivered", "complained", "bounced", "dropped"]),
    st.sampled_from(["delivered"] * 12 + ["complained", "bounced", "dropped"]),
]


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[BatchSend], list[int], timedelta]:
    """A log of one IP's sends over two UTC days, roughly in event-time order with some sends
    read early or late, a batching of it, and the lateness its clock allows (the longer, the
    more sends are read ahead of the hour being judged)."""
    n = draw(st.integers(min_value=1, max_value=120))
    minutes = sorted(draw(st.lists(st.integers(0, 36 * 60), min_size=n, max_size=n)))
    for _ in range(draw(st.integers(0, n))):
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        if abs(minutes[i] - minutes[j]) <= 90:
            minutes[i], minutes[j] = minutes[j], minutes[i]
    outcome = draw(st.sampled_from(OUTCOMES))
    log = [(f"s{k}", T0 - 9 * HOUR + m * M, draw(outcome)) for k, m in enumerate(minutes)]
    cuts = sorted(set(draw(st.lists(st.integers(1, n), max_size=8))) | {n})
    lateness = draw(st.sampled_from([5, 30, 90])) * M
    return log, cuts, lateness


def watermarks_of(
    log: Sequence[BatchSend], cuts: Sequence[int], lateness: timedelta
) -> list[datetime]:
    """Each batch's watermark: the IP's clock before it (the latest time read), less lateness."""
    watermarks, latest = [], log[0][1]
    for start in [0, *cuts[:-1]]:
        latest = max([latest, *(at for _, at, _ in log[:start])])
        watermarks.append(hour_start(latest - lateness))
    return watermarks


def in_window(log: Sequence[BatchSend], start: datetime, end: datetime) -> list[BatchSend]:
    return [s for s in log if s[2] != "dropped" and start <= hour_start(as_utc(s[1])) < end]


def straightforward(c: Crossing, hour: datetime, log: Sequence[BatchSend]) -> str | None:
    """The crossing of `c`'s threshold for the window judged at `hour`, from the whole log."""
    inside = in_window(log, c.window_start, hour + HOUR)
    if c.threshold != "complaint_spike":
        return inside[c.reached - 1][0] if len(inside) >= c.reached else None
    running = OutcomeCounts()
    for event_id, _, outcome in inside:
        running = running + OutcomeCounts.of({outcome: 1})
        if complaint_spike(running, RULES) is not None:
            return event_id
    return None


@settings(max_examples=400, deadline=None)
@given(logs(), st.sampled_from(["all", "daily", "hourly", "spike"]), st.booleans())
def test_any_batching_notes_the_crossings_of_the_log_read_in_order(
    drawn: tuple[list[BatchSend], list[int], timedelta], kind: str, limits_judged: bool
) -> None:
    log, cuts, lateness = drawn
    watermarks = watermarks_of(log, cuts, lateness)
    first_day = day_start((T0 - 9 * HOUR).date())
    # Each kind of threshold alone too: the cheap bound that skips most IPs must not hide one
    # kind's crossing behind another's.
    daily, hourly, phases = (3, 7, 20, 50), (2, 5, 9), (first_day, first_day + 30 * HOUR)
    watching = {
        "all": Watch(daily, hourly, phases),
        "daily": Watch(daily, (), ()),
        "hourly": Watch((), hourly, ()),
        "spike": Watch((), (), phases),
    }[kind]
    noted = note(watching, log, cuts, watermarks, limits_judged)

    # Every note is the straightforward crossing, for every hour it holds for.
    for c in noted.values():
        hour = c.first_hour
        while hour <= c.last_hour:
            assert straightforward(c, hour, log) == c.event_id, (c, hour)
            hour += HOUR

    # And every crossing a decision can look for is noted: each threshold reached in a window
    # judged at an hour no earlier than the clock of the batch that read its crossing send.
    position = {event_id: k for k, (event_id, _, _) in enumerate(log)}
    batch_of = [next(b for b, end in enumerate(cuts) if k < end) for k in range(len(log))]
    for day in {hour_start(at).date() for _, at, _ in log}:
        for h in range(24):
            hour = day_start(day) + h * HOUR
            windows = [("daily_limit", day_start(day), watching.daily)]
            windows.append(("hourly_limit", hour, watching.hourly))
            for phase in watching.phases:
                if max(day_start(day), phase) <= hour:
                    windows.append(("complaint_spike", max(day_start(day), phase), (0,)))
            for threshold, start, values in windows:
                for value in values:
                    probe = Crossing(threshold, start, value, hour, hour, "?")  # type: ignore[arg-type]
                    expected = straightforward(probe, hour, log)
                    if expected is None:
                        continue
                    judged_from = watermarks[batch_of[position[expected]]]
                    if limits_judged and threshold != "complaint_spike":
                        # Its hour's limits were checked with the batch that read it.
                        judged_from += HOUR
                    if hour < judged_from:
                        continue  # judged before the send was read: no decision looks there
                    got = found_in(list(noted.values()), (threshold, start, value, hour))  # type: ignore[arg-type]
                    assert got == expected, (threshold, start, value, hour)


# ---- the cheap bound for the IPs a batch leaves as they stand ------------------------------


TINY = Schedule(
    name="tiny",
    days=(
        ScheduleDay(day=1, daily_limit=10, hourly_limit=5),
        ScheduleDay(day=2, daily_limit=20, hourly_limit=8),
        ScheduleDay(day=3, daily_limit=-1, hourly_limit=-1),
    ),
)


def test_counts_below_the_first_days_limits_and_the_spike_minimum_cross_nothing() -> None:
    rules = WarmupRules(suspend_min_sends=10)
    assert below_every_threshold(TINY, rules, [9, 3], [4, 4, 1])
    # A day at the first day's daily limit (and the spike minimum), or an hour at its hourly.
    assert not below_every_threshold(TINY, rules, [10], [4])
    assert not below_every_threshold(TINY, rules, [6], [5])
    # A spike minimum under the daily limit is the day's bound.
    assert not below_every_threshold(TINY, WarmupRules(suspend_min_sends=6), [6], [1])
    assert below_every_threshold(TINY, WarmupRules(suspend_min_sends=6), [5], [1])


def test_a_schedule_without_hourly_limits_bounds_only_the_day() -> None:
    no_hourly = Schedule(
        name="flat",
        days=(
            ScheduleDay(day=1, daily_limit=30, hourly_limit=-1),
            ScheduleDay(day=2, daily_limit=-1, hourly_limit=-1),
        ),
    )
    rules = WarmupRules(suspend_min_sends=50)
    assert below_every_threshold(no_hourly, rules, [29], [29])
    assert not below_every_threshold(no_hourly, rules, [30], [1])


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    """A schedule of 1-4 limited days, limits never decreasing, maybe an unlimited last day."""
    n = draw(st.integers(1, 4))
    daily = sorted(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)))
    # Each day's own draw up to its daily limit, raised to the days' before: never decreasing,
    # and never above its daily limit (those before are at most theirs, which are lower).
    hourly: list[int] = []
    for d in daily:
        hourly.append(max([draw(st.integers(1, d)), *hourly[-1:]]))
    days = [
        ScheduleDay(day=k + 1, daily_limit=d, hourly_limit=h)
        for k, (d, h) in enumerate(zip(daily, hourly, strict=True))
    ]
    if draw(st.booleans()):
        days.append(ScheduleDay(day=n + 1, daily_limit=-1, hourly_limit=-1))
    return Schedule(name="drawn", days=tuple(days))


@settings(max_examples=400, deadline=None)
@given(logs(), schedules(), st.data(), st.sampled_from([3, 10, 40]), st.booleans())
def test_the_bound_never_hides_what_may_cross_would_look_at(
    drawn: tuple[list[BatchSend], list[int], timedelta],
    schedule: Schedule,
    data: st.DataObject,
    min_sends: int,
    limits_judged: bool,
) -> None:
    """Whatever a watch on the schedule looks for (any of its days' limits, any phases), a
    batch whose totals are below every threshold of the schedule cannot hold a crossing."""
    log, cuts, lateness = drawn
    rules = WarmupRules(suspend_min_sends=min_sends)
    limited = [d for d in schedule.days if not d.unlimited]
    chosen = data.draw(st.lists(st.sampled_from(limited), unique_by=lambda d: d.day))
    first_day = day_start((T0 - 9 * HOUR).date())
    phases = data.draw(st.lists(st.sampled_from([first_day, first_day + 30 * HOUR]), unique=True))
    watching = Watch(
        tuple(sorted({d.daily_limit for d in chosen})),
        tuple(sorted({d.hourly_limit for d in chosen})),
        tuple(sorted(phases)),
    )
    for start, end, watermark in zip(
        [0, *cuts[:-1]], cuts, watermarks_of(log, cuts, lateness), strict=True
    ):
        batch = counters(log[start:end])
        totals = BatchTotals.of(counters(log[:end]), batch, watermark)
        if below_every_threshold(
            schedule, rules, totals.day_sent.values(), totals.hour_sent.values()
        ):
            assert not may_cross(
                watching, watermark, batch, totals, rules, limits_judged=limits_judged
            )
