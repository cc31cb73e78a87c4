"""`ipfleet`: run the services, set up the database and inventory, replay, inspect."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Coroutine
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import structlog
import typer

from shared.logging import configure_logging
from shared.settings import Settings, get_settings

app = typer.Typer(help="ipfleet: the dedicated-IP fleet's Kafka consumers.", no_args_is_help=True)
inventory_app = typer.Typer(help="The address inventory.", no_args_is_help=True)
ip_app = typer.Typer(help="Dedicated IPs.", no_args_is_help=True)
pool_app = typer.Typer(help="Named IP pools.", no_args_is_help=True)
domain_app = typer.Typer(help="Sending domains in dynamic pools.", no_args_is_help=True)
app.add_typer(inventory_app, name="inventory")
app.add_typer(ip_app, name="ip")
app.add_typer(pool_app, name="pool")
app.add_typer(domain_app, name="domain")
dlq_app = typer.Typer(help="Dead letters: read and redrive them.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

log = structlog.get_logger("ipfleet")


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(coro)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise _fail("DATABASE_URL is not set (use `ipfleet dev` for the embedded stack)")
    return settings.database_url.get_secret_value()


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise _fail("KAFKA_BOOTSTRAP_SERVERS is not set (use `ipfleet dev` for the embedded stack)")
    return settings.kafka_bootstrap_servers


@app.command()
def migrate() -> None:
    """Apply pending SQL migrations (under an advisory lock; running it twice is harmless)."""
    from shared.migrate import migrate as apply

    settings = get_settings()
    applied = _run(apply(_database_url(settings)))
    typer.echo(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
    )


@app.command()
def run(
    services: Annotated[list[str], typer.Argument(help="provisioner, warmup, reputation or all")],
) -> None:
    """Run services in this process until SIGTERM/SIGINT (graceful stop)."""
    settings = get_settings()
    dsn, bootstrap = _database_url(settings), _bootstrap(settings)
    _run(_run_services(services, settings, dsn, bootstrap))


async def _run_services(names: list[str], settings: Settings, dsn: str, bootstrap: str) -> None:
    from shared.operations import HttpPortTaken
    from shared.runtime import Fleet
    from shared.services_registry import ServiceNotBuilt, build_service, expand

    try:
        built = [build_service(name, settings) for name in expand(names)]
    except (KeyError, ServiceNotBuilt) as error:
        raise _fail(str(error).strip("'\"")) from error
    try:
        await Fleet(built, settings, dsn, bootstrap).run_until_signalled()
    except HttpPortTaken as error:
        raise _fail(str(error)) from error


@app.command()
def dev(
    demo: Annotated[
        bool, typer.Option(help="Publish sample ip.requested events and print results.")
    ] = False,
) -> None:
    """Everything on the embedded defaults: Postgres, a Kafka-compatible broker, migrations,
    all services. Ctrl-C stops it all. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS still win."""
    from shared.infrastructure import provide_kafka, provide_postgres
    from shared.migrate import migrate as apply

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if not settings.inventory:
        settings = settings.model_copy(
            update={"inventory": "global=198.51.100.0/24,eu=203.0.113.0/24"}
        )
    with ExitStack() as stack:
        typer.echo("starting Postgres and the Kafka-compatible broker...")
        db = provide_postgres(
            settings.database_url.get_secret_value() if settings.database_url else None
        )
        stack.callback(db.close)
        kafka = provide_kafka(settings.kafka_bootstrap_servers)
        stack.callback(kafka.close)
        # The embedded server uses trust auth: its URL holds no secret, and an operator can
        # point `ipfleet ip list` or `ipfleet replay` at it from another terminal.
        where = f" at {db.url}" if db.kind == "embedded" else ""
        typer.echo(f"postgres: {db.kind}{where}; kafka: {kafka.kind} at {kafka.bootstrap_servers}")

        async def main() -> None:
            await apply(db.url)
            if demo:
                await _run_with_demo(settings, db.url, kafka.bootstrap_servers)
            else:
                await _run_services(["all"], settings, db.url, kafka.bootstrap_servers)

        asyncio.run(main())
    typer.echo("stopped.")


async def _run_with_demo(settings: Settings, dsn: str, bootstrap: str) -> None:
    from shared.demo import run_demo

    services = asyncio.create_task(_run_services(["all"], settings, dsn, bootstrap))
    demo = asyncio.create_task(run_demo(settings, bootstrap))
    done, _ = await asyncio.wait({services, demo}, return_when=asyncio.FIRST_COMPLETED)
    if services in done:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
        services.result()
    else:
        demo.result()
        await services


@app.command()
def replay(
    topic: Annotated[str, typer.Argument(help="The input topic to reprocess, e.g. send.recorded")],
    group: Annotated[str, typer.Option(help="The service whose consumer group moves back")],
    from_: Annotated[
        datetime | None, typer.Option("--from", help="Reprocess from this time (ISO 8601, UTC)")
    ] = None,
    from_offset: Annotated[int | None, typer.Option(help="Reprocess from this offset")] = None,
    force: Annotated[
        bool, typer.Option(help="Proceed although the group has live members")
    ] = False,
) -> None:
    """Move a service's consumer group back on a topic so it reprocesses (nothing already
    applied changes: consumers deduplicate by event id)."""
    from shared.replay import LiveMembers
    from shared.replay import replay as move

    settings = get_settings()
    when = from_.replace(tzinfo=UTC) if from_ is not None and from_.tzinfo is None else from_
    try:
        _run(
            move(
                settings,
                _bootstrap(settings),
                topic=topic,
                service=group,
                from_time=when,
                from_offset=from_offset,
                force=force,
                progress=typer.echo,
            )
        )
    except (LiveMembers, ValueError) as error:
        raise _fail(str(error)) from error


@app.command()
def schemas(out: Annotated[str, typer.Argument()] = "schemas") -> None:
    """Regenerate the JSON Schemas and the AsyncAPI document from the code."""
    from pathlib import Path

    from shared.schemas import generate

    written = generate(Path(out))
    typer.echo(f"wrote {len(written)} file(s) under {out}/")


# ---- inventory ---------------------------------------------------------------------------


@inventory_app.command("add")
def inventory_add(
    cidr: Annotated[str, typer.Argument(help="An address range, e.g. 198.51.100.0/24")],
    region: Annotated[str, typer.Option(help="global or eu")] = "global",
) -> None:
    """Add every usable address of a range to a region's inventory."""
    from services.provisioner import inventory

    if region not in ("global", "eu"):
        raise _fail("--region must be global or eu")
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as error:
        raise _fail(str(error)) from error

    async def add() -> int:
        conn = await asyncpg.connect(_database_url(get_settings()))
        try:
            return await inventory.add_range(conn, network, region)
        finally:
            await conn.close()

    typer.echo(f"added {_run(add())} address(es) to {region}")


