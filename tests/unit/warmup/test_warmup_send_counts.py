"""Counting sends by IP, UTC day, UTC hour and outcome."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.warmup.domain.catch_up import counters_by_ip, wide_rows
from services.warmup.domain.event_time import hour_start
from services.warmup.domain.send_counts import (
    OUTCOMES,
    ZERO,
    OutcomeCounts,
    Send,
    SendCounters,
    merge_tallies,
    tally,
)
from shared.contract.events import Outcome as ContractOutcome

IP = "198.51.100.7"
OTHER = "198.51.100.8"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_outcomes_are_the_contracts() -> None:
    assert set(OUTCOMES) == set(get_args(ContractOutcome))


def test_tally_buckets_by_ip_utc_day_hour_and_outcome() -> None:
    plus_five = timezone(timedelta(hours=5))
    sends = [
        Send(IP, at(23, 10, 5), "delivered"),
        Send(IP, at(23, 10, 59), "delivered"),
        Send(IP, at(23, 11, 0), "bounced"),
        Send(OTHER, at(23, 10, 1), "complained"),
        # 02:30 at +05:00 is 21:30 UTC the day before.
        Send(IP, datetime(2026, 11, 24, 2, 30, tzinfo=plus_five), "dropped"),
    ]
    assert tally(sends) == {
        (IP, date(2026, 11, 23), 10, "delivered"): 2,
        (IP, date(2026, 11, 23), 11, "bounced"): 1,
        (OTHER, date(2026, 11, 23), 10, "complained"): 1,
        (IP, date(2026, 11, 23), 21, "dropped"): 1,
    }


def test_tally_refuses_naive_times_and_unknown_outcomes() -> None:
    with pytest.raises(ValueError, match="timezone"):
        tally([Send(IP, datetime(2026, 11, 23, 10), "delivered")])
    with pytest.raises(ValueError, match="unknown outcome"):
        tally([Send(IP, at(23, 10), "opened")])  # type: ignore[arg-type]


def test_merging_tallies_adds_them() -> None:
    a = tally([Send(IP, at(23, 10), "delivered")])
    b = tally([Send(IP, at(23, 10), "delivered"), Send(IP, at(23, 12), "deferred")])
    assert merge_tallies(a, b) == {
        (IP, date(2026, 11, 23), 10, "delivered"): 2,
        (IP, date(2026, 11, 23), 12, "deferred"): 1,
    }


def test_outcome_counts_measures() -> None:
    counts = OutcomeCounts(delivered=900, deferred=40, bounced=50, complained=10, dropped=500)
    assert counts.sent == 1000  # dropped never left the IP
    assert counts.accepted == 910  # complained mail was delivered first
    assert counts.bounce_rate == pytest.approx(0.05)
    assert counts.complaint_rate == pytest.approx(10 / 910)
    assert counts + counts == OutcomeCounts(1800, 80, 100, 20, 1000)
    assert ZERO.bounce_rate == 0.0 and ZERO.complaint_rate == 0.0
    assert OutcomeCounts.of({"delivered": 3}) == OutcomeCounts(delivered=3)
    with pytest.raises(ValueError):
        OutcomeCounts.of({"opened": 1})


def test_send_counters_read_one_ip_by_hour_day_and_window() -> None:
    counts = tally(
        [
            Send(IP, at(23, 10), "delivered"),
            Send(IP, at(23, 10, 30), "bounced"),
            Send(IP, at(23, 23, 59), "delivered"),
            Send(IP, at(24, 0, 0), "complained"),
            Send(OTHER, at(23, 10), "delivered"),
        ]
    )
    counters = SendCounters.from_tally(counts, IP)
    assert counters.hour(at(23, 10, 45)) == OutcomeCounts(delivered=1, bounced=1)
    assert counters.day(date(2026, 11, 23)) == OutcomeCounts(delivered=2, bounced=1)
    assert counters.between(at(23, 11), at(24, 1)) == OutcomeCounts(delivered=1, complained=1)
    assert counters.dates(date(2026, 11, 23), date(2026, 11, 24)).sent == 4
    assert counters.next_hour_with_sends(at(23, 11)) == at(23, 23)
    assert counters.next_hour_with_sends(at(24, 1)) is None


def test_send_counters_from_rows_equal_from_tally_and_merge_adds() -> None:
    rows = [(date(2026, 11, 23), 10, "delivered", 2), (date(2026, 11, 23), 10, "bounced", 1)]
    from_rows = SendCounters.from_rows(rows)
    from_tally = SendCounters.from_tally(
        tally(
            [
                Send(IP, at(23, 10), "delivered"),
                Send(IP, at(23, 10, 1), "delivered"),
                Send(IP, at(23, 10, 2), "bounced"),
            ]
        ),
        IP,
    )
    assert from_rows == from_tally
    assert from_rows.merge(from_rows).hour(at(23, 10)) == OutcomeCounts(delivered=4, bounced=2)
    assert from_rows != SendCounters()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 72), st.sampled_from(["delivered", "bounced", "dropped"])),
        max_size=60,
    ),
    st.integers(0, 72 * 60),
    st.integers(0, 30 * 60),
)
def test_between_is_the_sum_of_the_hours_in_the_range(
    sends: list[tuple[int, str]], start_minute: int, length_minutes: int
) -> None:
    """`between` takes a day's running totals within one UTC day: the same as adding up the
    hours begun in the range, whatever the range."""
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    counters = SendCounters.from_tally(
        tally(Send("192.0.2.9", t0 + timedelta(hours=h), o) for h, o in sends),  # type: ignore[arg-type]
        "192.0.2.9",
    )
    start = t0 + timedelta(minutes=start_minute)
    end = start + timedelta(minutes=length_minutes)
    expected = ZERO
    for at, counts in counters:
        if hour_start(start) <= at < end:
            expected = expected + counts
    assert counters.between(start, end) == expected


SENDS = st.lists(
    st.tuples(
        st.sampled_from(("192.0.2.1", "192.0.2.2", "192.0.2.3")),
        st.integers(0, 96 * 60),
        st.sampled_from(OUTCOMES),
    ),
    max_size=60,
)


@given(SENDS)
def test_a_tally_stored_as_rows_reads_back_as_each_ips_own_counters(
    sends: list[tuple[str, int, str]],
) -> None:
    """A batch's tally as counter rows (`wide_rows`, what is upserted) and back as each IP's
    counters (`counters_by_ip`, what the batch's own part is judged with, and what is read
    back from the table) equals `from_tally` of each IP, for exactly the IPs that sent."""
    t0 = datetime(2026, 1, 5, 22, tzinfo=UTC)
    counts = tally(Send(ip, t0 + timedelta(minutes=m), o) for ip, m, o in sends)  # type: ignore[arg-type]

    split = counters_by_ip(wide_rows(counts))

    assert set(split) == {ip for ip, _, _ in sends}
    for ip, counters in split.items():
        assert counters == SendCounters.from_tally(counts, ip)
        assert list(counters) == list(SendCounters.from_tally(counts, ip))


@given(SENDS, st.integers(-120, 100 * 60))
def test_next_hour_with_sends_is_the_earliest_sending_hour_not_before(
    sends: list[tuple[str, int, str]], after_minute: int
) -> None:
    """The sorted search gives what a scan of every hour gives; a dropped-only hour does
    not count as sending, and asking twice gives the same answer."""
    t0 = datetime(2026, 1, 5, 22, tzinfo=UTC)
    counters = SendCounters.from_tally(
        tally(Send(IP, t0 + timedelta(minutes=m), o) for _, m, o in sends),  # type: ignore[arg-type]
        IP,
    )
    after = t0 + timedelta(minutes=after_minute)
    sending = [at for at, c in counters if at >= hour_start(after) and c.sent > 0]

    expected = min(sending) if sending else None
    assert counters.next_hour_with_sends(after) == expected
    assert counters.next_hour_with_sends(after) == expected


@given(SENDS, st.integers(-120, 100 * 60))
def test_last_hour_with_sends_before_is_the_latest_sending_hour_before(
    sends: list[tuple[str, int, str]], before_minute: int
) -> None:
    """The sorted search gives what a scan of every hour gives: hours before the hour of
    `before`, a dropped-only hour not counting as sending."""
    t0 = datetime(2026, 1, 5, 22, tzinfo=UTC)
    counters = SendCounters.from_tally(
        tally(Send(IP, t0 + timedelta(minutes=m), o) for _, m, o in sends),  # type: ignore[arg-type]
        IP,
    )
    before = t0 + timedelta(minutes=before_minute)
    sending = [at for at, c in counters if at < hour_start(before) and c.sent > 0]

    assert counters.last_hour_with_sends_before(before) == (max(sending) if sending else None)
    # Both searches share one sorted list, built once.
    counters.next_hour_with_sends(t0)
    assert counters.last_hour_with_sends_before(before) == (max(sending) if sending else None)
