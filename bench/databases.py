"""A fresh, migrated database for one benchmark run, on whichever server was provided."""

from __future__ import annotations

import uuid

import asyncpg

from services.fleet import migrate


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
