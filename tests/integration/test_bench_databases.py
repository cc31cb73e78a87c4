"""The benchmarks leave nothing behind on the server they measure: each run's database is
dropped once measured, even with a connection still open to it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bench.databases import copy_database, drop_database, fresh_database

pytestmark = pytest.mark.integration


async def names(server_url: str) -> set[str]:
    conn = await asyncpg.connect(server_url)
    try:
        return {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


async def test_a_benchmarks_databases_are_dropped_with_a_connection_still_open(
    postgres_server: Any,
) -> None:
    server = postgres_server.url
    dsn = await fresh_database(server)
    copy = await copy_database(server, dsn)
    made = {dsn.rpartition("/")[2], copy.rpartition("/")[2]}
    assert made <= await names(server)
    lingering = await asyncpg.connect(copy)  # as a killed service's would
    try:
        await drop_database(server, dsn)
        await drop_database(server, copy)
    finally:
        await lingering.close()
    assert not made & await names(server)


async def test_only_a_benchmarks_own_database_can_be_dropped(postgres_server: Any) -> None:
    server = postgres_server.url
    with pytest.raises(ValueError, match="not a benchmark's database"):
        await drop_database(server, server.rpartition("/")[0] + "/test")
