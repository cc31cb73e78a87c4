"""What every `ipfleet` command shares: logging set up, a coroutine run, a clear failure, and
the database of the service that owns what a command shows."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import typer

from shared.logging import configure_logging
from shared.settings import ServiceSettings, Settings


def run(coro: Coroutine[Any, Any, Any], settings: Settings | None = None) -> Any:
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(coro)


def fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def database_url(service: str, own: ServiceSettings, base: Settings | None = None) -> str:
    """The DSN of `service`'s database: IPFLEET_<SERVICE>_DATABASE_URL, else DATABASE_URL."""
    url = own.database(base if base is not None else Settings())
    if url is None:
        raise fail(
            f"neither IPFLEET_{service.upper()}_DATABASE_URL nor DATABASE_URL is set "
            "(use `ipfleet dev` for the embedded stack)"
        )
    return url.get_secret_value()
