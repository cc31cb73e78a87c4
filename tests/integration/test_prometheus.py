"""A real Prometheus (Debian's binary) scraping a running fleet, and the dashboard and alerts
naming only metrics the fleet exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.provisioner.service import build as build_provisioner
from services.reputation.service import build as build_reputation
from services.settings import FleetSettings as Settings
from services.warmup.service import build as build_warmup
from services.warmup.settings import WarmupSettings
from shared.client import Follower, Publisher, cloud_event
from shared.contract import topics
from tests.integration.http import free_port, get
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = shutil.which("prometheus")
METRIC = re.compile(r"\b(ipfleet_[a-z_]+)\b")


def exported(exposition: str) -> set[str]:
    """Every series name the exposition declares, with the suffixes its type implies."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "counter":
                names.add(name.removesuffix("_total") + "_total")
            elif kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "ipfleet.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v.get("query", "") for v in dashboard["templating"]["list"]]
    return queries


@pytest.fixture
async def busy_fleet(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    publisher: Publisher,
    follow: Callable[[list[str]], Follower],
) -> int:
    """All three services, having applied a request and dead-lettered a message: returns
    the port of their /metrics."""
    settings = settings_for(
        IPFLEET_HTTP_PORT=free_port(),
        IPFLEET_HTTP_HOST="127.0.0.1",
        IPFLEET_METRICS_REFRESH_SECONDS=0,
    )
    services = [
        build_provisioner(settings, settings.provisioner),
        build_warmup(settings, WarmupSettings(_env_file=None)),  # type: ignore[call-arg]
        build_reputation(settings),
    ]
    fleet = await start_fleet(services, settings)
    async with follow([topics.IP_STATE_CHANGED]) as seen:
        request = cloud_event("ip.requested", {"account_id": "acct_p", "plan": "max"})
        await publisher.send(topics.IP_REQUESTED, request, key="acct_p")
        await publisher.send(topics.IP_REQUESTED, b"not json", key="acct_p")
        await seen.wait_for(lambda s: s.event["type"] == "ip.warmup_started")
    port: int = fleet.ops.port
    return port


async def test_dashboard_and_alerts_name_only_exported_metrics(busy_fleet: int) -> None:
    names: set[str] = set()

    async def complete() -> bool:
        status, body = await get(busy_fleet, "/metrics")
        names.update(exported(body))
        return status == 200 and "ipfleet_warmup_ips" in names and "ipfleet_domain_moves" in names

    await wait_until(complete, 30, "every sampled gauge")
    queries = dashboard_queries()
    used = {m for q in queries for m in METRIC.findall(q)}
    assert len(used) >= 12
    assert used <= names, f"the dashboard names metrics nobody exports: {used - names}"
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    in_rules = set(METRIC.findall(rules))
    assert in_rules and in_rules <= names, in_rules - names


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)"
)
async def test_a_real_prometheus_scrapes_the_fleet_and_loads_the_alerts(
    busy_fleet: int, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {tmp_path / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: ipfleet\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{busy_fleet}']\n"
    )
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped in finally
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
    try:

        async def query(expr: str) -> list[dict[str, Any]]:
            params = urllib.parse.urlencode({"query": expr})
            try:
                status, body = await get(port, f"/api/v1/query?{params}")
            except urllib.error.URLError:  # not listening yet
                return []
            if status != 200:
                return []
            result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
            return result

        found: list[dict[str, Any]] = []

        async def scraped() -> bool:
            found[:] = await query(
                'ipfleet_events_applied_total{service="provisioner", type="ip.requested"}'
            )
            return bool(found) and float(found[0]["value"][1]) == 1

        await wait_until(scraped, 60, "Prometheus to read the applied counter")
        assert found[0]["metric"]["job"] == "ipfleet"
        assert await query('up{job="ipfleet"} == 1')
        assert await query(
            'ipfleet_events_dead_lettered_total{topic="ip.requested", reason="InvalidJson"}'
        )
        _, body = await get(port, "/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        assert "IpfleetServiceDown" in loaded and "IpfleetWarmupSuspended" in loaded
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
