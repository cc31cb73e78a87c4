"""The one backoff every retry loop uses (the pipeline's batch retry, the outbox relay's
reconnect, the first database connection): exponential, capped, optionally jittered."""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(first: float = 0.2, cap: float = 5.0, *, jitter: bool = False) -> Iterator[float]:
    """Seconds to wait before each next attempt: `first`, then doubling up to `cap`; with
    `jitter` each step is spread by ±20% so that replicas failing together do not retry in
    step."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)
        if jitter:
            delay *= 0.8 + random.random() * 0.4
