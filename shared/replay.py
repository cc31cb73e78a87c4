"""Moving a service's consumer group back on a topic so it reprocesses (`ipfleet replay`).

The group is moved by joining it as its only member, seeking and committing, then leaving:
a member's commit is accepted by every Kafka-protocol broker, where a commit from outside a
group that has had members may be refused. Joining is also how live members are detected:
while another member holds a partition, we are not given it, and we refuse unless forced.
Replays change nothing already applied: every consumer deduplicates by event id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from shared.kafka import client_options
from shared.runtime import group_id
from shared.settings import Settings


@dataclass(frozen=True)
class PartitionMove:
    partition: int
    committed: int | None
    target: int
    end: int

    @property
    def to_reprocess(self) -> int:
        return max(self.end - self.target, 0)


class LiveMembers(RuntimeError):
    pass


class _Assigned(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.changed = asyncio.Event()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.assigned -= set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.changed.set()


async def replay(
    settings: Settings,
    bootstrap: str,
    *,
    topic: str,
    service: str,
    from_time: datetime | None = None,
    from_offset: int | None = None,
    force: bool = False,
    join_timeout: float = 30.0,
    progress: Callable[[str], None] = print,
) -> list[PartitionMove]:
    """Move `service`'s group on `topic` to `from_offset` or the first offset at `from_time`."""
    if (from_time is None) == (from_offset is None):
        raise ValueError("give exactly one of --from and --from-offset")
    wire_topic = settings.kafka_topic_prefix + topic
    group = settings.kafka_topic_prefix + group_id(service, topic)
    listener = _Assigned()
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        rebalance_timeout_ms=settings.kafka_max_poll_interval_ms,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(wire_topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(wire_topic)
        if not partitions:
            raise ValueError(f"topic {wire_topic} does not exist")
        everything = {TopicPartition(wire_topic, p) for p in partitions}
        progress(f"joining group {group} to move {len(everything)} partition(s) of {wire_topic}")
        consumer.subscribe([wire_topic], listener=listener)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + join_timeout
        while listener.assigned != everything and loop.time() < deadline:
            # The group protocol runs in the consumer's background task; wait for each new
            # assignment until we hold every partition or time runs out.
            listener.changed.clear()
            try:
                await asyncio.wait_for(listener.changed.wait(), deadline - loop.time())
            except TimeoutError:
                break
        mine = set(listener.assigned)
        if mine != everything:
            others = sorted(tp.partition for tp in everything - mine)
            if not force:
                raise LiveMembers(
                    f"group {group} has live members holding partitions {others}: stop the "
                    f"{service} service first, or pass --force to move only the partitions "
                    "this tool was given"
                )
            progress(f"--force: partitions {others} are held by live members and are not moved")
        ordered = sorted(mine, key=lambda tp: tp.partition)
        ends = await consumer.end_offsets(ordered)
        begins = await consumer.beginning_offsets(ordered)
        targets: dict[TopicPartition, int] = {}
        if from_time is not None:
            found = await consumer.offsets_for_times(
                {tp: int(from_time.timestamp() * 1000) for tp in ordered}
            )
            for tp in ordered:
                hit = found.get(tp)
                # Some brokers answer "nothing that late" with timestamp -1 instead of None.
                late = hit is None or hit.timestamp < 0
                targets[tp] = ends[tp] if late else hit.offset
        else:
            assert from_offset is not None
            for tp in ordered:
                targets[tp] = min(max(from_offset, begins[tp]), ends[tp])
        moves = []
        for tp in ordered:
            committed = await consumer.committed(tp)
            consumer.seek(tp, targets[tp])
            move = PartitionMove(tp.partition, committed, targets[tp], ends[tp])
            moves.append(move)
            progress(
                f"  partition {tp.partition}: committed {committed} -> {targets[tp]} "
                f"({move.to_reprocess} message(s) to reprocess)"
            )
        await consumer.commit({tp: targets[tp] for tp in ordered})
        progress(
            f"moved {len(moves)} partition(s); {sum(m.to_reprocess for m in moves)} message(s) "
            f"will be reprocessed when {service} runs"
        )
        return moves
    finally:
        await consumer.stop()


async def group_positions(
    settings: Settings, bootstrap: str, *, topic: str, service: str
) -> dict[int, tuple[int | None, int]]:
    """Per partition: (committed offset of the service's group, end offset). Reads only."""
    wire_topic = settings.kafka_topic_prefix + topic
    consumer = AIOKafkaConsumer(
        **client_options(settings, bootstrap),
        group_id=settings.kafka_topic_prefix + group_id(service, topic),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(wire_topic) or ())
        tps = [TopicPartition(wire_topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: (await consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        await consumer.stop()
