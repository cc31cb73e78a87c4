"""The Postgres a benchmark runs on, and a fresh, migrated database on it for each run,
dropped when the run has been measured (a run that fails keeps its database for a look)."""

from __future__ import annotations

import os
import uuid

import asyncpg

from services.fleet import migrate
from shared.infrastructure import (
    EmbeddedPostgresHandle,
    PostgresHandle,
    docker_available,
    provide_postgres,
)


def durable_postgres(*, fsync: bool = True) -> PostgresHandle:
    """The Postgres a user's install writes to: DATABASE_URL when set, else a container when
    Docker answers, else the embedded server with fsync ON (the embedded default for a
    temporary directory is off, which no user runs on). `fsync=False` only for a labelled
    extra measurement, and only on the embedded server."""
    url = os.environ.get("DATABASE_URL") or None
    if url or docker_available():
        if not fsync:
            raise ValueError("fsync can be turned off only on the embedded Postgres")
        return provide_postgres(url)
    from shared.embedded import EmbeddedPostgres

    return EmbeddedPostgresHandle(EmbeddedPostgres(fsync=fsync).start())


async def describe(url: str) -> str:
    """`fsync on, synchronous_commit on, PostgreSQL 17.x`: what the server commits with."""
    conn = await asyncpg.connect(url)
    try:
        fsync = await conn.fetchval("SHOW fsync")
        sync = await conn.fetchval("SHOW synchronous_commit")
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"fsync {fsync}, synchronous_commit {sync}, PostgreSQL {version.split()[0]}"


async def fresh_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = server_url.rpartition("/")[0] + "/" + name
    await migrate(dsn)
    return dsn


async def copy_database(server_url: str, dsn: str) -> str:
    """A copy of the database `dsn` (nobody may be connected to it), on the same server."""
    source = dsn.rpartition("/")[2].split("?")[0]
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    finally:
        await conn.close()
    return dsn.rpartition("/")[0] + "/" + name


async def drop_database(server_url: str, dsn: str) -> None:
    """Drop a database this module made (`bench_...`), whoever is still connected: on a
    user's server every run left one behind (a 200k-send run leaves some 100 MB)."""
    name = dsn.rpartition("/")[2].split("?")[0]
    if not name.startswith("bench_"):
        raise ValueError(f"not a benchmark's database: {name!r}")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
