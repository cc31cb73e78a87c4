"""`ipfleet`: run the services, migrate their databases, replay, regenerate schemas/; each
service adds its own commands (services/<name>/cli.py)."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Annotated

import typer

from services import fleet
from services.provisioner import cli as provisioner_cli
from services.reputation import cli as reputation_cli
from services.settings import FleetSettings, get_settings
from services.warmup import cli as warmup_cli
from shared.console import fail, run
from shared.logging import configure_logging

app = typer.Typer(help="ipfleet: the dedicated-IP fleet's Kafka consumers.", no_args_is_help=True)
for commands in (provisioner_cli.COMMANDS, warmup_cli.COMMANDS, reputation_cli.COMMANDS):
    for name, group in commands.items():
        app.add_typer(group, name=name)


def _databases(settings: FleetSettings, names: list[str]) -> dict[str, str]:
    try:
        return fleet.databases(settings, names)
    except (KeyError, LookupError) as error:
        raise fail(
            str(error).strip("'\"") + " (use `ipfleet dev` for the embedded stack)"
        ) from error


def _bootstrap(settings: FleetSettings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise fail("KAFKA_BOOTSTRAP_SERVERS is not set (use `ipfleet dev` for the embedded stack)")
    return settings.kafka_bootstrap_servers


@app.command()
def migrate() -> None:
    """Apply pending SQL migrations to each service's schema, in each service's database
    (under an advisory lock; running it twice is harmless)."""
    settings = get_settings()
    applied = run(fleet.migrate(_databases(settings, ["all"])), settings)
    for service, names in applied.items():
        typer.echo(
            f"{service}: applied {len(names)} migration(s)"
            + (": " + ", ".join(names) if names else "")
        )


@app.command("run")
def run_services(
    services: Annotated[list[str], typer.Argument(help="provisioner, warmup, reputation or all")],
) -> None:
    """Run services in this process until SIGTERM/SIGINT (graceful stop)."""
    settings = get_settings()
    try:
        names = fleet.expand(services)
    except KeyError as error:
        raise fail(str(error).strip("'\"")) from error
    dsns, bootstrap = _databases(settings, names), _bootstrap(settings)
    run(_run(names, settings, dsns, bootstrap), settings)


async def _run(
    names: list[str],
    settings: FleetSettings,
    dsns: dict[str, str],
    bootstrap: str,
    announce_since: float | None = None,
) -> None:
    """Run until signalled; with `announce_since` (a time.monotonic()), also print when every
    subscription is assigned."""
    from shared.runtime import Fleet

    services = Fleet(fleet.build_all(settings, names), settings, dsns, bootstrap)
    if announce_since is None:
        await services.run_until_signalled()
        return

    async def announce() -> None:
        seconds = await services.wait_ready()
        typer.echo(
            f"services ready: {len(services.pipelines)} subscriptions assigned "
            f"{seconds:.1f}s after the services began starting, "
            f"{time.monotonic() - announce_since:.1f}s after `ipfleet dev` began. Ctrl-C stops."
        )

    announcing = asyncio.create_task(announce())
    try:
        await services.run_until_signalled()
    finally:
        announcing.cancel()


@app.command()
def dev(
    demo: Annotated[
        bool, typer.Option(help="Publish sample ip.requested events and print results.")
    ] = False,
) -> None:
    """Everything on the embedded defaults: Postgres, a Kafka-compatible broker, migrations,
    all services. Ctrl-C stops it all. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS still win."""
    began = time.monotonic()
    from shared.infrastructure import provide_kafka, provide_postgres

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if not settings.provisioner.inventory:
        provisioner = settings.provisioner.model_copy(
            update={"inventory": "global=198.51.100.0/24,eu=203.0.113.0/24"}
        )
        settings = settings.model_copy(update={"provisioner": provisioner})
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
        names = list(fleet.SERVICES)
        dsns = dict.fromkeys(names, db.url)

        async def main() -> None:
            await fleet.migrate(db.url)
            if demo:
                await _run_with_demo(settings, names, dsns, kafka.bootstrap_servers, began)
            else:
                await _run(names, settings, dsns, kafka.bootstrap_servers, began)

        asyncio.run(main())
    typer.echo("stopped.")


async def _run_with_demo(
    settings: FleetSettings,
    names: list[str],
    dsns: dict[str, str],
    bootstrap: str,
    began: float,
) -> None:
    from shared.demo import run_demo

    services = asyncio.create_task(_run(names, settings, dsns, bootstrap, began))
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
        run(
            move(
                settings,
                _bootstrap(settings),
                topic=topic,
                service=group,
                from_time=when,
                from_offset=from_offset,
                force=force,
                progress=typer.echo,
            ),
            settings,
        )
    except (LiveMembers, ValueError) as error:
        raise fail(str(error)) from error


@app.command()
def schemas(out: Annotated[str, typer.Argument()] = "schemas") -> None:
    """Regenerate the JSON Schemas and the AsyncAPI document from the code."""
    from pathlib import Path

    from shared.schemas import generate

    written = generate(Path(out), fleet.build_all(FleetSettings.defaults()))
    typer.echo(f"wrote {len(written)} file(s) under {out}/")


def main() -> None:
    app()
