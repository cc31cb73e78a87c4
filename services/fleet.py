"""The composition root: the one place that knows every service. It builds them from the
fleet's settings, names each one's database and migrations, and lists them for the CLI and
the AsyncAPI document. Below it, `shared/` knows no service.

Each service owns a Postgres schema named after it (its tables, with the runtime's inbox,
outbox and clock), in its own database when `IPFLEET_<SERVICE>_DATABASE_URL` names one, else
in the `DATABASE_URL` one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from services.provisioner import service as provisioner
from services.reputation import service as reputation
from services.settings import FleetSettings
from services.warmup import service as warmup
from shared.migrate import migrate as migrate_schema
from shared.runtime import Service


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    build: Callable[[FleetSettings], Service]


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("provisioner", lambda s: provisioner.build(s, s.provisioner)),
        ServiceSpec("warmup", lambda s: warmup.build(s, s.warmup)),
        ServiceSpec("reputation", lambda s: reputation.build(s, s.reputation)),
    )
}


def expand(names: Iterable[str]) -> list[str]:
    """Service names as given on the command line (`all` is every service), checked."""
    names = list(names)
    if "all" in names:
        return list(SERVICES)
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise KeyError(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICES)} or all")
    return list(dict.fromkeys(names))


def build(name: str, settings: FleetSettings) -> Service:
    return SERVICES[name].build(settings)


def build_all(settings: FleetSettings, names: Iterable[str] = ("all",)) -> list[Service]:
    return [build(name, settings) for name in expand(names)]


def databases(settings: FleetSettings, names: Iterable[str] = ("all",)) -> dict[str, str]:
    """Each service's database DSN (secrets: never log them); raises when one has none."""
    found: dict[str, str] = {}
    for name in expand(names):
        dsn = settings.database_for(name)
        if dsn is None:
            raise LookupError(
                f"no database for {name}: set DATABASE_URL or IPFLEET_{name.upper()}_DATABASE_URL"
            )
        found[name] = dsn
    return found


async def migrate(dsns: Mapping[str, str] | str) -> dict[str, list[str]]:
    """Migrate each service's schema (named after it) in its database: one DSN for every
    service, or one per service. Returns the migrations applied, per service."""
    if isinstance(dsns, str):
        dsns = dict.fromkeys(SERVICES, dsns)
    return {
        name: await migrate_schema(dsn, name, ("shared", f"services.{name}"))
        for name, dsn in dsns.items()
    }