@inventory_app.command("list")
def inventory_list(
    addresses: Annotated[bool, typer.Option(help="List every address, not only totals")] = False,
) -> None:
    """Inventory totals per region (free / total), or every address."""
    from services.provisioner import inventory

    async def read() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_database_url(get_settings()))
        try:
            return await (inventory.addresses(conn) if addresses else inventory.summary(conn))
        finally:
            await conn.close()

    rows = _run(read())
    if addresses:
        for row in rows:
            typer.echo(f"{row['region']:<7} {row['address']:<40} {row['ip_id'] or 'free'}")
    else:
        for row in rows:
            typer.echo(f"{row['region']:<7} {row['free']:>6} free of {row['total']}")


# ---- ip ------------------------------------------------------------------------------------


@ip_app.command("show")
def ip_show(ip_id: str) -> None:
    """The IP's whole current view, as its ip.state_changed events carry it."""
    from shared.ip_view import load_ip_view

    async def read() -> Any:
        conn = await asyncpg.connect(_database_url(get_settings()))
        try:
            return await load_ip_view(conn, ip_id)
        finally:
            await conn.close()

    view = _run(read())
    if view is None:
        raise _fail(f"no IP {ip_id}")
    typer.echo(json.dumps(view.model_dump(mode="json"), indent=2))


@ip_app.command("list")
def ip_list() -> None:
    """Every IP with its status and warm-up progress."""
    from shared.ip_view import load_all_ip_views

    async def read() -> Any:
        conn = await asyncpg.connect(_database_url(get_settings()))
        try:
            return await load_all_ip_views(conn)
        finally:
            await conn.close()

    typer.echo(
        f"{'IP_ID':<24} {'ACCOUNT':<16} {'ADDRESS':<16} {'STATUS':<12} {'DAY':>4} "
        f"{'PROGRESS':>8} {'LIMIT':>9} {'SCORE':>5}"
    )
    for v in _run(read()):
        w = v.warmup
        limit = "unlim." if w.daily_limit < 0 else str(w.daily_limit)
        typer.echo(
            f"{v.ip_id:<24} {v.account_id:<16} {v.address:<16} {v.status:<12} "
            f"{w.day if w.day is not None else '-':>4} {w.progress:>8.0%} {limit:>9} "
            f"{v.reputation_score:>5}"
        )


