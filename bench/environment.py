"""What a benchmarked service process runs with: a fresh install's settings, unless a flag
overrides one (and then the printout says so), and the machine's load beside each figure."""

from __future__ import annotations

import os
import socket

from services.settings import FleetSettings, all_env_names


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def as_shipped(overrides: dict[str, str]) -> FleetSettings:
    """The settings a service process given only `overrides` reads: the models' defaults,
    none of this shell's variables, no `.env`."""
    shell = {k: os.environ.pop(k) for k in list(os.environ) if k in all_env_names()}
    try:
        return FleetSettings(_env_file=None, **overrides)  # type: ignore[arg-type]
    finally:
        os.environ.update(shell)


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(dsn: str, bootstrap: str, prefix: str, overrides: dict[str, str]) -> dict[str, str]:
    """A fresh install's environment: none of the fleet's variables from this shell, only
    where its database, broker, topics and health port are (and the bench's overrides, if
    any). Run the process in a directory of its own, so that no `.env` reaches it either.
    The health endpoints stay on, on a free port: on a shared machine another bench's
    service may hold the default 8080."""
    inherited = {k: v for k, v in os.environ.items() if k not in all_env_names()}
    return {
        **inherited,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "IPFLEET_HTTP_PORT": str(free_port()),
        "LOG_FORMAT": "json",  # what `auto` picks off a terminal anyway
        **overrides,
    }


def on_defaults_or_not(overrides: dict[str, str], shown: str) -> str:
    """The settings line of a printout."""
    if not overrides:
        return f"settings: a fresh install's defaults ({shown})"
    given = " ".join(f"{k}={v}" for k, v in overrides.items())
    return f"settings: NOT ON DEFAULTS, overridden: {given} ({shown})"
