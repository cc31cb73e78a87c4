"""Bringing one IP up to date: the decision the send.recorded batches and the close-days
sweep both make, so that either one, whichever comes first, decides the same things; and
the IP's view as `ip_warmup_views` and every `ip.state_changed` show it.

    now   = latest event time seen - allowed lateness            (`decision_time`)
    step  = sweep(state, schedule, rules, counters, now)         `catch_up`: closes hours, days
    view  = warmup_view(step.state, schedule, counters, now)     `render`: the contract's
    score = reputation_score(outcomes over the score window)       `warmup` and the score
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.warmup.domain.event_time import hour_of, hour_start
from services.warmup.domain.reputation import reputation_score, score_window
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import Schedule
from services.warmup.domain.send_counts import OUTCOMES, OutcomeCounts, SendCounters, TallyKey
from services.warmup.domain.state import Step, WarmupState
from services.warmup.domain.sweep import sweep
from services.warmup.domain.transitions import DailyLimitReached, HourlyLimitReached, Transition
from services.warmup.domain.view import warmup_view

# Why a stopped warm-up stopped, by the provisioner's event that stopped it.
STOPPED = {
    "ip.cooldown_started": "stopped: the IP is in cooldown before release",
    "ip.released": "stopped: the IP is released",
}


def decision_time(latest: datetime, lateness: timedelta) -> datetime:
    """The event time up to which hours and days may be judged: the latest event time seen,
    less the allowed lateness (sends that late still count toward their hour)."""
    return latest - lateness


def catch_up(
    state: WarmupState,
    schedule: Schedule | None,
    rules: WarmupRules,
    counters: SendCounters,
    now: datetime,
    stopped_by: str | None = None,
) -> Step:
    """Close what `now` allows: nothing for a stopped warm-up, or one whose schedule is not
    loaded. `counters` holds the IP's sends from `state.current_date` on."""
    if schedule is None or stopped_by is not None:
        return Step(state)
    return sweep(state, schedule, rules, counters, now)


@dataclass(frozen=True, slots=True)
class Rendered:
    view: dict[str, Any]  # the contract's `warmup` object, JSON-ready
    score: int


def render(
    state: WarmupState,
    schedule: Schedule | None,
    counters: SendCounters,
    window: OutcomeCounts,
    now: datetime,
    stopped_by: str | None = None,
    sent_today: int | None = None,
) -> Rendered:
    """The IP's `warmup` view at `now` (`counters` must hold the UTC day of `now`) and its
    reputation score over `window`, the outcomes of the score window."""
    if schedule is not None and state.schedule not in (None, schedule.name):
        schedule = None  # never render another schedule's days
    view = warmup_view(state, schedule, counters, now, sent_today)
    if stopped_by is not None:
        view["hold_reason"] = STOPPED.get(stopped_by, f"stopped: {stopped_by}")
    return Rendered(view, reputation_score(window))


def sent_as_of(transition: Transition, counters: SendCounters) -> int:
    """The day's sends at the moment of `transition`, whatever was read after it.

    A transition at an hour boundary (a day closing, a suspension, a resume, a start, read
    at the start of its hour) shows the sends of the day's complete hours before it. A limit
    shows the count that reached it: the daily limit itself, or the day's sends before the
    hour plus the hourly limit. So an event's data never depends on how far its partition
    had been read when it was decided (a backlog, a replay, another batch size)."""
    if isinstance(transition, DailyLimitReached):
        return transition.limit
    before = counters.day_before(transition.at).sent
    if isinstance(transition, HourlyLimitReached):
        return before + transition.limit
    return before


def render_as_of(
    transition: Transition,
    state: WarmupState,
    schedule: Schedule | None,
    rules: WarmupRules,
    counters: SendCounters,
    daily: Mapping[date, OutcomeCounts],
    stopped_by: str | None = None,
) -> Rendered:
    """The IP's view as its event for `transition` shows it: `state` right after the
    transition, the day's sends as of that moment (`sent_as_of`) and the score over the
    window's days before it plus the complete hours of its own day. `daily` holds the IP's
    outcome totals per UTC day (at least the score window's); `counters` the transition's
    day."""
    cut = hour_start(transition.at)
    first, last = score_window(cut, rules)
    window = sum((c for d, c in daily.items() if first <= d < last), start=OutcomeCounts())
    window = window + counters.day_before(cut)
    shown = render(
        state,
        schedule,
        counters,
        window,
        transition.at,
        stopped_by,
        sent_as_of(transition, counters),
    )
    return shown


# (ip, day, hour, delivered, deferred, bounced, complained, dropped): a counter table row.
WideRow = tuple[str, Any, int, int, int, int, int, int]


def wide_rows(increments: Mapping[TallyKey, int]) -> list[WideRow]:
    """A tally as (ip, day, hour, delivered, deferred, bounced, complained, dropped) rows:
    one row per IP and UTC hour, sorted, as the counter table stores them."""
    rows: dict[tuple[str, Any, int], list[int]] = {}
    index = {outcome: i for i, outcome in enumerate(OUTCOMES)}
    for (ip, day, hour, outcome), n in increments.items():
        rows.setdefault((ip, day, hour), [0] * len(OUTCOMES))[index[outcome]] += n
    return [(ip, day, hour, *counts) for (ip, day, hour), counts in sorted(rows.items())]


def counters_by_ip(
    rows: Iterable[Sequence[Any]],
) -> dict[str, SendCounters]:
    """Each IP's SendCounters from (ip, day, hour, delivered, deferred, bounced, complained,
    dropped) rows, one row per IP and UTC hour: as `wide_rows` gives them and the counter
    table stores them. Read by position: at 10,000 IPs a batch reads some 100,000 rows."""
    per_ip: dict[str, dict[datetime, OutcomeCounts]] = {}
    for ip, day, hour, *counts in rows:
        hours = per_ip.get(ip)
        if hours is None:
            hours = per_ip[ip] = {}
        hours[hour_of(day, hour)] = OutcomeCounts(*counts)
    return {ip: SendCounters.of_hours(hours) for ip, hours in per_ip.items()}
