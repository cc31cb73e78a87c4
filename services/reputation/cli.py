"""The reputation service's commands: `ipfleet pool list`, `ipfleet domain list|history`
(its own database; the printing is in `commands.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from services.reputation import commands
from services.reputation.service import NAME
from services.reputation.settings import ReputationSettings
from shared.console import database_url, run

pool_app = typer.Typer(help="Named IP pools.", no_args_is_help=True)
domain_app = typer.Typer(help="Sending domains in dynamic pools.", no_args_is_help=True)
COMMANDS = {"pool": pool_app, "domain": domain_app}


def _dsn() -> str:
    return database_url(NAME, ReputationSettings())


@pool_app.command("list")
def pool_list(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
) -> None:
    """Named pools with their IPs."""
    run(commands.print_pools(_dsn(), account, typer.echo))


@domain_app.command("list")
def domain_list(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
) -> None:
    """The current dynamic pool of every enrolled domain."""
    run(commands.print_domains(_dsn(), account, typer.echo))


@domain_app.command("history")
def domain_history(
    domain: str,
    since: Annotated[datetime | None, typer.Option(help="From this time (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="Up to this time (UTC)")] = None,
    band: Annotated[str | None, typer.Option(help="Only moves to or from this pool")] = None,
) -> None:
    """Every move of a domain between pools, with its reason and metrics."""
    run(commands.print_history(_dsn(), domain, since, until, band, typer.echo))
