"""One subscription, two listeners of its group's rebalances: the fleet's readiness
(`Fleet.ready`, `Fleet.assignments`) and the health probes' view of it (`Subscription`)."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import TopicPartition

from shared.health import Subscription
from shared.runtime import _AssignmentListener, _Listeners


async def test_both_listeners_hear_every_assignment_and_revocation() -> None:
    heard: list[tuple[str, frozenset[TopicPartition]]] = []
    fleet = _AssignmentListener("g", lambda group, tps: heard.append((group, frozenset(tps))))
    sub = Subscription("svc", "topic")
    both: Any = _Listeners(fleet, sub)
    held = {TopicPartition("topic", 0), TopicPartition("topic", 1)}

    await both.on_partitions_assigned(set())  # a member beyond the partition count
    assert heard == [("g", frozenset())] and sub.joined and sub.assigned == frozenset()

    await both.on_partitions_assigned(held)
    assert heard[-1] == ("g", frozenset(held)) and sub.assigned == frozenset(held)

    await both.on_partitions_revoked({TopicPartition("topic", 1)})
    assert sub.assigned == {TopicPartition("topic", 0)}
