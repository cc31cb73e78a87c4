"""Connections to a service's own Postgres schema.

Each service keeps its tables (the runtime's inbox, outbox and clock among them) in a schema
named after it, in its own database or in one shared with others. Every connection of a
service sets `search_path` to its schema alone, so its SQL names tables unqualified and
cannot read another service's tables by accident.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

from shared import backoff

log = structlog.get_logger(__name__)


def _options(schema: str) -> dict[str, Any]:
    return {"server_settings": {"search_path": schema}}


async def connect(dsn: str, schema: str) -> asyncpg.Connection:
    """One connection whose unqualified names are `schema`'s."""
    return await asyncpg.connect(dsn, **_options(schema))


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10, attempts: int = 30
) -> asyncpg.Pool:
    """A pool of `schema`'s connections; waits (with backoff) for a database still starting."""
    waits = backoff.delays()
    for attempt in range(attempts):
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, **_options(schema)
            )
            return pool
        except (OSError, asyncpg.CannotConnectNowError) as error:
            if attempt == attempts - 1:
                raise
            log.warning("database not reachable yet", attempt=attempt, error=repr(error))
            await asyncio.sleep(next(waits))
    raise AssertionError("unreachable")
