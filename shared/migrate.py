"""Versioned SQL migrations, applied in version order under an advisory lock.

Each component (a package: `shared` for the runtime's tables, each service's own) keeps
plain `.sql` files in its `migrations/` folder, named `NNNN_what.sql`. A service's schema is
built from the components the caller names (the runtime's, then the service's own): versions
are unique across them, so one ordered sequence covers the schema, recorded in the schema's
own `schema_migrations`. Migrations name tables unqualified: they land in that schema.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import structlog

from shared.database import connect

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(components: Sequence[str]) -> list[Migration]:
    found: dict[int, Migration] = {}
    for component in components:
        try:
            folder = resources.files(component) / "migrations"
        except ModuleNotFoundError:
            continue
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = _NAME.match(entry.name)
            if not match:
                continue
            migration = Migration(
                int(match.group(1)), f"{component}:{entry.name}", entry.read_text()
            )
            if migration.version in found:
                raise RuntimeError(
                    f"migration version {migration.version} is used twice: "
                    f"{found[migration.version].name} and {migration.name}"
                )
            found[migration.version] = migration
    return [found[v] for v in sorted(found)]


async def migrate(dsn: str, schema: str, components: Sequence[str]) -> list[str]:
    """Create `schema` if needed and apply every pending migration of `components` in it;
    returns the names applied. Safe to run concurrently."""
    conn = await connect(dsn, schema)
    lock = f"ipfleet.migrations.{schema}"
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", lock)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer     PRIMARY KEY,
                       name       text        NOT NULL,
                       checksum   text        NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            applied = {
                row["version"]: row["checksum"]
                for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            done: list[str] = []
            for migration in discover(components):
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        log.warning("migration changed after it was applied", name=migration.name)
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                log.info("migration applied", schema=schema, name=migration.name)
                done.append(migration.name)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock)
    finally:
        await conn.close()
