"""Decode microbenchmark: µs per `send.recorded` message, pydantic's envelope against the
fast decoder, on distinct messages built by bench/warmup.py's `send_messages`, as the bench
publishes them.

    .venv/bin/python -m bench.decode --messages 20000 --rounds 3

Two settings, CPU time (time.process_time), best of `--repeat` passes over all messages:
- "timeit": the garbage collector off, as timeit measures, each result dropped at once;
- "batch": as the service runs, with its collector tuning (runtime.tune_garbage_collector),
  each batch of `--batch` results kept until the next batch is decoded, and the collector
  paused while a batch is (ingest.collector_paused, as for a large batch).
Each candidate runs in turn in every round, so a neighbour's load shows as spread between
rounds rather than as a difference between candidates.
"""

from __future__ import annotations

import argparse
import ipaddress
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from bench.warmup import inventory_for, send_consumer, send_messages
from services.settings import FleetSettings
from shared.contract.sends import SendEnvelope, decode_send, values_of
from shared.ingest import collector_paused
from shared.parsing import parse_record
from shared.runtime import tune_garbage_collector


@dataclass
class Record:
    value: bytes | None
    key: bytes | None
    topic: str = "send.recorded"
    partition: int = 0
    offset: int = 0
    headers: Sequence[tuple[str, bytes]] = ()


def messages(n: int, n_ips: int = 200, days: float = 2.0) -> list[Record]:
    """`n` sends over `n_ips` IPs (5 per account), as `publish_sends` publishes them."""
    network = ipaddress.ip_network(inventory_for(n_ips).split("=", 1)[1])
    ips = [
        {"account_id": f"bench_acct_{i // 5}", "address": str(network[i + 1])} for i in range(n_ips)
    ]
    return [Record(value, key) for key, value in send_messages(ips, n, days)]


def per_message_us(run: Callable[[], Any], n: int, repeat: int) -> float:
    timer = timeit.Timer(run, timer=time.process_time)
    return min(timer.repeat(repeat=repeat, number=1)) / n * 1e6


def each(decode: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            decode(item)

    return run


def batches(decode: Callable[[Any], Any], items: list[Any], size: int) -> Callable[[], None]:
    def run() -> None:
        kept: list[Any] = []
        for start in range(0, len(items), size):
            del kept
            with collector_paused():
                kept = [decode(item) for item in items[start : start + size]]
        del kept

    return run


def per_message_us_batched(run: Callable[[], Any], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def _parse(record: Record, consumer: Any) -> Any:
    return parse_record(record, consumer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    # The service's consumer, exactly as it runs (with and without its decoder).
    consumer = send_consumer(FleetSettings(_env_file=None))
    pydantic_consumer = replace(consumer, fast_decode=None)

    records = messages(args.messages)
    values = [r.value for r in records if r.value is not None]
    declined = sum(decode_send(v) is None for v in values)
    differ = sum(
        values_of(fast) != values_of(SendEnvelope.model_validate_json(v))
        for v in values
        if (fast := decode_send(v)) is not None
    )
    print(
        f"{len(values):,} messages, {len(set(values)):,} distinct; fast path declined "
        f"{declined}, differed from pydantic on {differ}"
    )

    parse_fast = partial(_parse, consumer=consumer)
    parse_pydantic = partial(_parse, consumer=pydantic_consumer)
    candidates: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
        "pydantic SendEnvelope.model_validate_json": (SendEnvelope.model_validate_json, values),
        "fast decode_send": (decode_send, values),
        "parse_record, pydantic path": (parse_pydantic, records),
        "parse_record, fast path": (parse_fast, records),
    }
    for round_ in range(1, args.rounds + 1):
        for name, (decode, items) in candidates.items():
            us = per_message_us(each(decode, items), len(items), args.repeat)
            print(f"round {round_}  timeit  {name:44s} {us:6.2f} µs/message")
    tune_garbage_collector()
    for round_ in range(1, args.rounds + 1):
        for name, (decode, items) in candidates.items():
            run = batches(decode, items, args.batch)
            us = per_message_us_batched(run, len(items), args.repeat)
            print(f"round {round_}  batch   {name:44s} {us:6.2f} µs/message")


if __name__ == "__main__":
    main()
