"""Event-time arithmetic on UTC hours and days.

Every warm-up rule runs on event time, bucketed into UTC hours and UTC days, never on the
worker's clock. These helpers are the only place that turns a timestamp into a bucket.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_NO_OFFSET = timedelta(0)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive timestamp is refused rather than guessed at."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"event time {moment!r} has no timezone; pass an aware datetime")
    return moment.astimezone(UTC)


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour that contains `moment`."""
    if moment.tzinfo is UTC:
        # Already UTC (what the rules pass around): the sweep asks this for every hour of
        # every IP, and `astimezone` was most of its cost.
        if moment.minute or moment.second or moment.microsecond:
            return moment.replace(minute=0, second=0, microsecond=0)
        return moment
    if moment.utcoffset() == _NO_OFFSET:
        # UTC under another tzinfo (event times as pydantic parses `...Z`): no conversion.
        return moment.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    return as_utc(moment).replace(minute=0, second=0, microsecond=0)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def hour_of(day: date, hour: int) -> datetime:
    """The start of hour `hour` (0..23) of the UTC day `day`."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, got {hour}")
    return datetime.combine(day, time(hour), tzinfo=UTC)


def iso(moment: datetime) -> str:
    """RFC 3339 with a `Z`, the way the wire contract writes times."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")
