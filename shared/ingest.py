"""The high-volume path: a large batch is parsed chunk by chunk inside its transaction, and
each chunk's ids are claimed in the inbox while the next chunk is parsed, so Postgres and
Python work at the same time. A consumer with a `digest` also digests each claimed chunk
while the next one is claimed (on 200 IPs a claim took longer than parsing a chunk, and
the worker waited on it). Everything after the claim is the general path's
(`Pipeline.decide`); a retry takes the general path from the start.

While such a batch is applied the cyclic garbage collector waits (`collector_paused`): the
batch's records, envelopes and models live until it is done, so every collection in the
middle of it scanned them all and freed nothing (500k sends: 1.7 s of collections in a 16 s
run, 0.2 s with the pause). They are freed by reference counting when the batch ends, and
the collector runs between batches as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from shared.messages import Received
from shared.parsing import Parsed, Record

if TYPE_CHECKING:
    from shared.pipeline import Pipeline

# Records parsed while the previous chunk's ids are claimed.
CHUNK = 1000


class NewDay(Exception):
    """A chunk of the batch needs a day partition of the inbox that must be created first
    (outside the transaction): the batch is rolled back and taken by the general path."""


_pauses = 0
_resume = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while a large batch is applied. Several batches (of several
    subscriptions) may overlap: the collector comes back when the last one ends, as it was
    before the first began. What a batch allocates is bounded by the batch."""
    global _pauses, _resume
    if _pauses == 0:
        _resume = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _resume:
            gc.enable()


def worth_it(records: Sequence[Record]) -> bool:
    """Only a batch of several chunks gains from overlapping."""
    return len(records) >= 2 * CHUNK


async def apply_in_chunks(
    pipeline: Pipeline, records: Sequence[Record], parsed: list[Parsed]
) -> None:
    """`Pipeline._apply` for a large batch. Parsed records accumulate in `parsed` for a
    retry. Raises `NewDay` (rolling back) when a chunk needs a day partition not known yet."""
    valid: list[Received] = []
    fresh: list[Received] = []
    expired: list[Received] = []
    claiming: asyncio.Future[tuple[list[Received], list[Received]]] | None = None
    daily = pipeline.daily
    make_digest = pipeline.consumer.digest
    digest = make_digest() if make_digest is not None else None
    async with pipeline.pool.acquire() as conn, conn.transaction():
        horizon = await daily.horizon(conn) if daily is not None else None
        try:
            for start in range(0, len(records), CHUNK):
                chunk = pipeline.parse(records[start : start + CHUNK])
                parsed.extend(chunk)
                claimed: list[Received] = []
                if claiming is not None:
                    claimed, too_old = await claiming
                    fresh += claimed
                    expired += too_old
                    claiming = None
                chunk_valid = [item for _, item in chunk if isinstance(item, Received)]
                if daily is not None and daily.missing(chunk_valid):
                    raise NewDay
                valid += chunk_valid
                claiming = asyncio.ensure_future(pipeline.claim(conn, chunk_valid, horizon))
                await asyncio.sleep(0)  # let it send its query before parsing on
                if digest is not None:
                    digest.add(claimed)  # the chunk before, while this one is claimed
            if claiming is not None:
                claimed, too_old = await claiming
                fresh += claimed
                expired += too_old
                claiming = None
                if digest is not None:
                    digest.add(claimed)
        finally:
            if claiming is not None and not claiming.done():
                claiming.cancel()
                with contextlib.suppress(BaseException):
                    await claiming
        await pipeline.decide(conn, parsed, valid, fresh, expired, digest)
