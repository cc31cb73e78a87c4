"""What the warmup service logs when IPs' warm-ups change: one line per batch at info, each
IP's own only at debug, and a single IP's change (a command's) named at info."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from structlog.testing import capture_logs

from services.warmup.domain.state import WarmupState
from services.warmup.domain.transitions import DailyLimitReached
from services.warmup.handlers import _log_changes
from services.warmup.store import IpRecord

STATE = WarmupState(status="warming", day=1)


def changed(n: int) -> list[tuple[IpRecord, list[tuple[DailyLimitReached, WarmupState]]]]:
    limit = DailyLimitReached(
        on=date(2026, 12, 6), day=1, limit=50, at=datetime(2026, 12, 6, 9, tzinfo=UTC)
    )
    return [
        (IpRecord(f"ip-{i}", "acct", f"192.0.2.{i}", STATE), [(limit, STATE)]) for i in range(n)
    ]


@pytest.fixture
def debug_off() -> Iterator[logging.Logger]:
    logger = logging.getLogger("services.warmup.handlers")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(before)


def test_a_batch_logs_one_line_at_info_and_no_line_per_ip(debug_off: logging.Logger) -> None:
    with capture_logs() as lines:
        _log_changes(changed(25))

    assert [line["log_level"] for line in lines] == ["info"]
    assert lines[0]["event"] == "warm-ups changed"
    assert lines[0]["ips"] == 25 and lines[0]["events"] == 25
    assert lines[0]["ip_ids"] == [f"ip-{i}" for i in range(10)]


def test_each_ips_change_is_logged_at_debug_when_debug_is_on(debug_off: logging.Logger) -> None:
    debug_off.setLevel(logging.DEBUG)
    with capture_logs() as lines:
        _log_changes(changed(3))

    assert [line["log_level"] for line in lines] == ["info", "debug", "debug", "debug"]
    assert [line.get("ip_id") for line in lines[1:]] == ["ip-0", "ip-1", "ip-2"]
    assert lines[1]["events"] == ["daily_limit_reached:2026-12-06"]


def test_one_ips_change_is_named_at_info(debug_off: logging.Logger) -> None:
    with capture_logs() as lines:
        _log_changes(changed(1))

    assert lines == [
        {
            "event": "warm-up changed",
            "log_level": "info",
            "ip_id": "ip-0",
            "events": ["daily_limit_reached:2026-12-06"],
        }
    ]
