"""`WarmupState.updated`, the sweep's cheap copy, makes exactly what `model_copy(update=...)`
makes: equal, serialised alike, the same fields set, still frozen."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.warmup.domain.state import DayRecord, WarmupState

HOURS = st.integers(0, 24 * 40).map(
    lambda h: datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=h)
)
DAYS = st.dates(date(2026, 11, 1), date(2026, 12, 31))
FIELDS = {
    "status": st.sampled_from(["not_started", "warming", "suspended", "active"]),
    "schedule": st.none() | st.sampled_from(["standard-30", "tiny-4"]),
    "mode": st.sampled_from(["earned", "calendar"]),
    "day": st.integers(0, 40),
    "closed_until": st.none() | HOURS,
    "judged_since": st.none() | HOURS,
    "hold_reason": st.none() | st.text(max_size=20),
    "suspended_until": st.none() | HOURS,
    "last_send_hour": st.none() | HOURS,
    "daily_limit_reached_on": st.none() | DAYS,
    "hourly_limit_reached_at": st.none() | HOURS,
    "history": st.lists(
        st.builds(DayRecord, day=st.integers(1, 40), on=DAYS, sent=st.integers(0, 10**6)),
        max_size=3,
    ).map(tuple),
}
STATES = st.fixed_dictionaries({}, optional=FIELDS).map(lambda f: WarmupState(**f))
CHANGES = st.fixed_dictionaries({}, optional=FIELDS)


@given(STATES, CHANGES)
def test_updated_is_model_copy_with_the_same_changes(
    state: WarmupState, changes: dict[str, object]
) -> None:
    fast, slow = state.updated(**changes), state.model_copy(update=changes)

    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
    # The original is left as it was.
    assert state == WarmupState.model_validate_json(state.model_dump_json())


def test_updated_state_stays_frozen_and_refuses_unknown_fields() -> None:
    state = WarmupState().updated(status="warming", day=1)

    with pytest.raises(ValidationError):
        state.day = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field"):
        state.updated(dya=2)
    assert state.day == 1 and state.status == "warming"
