"""`ipfleet`: run the services, migrate their databases, replay, regenerate schemas/, and
operate them (status, dead letters, watch); each service adds its own commands
(services/<name>/cli.py)."""

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
dlq_app = typer.Typer(help="Dead letters: read and redrive them.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


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
    from shared.operations import HttpPortTaken
    from shared.runtime import Fleet

    services = Fleet(fleet.build_all(settings, names), settings, dsns, bootstrap)
    if announce_since is None:
        try:
            await services.run_until_signalled()
        except HttpPortTaken as error:
            raise fail(str(error)) from error
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
    except HttpPortTaken as error:
        raise fail(str(error)) from error
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
    event-time clocks (furthest and slowest partition), dead letters per topic in the last
    24 h. Each service is read in its own database."""
    from shared.status import show

    settings = get_settings()
    try:
        names = fleet.expand(services or ["all"])
    except KeyError as error:
        raise fail(str(error).strip("'\"")) from error
    dsns, bootstrap = _databases(settings, names), _bootstrap(settings)
    typer.echo(
        run(
            show(settings, bootstrap, dsns, fleet.build_all(settings, names), as_json=json_),
            settings,
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
    run(
        print_list(
            settings,
            _bootstrap(settings),
            topic,
            since=_utc(since),
            reason=reason,
            as_json=json_,
            echo=typer.echo,
        ),
        settings,
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
    from shared.dead_letters import redrive, source_topic

    settings = get_settings()
    source = source_topic(topic)
    # Each dead letter is claimed, and its refusal forgotten, in the database of the service
    # that dead-lettered it: the services consuming the topic.
    names = [
        service.name
        for service in fleet.build_all(settings)
        if any(c.topic == source for c in service.consumers)
    ]
    if not names:
        raise fail(f"no service consumes {source}")
    dsns, bootstrap = _databases(settings, names), _bootstrap(settings)
    run(
        redrive(
            settings,
            bootstrap,
            dsns,
            topic,
            since=_utc(since),
            reason=reason,
            dry_run=dry_run,
            retry_unconfirmed=retry_unconfirmed,
            progress=typer.echo,
        ),
        settings,
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
        run(
            run_watch(
                settings,
                _bootstrap(settings),
                account=account,
                status=status,
                once=once,
                refresh=refresh,
                echo=typer.echo,
            ),
            settings,
        )
    except KeyboardInterrupt:
        pass


def main() -> None:
    app()