@ip_app.command("unknown")
def ip_unknown(
    days: Annotated[
        int, typer.Option(min=1, help="UTC days shown, back from the newest one with such sends")
    ] = 7,
) -> None:
    """Sends on addresses no IP of ours holds (counted apart by warmup), per UTC day of
    event time."""
    from services.warmup import store

    async def read() -> Any:
        conn = await asyncpg.connect(_database_url(get_settings()))
        try:
            return await store.unknown_sends(conn, days)
        finally:
            await conn.close()

    typer.echo(f"{'DAY':<10} {'ADDRESS':<39} {'SENDS':>9} {'FIRST SEEN':<20} {'LAST SEEN':<20}")
    for address, day, sends in _run(read()):
        typer.echo(
            f"{day.isoformat():<10} {address:<39} {sends.n:>9} "
            f"{sends.first_seen:%Y-%m-%dT%H:%M:%SZ} {sends.last_seen:%Y-%m-%dT%H:%M:%SZ}"
        )


# ---- pools and domains (the reputation service's) ------------------------------------------


def _reputation_commands() -> Any:
    try:
        from services.reputation import commands
    except ModuleNotFoundError as error:
        raise _fail("the reputation service is not built yet") from error
    return commands


@pool_app.command("list")
def pool_list(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
) -> None:
    """Named pools with their IPs."""
    commands = _reputation_commands()
    _run(commands.print_pools(_database_url(get_settings()), account, typer.echo))


@domain_app.command("list")
def domain_list(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
) -> None:
    """The current dynamic pool of every enrolled domain."""
    commands = _reputation_commands()
    _run(commands.print_domains(_database_url(get_settings()), account, typer.echo))


@domain_app.command("history")
def domain_history(
    domain: str,
    since: Annotated[datetime | None, typer.Option(help="From this time (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="Up to this time (UTC)")] = None,
    band: Annotated[str | None, typer.Option(help="Only moves to or from this pool")] = None,
) -> None:
    """Every move of a domain between pools, with its reason and metrics."""
    commands = _reputation_commands()
    _run(
        commands.print_history(
            _database_url(get_settings()), domain, since, until, band, typer.echo
        )
    )


# ---- operations: status, dead letters, watch ------------------------------------------------


def _utc(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


@app.command()
def status(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to show (default: all)")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """One screen per service: group members and lag per subscription, outbox backlog,
    event-time watermark, dead letters per topic in the last 24 h."""
    from shared.status import show

    settings = get_settings()
    typer.echo(
        _run(
            show(
                settings,
                _bootstrap(settings),
                _database_url(settings),
                as_json=json_,
                names=services or ["all"],
            )
        )
    )


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[str, typer.Argument(help="The input topic (or its .dlq), e.g. ip.requested")],
    since: Annotated[datetime | None, typer.Option(help="From this time (ISO 8601, UTC)")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this error class")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """The dead letters of a topic: when, where, which consumer, why."""
    from shared.dead_letters import print_list

    settings = get_settings()
    _run(
        print_list(
            settings,
            _bootstrap(settings),
            topic,
            since=_utc(since),
            reason=reason,
            as_json=json_,
            echo=typer.echo,
        )
    )


@dlq_app.command("redrive")
def dlq_redrive(
    topic: Annotated[str, typer.Argument(help="The input topic (or its .dlq), e.g. ip.requested")],
    since: Annotated[datetime | None, typer.Option(help="From this time (ISO 8601, UTC)")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this error class")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be sent; send nothing")] = False,
    retry_unconfirmed: Annotated[
        bool, typer.Option(help="Send again what an interrupted run claimed but never confirmed")
    ] = False,
) -> None:
    """Re-publish dead letters (original bytes, key, headers) to their topic; never the same
    dead letter twice."""
    from shared.dead_letters import redrive

    settings = get_settings()
    _run(
        redrive(
            settings,
            _bootstrap(settings),
            _database_url(settings),
            topic,
            since=_utc(since),
            reason=reason,
            dry_run=dry_run,
            retry_unconfirmed=retry_unconfirmed,
            progress=typer.echo,
        )
    )


@app.command()
def watch(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only IPs in this status (warming, active, suspended...)")
    ] = None,
    once: Annotated[bool, typer.Option(help="Draw once, after catching up, and exit")] = False,
    refresh: Annotated[float, typer.Option(help="Seconds between redraws")] = 1.0,
) -> None:
    """A live view of every IP (status, warm-up day and progress, sent today vs limit, score)
    and recent pool moves, built from ip.state_changed, pool.state_changed and
    domain.pool_changed alone. Ctrl-C stops it."""
    from shared.watch import watch as run_watch

    settings = get_settings()
    try:
        _run(
            run_watch(
                settings,
                _bootstrap(settings),
                account=account,
                status=status,
                once=once,
                refresh=refresh,
                echo=typer.echo,
            )
        )
    except KeyboardInterrupt:
        pass


def main() -> None:
    app()
