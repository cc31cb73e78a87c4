"""Attributing a batch of sends to IPs: counted (tallied), unknown, or another account's."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.warmup.domain.attribution import BatchTally, Owner, RecordedSend, attribute
from services.warmup.domain.crossings import in_hours
from services.warmup.domain.send_counts import Send, tally

T = datetime(2026, 1, 5, 23, 50, tzinfo=UTC)
OWNERS = {"198.51.100.1": Owner("ip_a", "acct_a"), "198.51.100.2": Owner("ip_b", "acct_b")}


def sent(account: str, address: str, minutes: int = 0, outcome: str = "delivered") -> RecordedSend:
    return (f"ev-{next(_ids)}", account, address, T + timedelta(minutes=minutes), outcome)


_ids = itertools.count()


def test_sends_on_our_ips_are_tallied_against_the_ip_id_as_tally_would() -> None:
    batch = [
        sent("acct_a", "198.51.100.1"),
        sent("acct_b", "198.51.100.2", 5, "bounced"),
        sent("acct_a", "198.51.100.1", 15),  # the next UTC day
        sent("acct_a", "198.51.100.1", 1),
    ]
    result = attribute(batch, OWNERS)
    assert dict(result.counted) == tally(
        [
            Send("ip_a", T, "delivered"),
            Send("ip_b", T + timedelta(minutes=5), "bounced"),
            Send("ip_a", T + timedelta(minutes=15), "delivered"),
            Send("ip_a", T + timedelta(minutes=1), "delivered"),
        ]
    )
    assert result.counted[("ip_a", date(2026, 1, 5), 23, "delivered")] == 2
    assert result.unknown == {} and result.foreign == []


def test_another_accounts_send_is_refused_by_position_and_not_counted() -> None:
    batch = [
        sent("acct_a", "198.51.100.1"),
        sent("acct_b", "198.51.100.1"),  # acct_b names acct_a's IP
        sent("acct_a", "198.51.100.2"),
    ]
    result = attribute(batch, OWNERS)
    assert result.foreign == [1, 2]
    assert dict(result.counted) == {("ip_a", date(2026, 1, 5), 23, "delivered"): 1}


def test_unknown_addresses_are_tallied_per_address_and_utc_day() -> None:
    batch = [
        sent("acct_x", "192.0.2.9", 0),
        sent("acct_x", "192.0.2.9", 5),
        sent("acct_y", "192.0.2.9", 15),  # 00:05 the next UTC day
        sent("acct_x", "192.0.2.8", 1, "dropped"),
    ]
    result = attribute(batch, OWNERS)
    assert not result.counted and result.foreign == []
    assert {k: v.n for k, v in result.unknown.items()} == {
        ("192.0.2.9", date(2026, 1, 5)): 2,
        ("192.0.2.9", date(2026, 1, 6)): 1,
        ("192.0.2.8", date(2026, 1, 5)): 1,
    }
    first_day = result.unknown[("192.0.2.9", date(2026, 1, 5))]
    assert (first_day.first_seen, first_day.last_seen) == (T, T + timedelta(minutes=5))


def test_the_cause_of_an_ips_decisions_is_its_latest_send_in_event_time() -> None:
    batch = [
        sent("acct_a", "198.51.100.1", 5),
        sent("acct_a", "198.51.100.1", 9),
        sent("acct_a", "198.51.100.1", 2),  # late: not the latest
        sent("acct_b", "198.51.100.2", 0),
        sent("acct_b", "198.51.100.1", 30),  # refused: not a cause
    ]
    assert attribute(batch, OWNERS).latest == {"ip_a": 1, "ip_b": 3}


def test_an_unknown_outcome_is_refused_as_tally_refuses_it() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        attribute([sent("acct_a", "198.51.100.1", outcome="lost")], OWNERS)


def test_sends_are_bucketed_by_the_utc_hour_whatever_the_zone_they_are_written_in() -> None:
    from collections import Counter
    from zoneinfo import ZoneInfo

    from services.warmup.domain.send_counts import count_send

    counts: Counter[tuple[str, date, int, str]] = Counter()
    london_winter = datetime(2026, 1, 5, 23, 30, tzinfo=ZoneInfo("Europe/London"))  # +00:00
    london_summer = datetime(2026, 7, 5, 0, 30, tzinfo=ZoneInfo("Europe/London"))  # +01:00
    for moment in (
        london_winter,
        london_summer,
        datetime(2026, 1, 6, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 5, 23, 30, tzinfo=UTC),
    ):
        count_send(counts, "ip", moment, "delivered")
    assert counts == {
        ("ip", date(2026, 1, 5), 23, "delivered"): 3,
        ("ip", date(2026, 7, 4), 23, "delivered"): 1,
    }
    with pytest.raises(ValueError, match="no timezone"):
        count_send(counts, "ip", datetime(2026, 1, 5, 9), "delivered")


_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["acct_a", "acct_b", "acct_x"]),
            st.sampled_from(["198.51.100.1", "198.51.100.2", "192.0.2.9"]),
            st.integers(-3000, 3000),
            st.sampled_from(_ZONES),
            st.sampled_from(["delivered", "deferred", "bounced", "complained", "dropped"]),
        ),
        max_size=60,
    )
)
def test_each_ips_sends_come_out_as_in_hours_puts_the_ips_own_sends(draws: list) -> None:
    """The pass that tallies also gives each IP's sends as the crossings take them: the
    straightforward definition is `in_hours` of the IP's own sends, in the order read."""
    batch = [
        (f"ev-{n}", account, address, (T + timedelta(minutes=m)).astimezone(zone), outcome)
        for n, (account, address, m, zone, outcome) in enumerate(draws)
    ]
    result = attribute(batch, OWNERS)
    for address, owner in OWNERS.items():
        own = [
            (event_id, at, outcome)
            for event_id, account, addr, at, outcome in batch
            if addr == address and account == owner.account_id
        ]
        assert result.sends.get(owner.ip_id, []) == in_hours(own)
        for _, hour, _ in result.sends.get(owner.ip_id, []):
            assert hour.utcoffset() == timedelta(0) and hour.minute == hour.second == 0
    assert set(result.sends) <= {o.ip_id for o in OWNERS.values()}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["acct_a", "acct_b", "acct_x"]),
            st.sampled_from(["198.51.100.1", "198.51.100.2", "192.0.2.9", "192.0.2.8"]),
            st.integers(-3000, 3000),
            st.sampled_from(_ZONES),
            st.sampled_from(["delivered", "deferred", "bounced", "complained", "dropped"]),
        ),
        max_size=80,
    ),
    st.lists(st.integers(0, 80), max_size=6),
)
def test_a_batch_tallied_part_by_part_is_attributed_as_in_one_go(
    draws: list, cuts: list[int]
) -> None:
    """BatchTally, fed the batch in any parts, attributes it exactly as `attribute` does
    over the whole batch: counted, causes (positions in the whole batch), each IP's sends,
    unknown sends per address and day, foreign positions."""
    batch = [
        (f"ev-{n}", account, address, (T + timedelta(minutes=m)).astimezone(zone), outcome)
        for n, (account, address, m, zone, outcome) in enumerate(draws)
    ]
    bounds = sorted({0, len(batch), *(min(c, len(batch)) for c in cuts)})
    tallied = BatchTally()
    for start, end in itertools.pairwise(bounds):
        tallied.add(batch[start:end])

    expected = attribute(batch, OWNERS)
    result = tallied.attribute(OWNERS, lambda: batch)

    assert tallied.addresses == {address for _, _, address, _, _ in batch}
    assert result.counted == expected.counted
    assert result.latest == expected.latest
    assert result.sends == expected.sends
    assert result.unknown == expected.unknown
    assert result.foreign == expected.foreign


def test_a_tallied_batch_walks_the_sends_again_only_for_unknown_or_foreign_ones() -> None:
    batch = [sent("acct_a", "198.51.100.1"), sent("acct_b", "198.51.100.2", 5)]
    tallied = BatchTally()
    tallied.add(batch)

    def again() -> list[RecordedSend]:
        raise AssertionError("walked again")

    assert tallied.attribute(OWNERS, again).latest == {"ip_a": 0, "ip_b": 1}
    with pytest.raises(ValueError, match="unknown outcome"):
        lost = BatchTally()
        lost.add([sent("acct_a", "198.51.100.1", outcome="lost")])
        lost.attribute(OWNERS, lambda: [])
