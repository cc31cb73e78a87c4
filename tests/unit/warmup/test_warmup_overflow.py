"""Overflow of limit events, and which send crossed a limit or the complaint-spike threshold.
Pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.warmup.domain.daily_limit import BatchSend, crossing_send
from services.warmup.domain.overflow import KnownPool, Overflow, choose_overflow
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.send_counts import Send, SendCounters, tally
from services.warmup.domain.suspension import spike_send
from services.warmup.domain.transitions import DailyLimitReached, HourlyLimitReached, Suspended

IP = "ip_1"


def pool(name: str, *ips: str, default: bool = False) -> KnownPool:
    return KnownPool(name, default, ips)


def test_a_pool_of_the_ip_with_another_active_ip_comes_first() -> None:
    pools = [pool("marketing", "ip_2", default=True), pool("tx", IP, "ip_3")]
    assert choose_overflow(IP, pools, {"ip_2", "ip_3"}) == Overflow("tx", "own_pool")


def test_own_pools_in_creation_order() -> None:
    pools = [pool("a", IP, "ip_2"), pool("b", IP, "ip_3")]
    assert choose_overflow(IP, pools, {"ip_2", "ip_3"}).pool == "a"
    assert choose_overflow(IP, pools, {"ip_3"}).pool == "b"


def test_the_default_pool_when_no_own_pool_has_another_active_ip() -> None:
    pools = [pool("tx", IP, "ip_3"), pool("marketing", "ip_2", default=True)]
    assert choose_overflow(IP, pools, {"ip_2"}) == Overflow("marketing", "default_pool")


def test_the_ip_itself_does_not_count_and_warming_ips_do_not_count() -> None:
    pools = [pool("tx", IP, "ip_3", default=True)]
    # ip_3 warming (not active), and the IP itself active: nowhere but shared.
    assert choose_overflow(IP, pools, {IP}) == Overflow("shared", "shared")


def test_an_emptied_pool_takes_nothing_and_the_next_rule_applies() -> None:
    pools = [pool("tx", IP), pool("bulk", default=True), pool("later", IP, "ip_4")]
    assert choose_overflow(IP, pools, {"ip_4"}) == Overflow("later", "own_pool")
    assert choose_overflow(IP, pools[:2], {"ip_4"}) == Overflow("shared", "shared")


def test_shared_without_pools_and_dynamic_pools_never_take_overflow() -> None:
    assert choose_overflow(IP, [], {"ip_2"}) == Overflow("shared", "shared")
    pools = [pool("dynamic_good", IP, "ip_2")]
    assert choose_overflow(IP, pools, {"ip_2"}).reason == "shared"
    assert Overflow("shared", "shared").as_data() == {"pool": "shared", "reason": "shared"}


# ---- the send that crossed a limit --------------------------------------------------------------

HOUR = datetime(2026, 1, 5, 9, tzinfo=UTC)
M = timedelta(minutes=1)


def counters(sends: list[BatchSend]) -> SendCounters:
    return SendCounters.from_tally(
        tally(Send("a", at, outcome) for _, at, outcome in sends),  # type: ignore[arg-type]
        "a",
    )


def test_the_crossing_send_is_the_one_whose_count_reaches_the_limit() -> None:
    earlier = [(f"e{i}", HOUR + i * M, "delivered") for i in range(3)]
    batch = [
        ("d", HOUR + 3 * M, "dropped"),  # never left the IP: does not count
        ("x", HOUR + 4 * M, "delivered"),
        ("y", HOUR + 5 * M, "bounced"),  # the 5th sent: reaches 5
        ("z", HOUR + 6 * M, "delivered"),
    ]
    limit = HourlyLimitReached(hour=HOUR, day=1, limit=5)
    assert crossing_send(limit, counters(earlier + batch), batch) == "y"


def test_a_limit_crossed_by_an_earlier_batch_names_no_send_of_this_one() -> None:
    earlier = [(f"e{i}", HOUR + i * M, "delivered") for i in range(5)]
    batch = [("n", HOUR + 2 * H_ + 10 * M, "delivered")]
    limit = HourlyLimitReached(hour=HOUR, day=1, limit=5)
    assert crossing_send(limit, counters(earlier + batch), batch) is None


def test_the_daily_crossing_counts_the_day_up_to_the_limits_hour() -> None:
    day_before = [(f"p{i}", HOUR - 2 * H_ + i * M, "delivered") for i in range(8)]
    batch = [("a", HOUR + M, "delivered"), ("b", HOUR + 2 * M, "deferred")]
    batch += [("later", HOUR + H_ + M, "delivered")]  # the next hour: not in the window
    limit = DailyLimitReached(on=HOUR.date(), day=1, limit=10, at=HOUR)
    assert crossing_send(limit, counters(day_before + batch), batch) == "b"


H_ = timedelta(hours=1)


# ---- the send that crossed the complaint-spike threshold ---------------------------------------


def test_the_spike_send_is_the_one_after_which_the_check_first_holds() -> None:
    rules = WarmupRules(suspend_min_sends=10)
    sends = [(f"d{i}", HOUR + i * M, "delivered") for i in range(7)]
    sends += [(f"c{i}", HOUR + (30 + i) * M, "complained") for i in range(3)]
    suspended = Suspended(at=HOUR + H_, until=HOUR + 25 * H_, reason="complaint_spike")
    # All in the deciding batch: the tenth send, the third complaint, reaches 10 sends.
    assert spike_send(suspended, HOUR, counters(sends), sends, rules) == "c2"
    # Counted by an earlier batch: this batch (the send that closed the hour) holds none.
    closer = [("late", HOUR + H_ + 30 * M, "delivered")]
    assert spike_send(suspended, HOUR, counters(sends + closer), closer, rules) is None
