"""Start-up benchmark: seconds from launching `ipfleet run all` until its log says
"services started" and "services ready" (every subscription assigned by its group).

    .venv/bin/python -m bench.startup --runs 3
    .venv/bin/python -m bench.startup --dev      # `ipfleet dev` itself, its own stack

Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set, else the embedded stack, started once
before anything is timed; each run gets a fresh database and topic prefix, so every
subscription joins a new, empty group. `--dev` times the whole `ipfleet dev` (its own embedded
Postgres and broker included). Prints each run, then the per-subscription assignment times
(seconds since the fleet's start) of the last run when the log has them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.databases import drop_database, fresh_database
from bench.environment import free_port
from shared.infrastructure import provide_kafka, provide_postgres

MARKS = ("services started", "services ready")


def _events(log_path: Path) -> list[dict[str, Any]]:
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def time_one(
    argv: list[str], env: dict[str, str], log_path: Path, timeout: float
) -> dict[str, Any]:
    """Launch, wait for both marks (or the first only, for code that has no readiness line),
    stop with SIGINT; returns the seconds from launch to each mark seen."""
    seen: dict[str, float] = {}
    with log_path.open("wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    try:
        deadline = start + timeout
        while time.perf_counter() < deadline and proc.poll() is None:
            text = log_path.read_text(errors="replace")
            now = time.perf_counter()
            for mark in MARKS:
                if mark not in seen and f'"{mark}"' in text:
                    seen[mark] = now - start
            if "services ready" in seen or (
                "services started" in seen and now - start > seen["services started"] + 2
            ):
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if "services started" not in seen:
        raise RuntimeError(f"no 'services started' within {timeout}s; see {log_path}")
    return seen


async def prepare_run(db_url: str, bootstrap: str, base_env: dict[str, str]) -> dict[str, str]:
    dsn = await fresh_database(db_url)
    return {
        **base_env,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": f"start{uuid.uuid4().hex[:6]}.",
        # The endpoints stay on, on a free port: another bench may hold the default 8080.
        "IPFLEET_HTTP_PORT": os.environ.get("IPFLEET_HTTP_PORT") or str(free_port()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dev", action="store_true", help="time `ipfleet dev` instead")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ipfleet-bench-startup-"))
    base_env = {
        **os.environ,
        "IPFLEET_INVENTORY": "global=10.0.0.0/24",
        "LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    db = kafka = None
    if args.dev:
        for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            base_env.pop(name, None)
        argv = [sys.executable, "-m", "services", "dev"]
    else:
        db = provide_postgres(os.environ.get("DATABASE_URL") or None)
        kafka = provide_kafka(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
        print(f"postgres: {db.kind}; kafka: {kafka.kind}")
        argv = [sys.executable, "-m", "services", "run", "all"]
    results = []
    try:
        for run in range(args.runs):
            env = base_env
            if db is not None and kafka is not None:
                env = asyncio.run(prepare_run(db.url, kafka.bootstrap_servers, base_env))
            log_path = workdir / f"run{run}.log"
            seen = time_one(argv, env, log_path, args.timeout)
            if db is not None:
                # Measured (time_one raises otherwise): its database goes.
                asyncio.run(drop_database(db.url, env["DATABASE_URL"]))
            results.append(seen)
            logged = next(
                (e.get("seconds") for e in _events(log_path) if e.get("event") == "services ready"),
                None,
            )
            print(
                f"run {run}: started {seen['services started']:.2f}s"
                + (f", ready {seen['services ready']:.2f}s" if "services ready" in seen else "")
                + (f" (fleet's own count: {logged}s)" if logged is not None else "")
                + " after launch"
            )
    finally:
        if kafka is not None:
            kafka.close()
        if db is not None:
            db.close()
    key = "services ready" if all("services ready" in r for r in results) else "services started"
    values = [r[key] for r in results]
    print(
        f"{key}: median {statistics.median(values):.2f}s, min {min(values):.2f}s, "
        f"max {max(values):.2f}s over {len(values)} run(s); logs in {workdir}"
    )
    assigned = [e for e in _events(log_path) if e.get("event") == "subscription assigned"]
    for event in sorted(assigned, key=lambda e: e["seconds"]):
        print(f"  {event['seconds']:7.3f}s  {event['group']}")


if __name__ == "__main__":
    main()
