"""Each event shows the IP as of its own transition: whatever was read after it, and however
the sends were batched, its data is the same."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.warmup.domain.catch_up import catch_up, render_as_of, sent_as_of
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.schedules import load_schedules
from services.warmup.domain.send_counts import Send, SendCounters, tally
from services.warmup.domain.state import WarmupState
from services.warmup.domain.transitions import Advanced, DailyLimitReached, HourlyLimitReached
from services.warmup.domain.warmup_day import start
from shared.contract.events import WarmupView

RULES = WarmupRules()
TEST3 = load_schedules(None)["test-3"]  # day 1: 10 a day, 5 an hour; day 2: 20 and 10
T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
H = timedelta(hours=1)


def sends(hours: dict[int, int], day: int = 0) -> SendCounters:
    """`hours[h]` delivered sends in hour h of day `day` (of 2026-01-05)."""
    at = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=day)
    return SendCounters.from_tally(
        tally(Send("ip", at + h * H, "delivered") for h, n in hours.items() for _ in range(n)),
        "ip",
    )


def started() -> WarmupState:
    return start(WarmupState(), TEST3, T0, "earned").state


def test_a_limit_shows_the_count_that_reached_it_not_what_was_read_after() -> None:
    daily = DailyLimitReached(on=date(2026, 1, 5), day=1, limit=10, at=T0 + 2 * H)
    hourly = HourlyLimitReached(hour=T0 + 2 * H, day=1, limit=5)
    read_then = sends({9: 4, 10: 6})
    read_later = sends({9: 4, 10: 9, 11: 3})
    for counters in (read_then, read_later):
        assert sent_as_of(daily, counters) == 10
        # The day's sends before the hour (4) and the hour's limit.
        assert sent_as_of(hourly, counters) == 4 + 5


def test_a_day_closing_shows_the_new_day_before_any_of_its_sends() -> None:
    advanced = Advanced(on=date(2026, 1, 5), day_from=1, day_to=2)
    counters = sends({9: 5, 10: 5}).merge(sends({0: 7, 3: 2}, day=1))
    assert sent_as_of(advanced, counters) == 0


def test_every_event_of_a_catch_up_renders_as_the_contract_view() -> None:
    counters = sends({9: 6, 10: 6}).merge(sends({9: 12}, day=1))
    step = catch_up(started(), TEST3, RULES, counters, datetime(2026, 1, 6, 12, tzinfo=UTC))
    kinds = {type(t).__name__ for t, _ in step.moments()}
    assert {"HourlyLimitReached", "DailyLimitReached", "Advanced"} <= kinds
    for transition, after in step.moments():
        shown = render_as_of(transition, after, TEST3, RULES, counters, {})
        view = WarmupView.model_validate(shown.view)
        assert view.sent_today == sent_as_of(transition, counters)
        if isinstance(transition, Advanced):
            assert view.day == transition.day_to


@settings(max_examples=60, deadline=None)
@given(
    per_hour=st.lists(st.integers(min_value=0, max_value=9), min_size=24, max_size=24),
    split=st.integers(min_value=9, max_value=34),
)
def test_the_events_are_the_same_however_far_the_sends_had_been_read(
    per_hour: list[int], split: int
) -> None:
    """One day and a half of sends, judged once at the end, or first at hour `split` (with
    only the sends read by then) and then at the end: the same events, the same data."""
    everything = sends(dict(enumerate(per_hour))).merge(sends({h: 3 for h in range(12)}, day=1))
    cut = datetime(2026, 1, 5, tzinfo=UTC) + split * H
    partial = SendCounters(
        {at: counts for at, counts in everything if at < cut}  # what was read by then
    )
    end = datetime(2026, 1, 6, 12, tzinfo=UTC)

    def events(steps: list[tuple[SendCounters, datetime]]) -> list[tuple[str, dict[str, object]]]:
        state, out = started(), []
        for counters, now in steps:
            step = catch_up(state, TEST3, RULES, counters, now)
            for transition, after in step.moments():
                shown = render_as_of(transition, after, TEST3, RULES, counters, {})
                out.append((transition.key, shown.view))
            state = step.state
        return out

    at_once = events([(everything, end)])
    in_two = events([(partial, cut), (everything, end)])
    assert in_two == at_once
