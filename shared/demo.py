"""`ipfleet dev --demo`: publish a few sample requests and print what ipfleet answers."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from shared.client import Follower, Publisher, Seen, cloud_event
from shared.contract import topics
from shared.settings import Settings

SAMPLE_REQUESTS: list[dict[str, Any]] = [
    {
        "account_id": "acct_acme",
        "plan": "enterprise",
        "region": "global",
        "rdns": "mail1.acme.example",
    },
    {"account_id": "acct_acme", "plan": "enterprise", "region": "eu", "pool": "marketing"},
    {"account_id": "acct_bolt", "plan": "max"},
    {"account_id": "acct_bolt", "plan": "max"},  # over the max plan's quota of 1
    {"account_id": "acct_tiny", "plan": "free"},  # no dedicated IPs on the free plan
    {"account_id": "acct_oops", "plan": "platinum"},  # invalid: dead-lettered and answered
]

WATCHED = [
    topics.IP_PROVISIONED,
    topics.IP_REQUEST_REJECTED,
    topics.IP_STATE_CHANGED,
    topics.IP_REQUESTED + ".dlq",
]


def describe(seen: Seen) -> str:
    if seen.topic.endswith(".dlq"):
        return (
            f"[{seen.topic}] dead letter: {seen.headers.get('error.class')}: "
            f"{seen.headers.get('error.message')}"
        )
    event = seen.event
    data = event.get("data", {})
    if event["type"] == "ip.provisioned":
        return (
            f"[{seen.topic}] {data['account_id']}: {data['ip_id']} = {data['address']} "
            f"({data['region']}, status {data['status']})"
        )
    if seen.topic == topics.IP_PROVISIONED:  # the registry's later lifecycle
        return f"[{seen.topic}] {event['type']}: {data['ip_id']} status {data['status']}"
    if event["type"] == "ip.request_rejected":
        return f"[{seen.topic}] {data['account_id']}: rejected, {data['reason']}: {data['message']}"
    warmup = data.get("warmup", {})
    return (
        f"[{seen.topic}] {event['type']}: {data.get('ip_id')} status {data.get('status')}, "
        f"warm-up day {warmup.get('day')} limit {warmup.get('daily_limit')}"
    )


async def run_demo(settings: Settings, bootstrap: str) -> None:
    prefix = settings.kafka_topic_prefix
    async with Publisher(settings, bootstrap, prefix) as publisher:
        # Let the services create their topics and join their groups first.
        async with Follower(settings, bootstrap, WATCHED, prefix) as follower:
            typer.secho(
                f"demo: publishing {len(SAMPLE_REQUESTS)} ip.requested events", fg=typer.colors.CYAN
            )
            for data in SAMPLE_REQUESTS:
                await publisher.send(
                    topics.IP_REQUESTED,
                    cloud_event("ip.requested", data, source="ipfleet-demo"),
                    key=data["account_id"],
                )
            typer.secho(
                "demo: waiting for ipfleet's answers (Ctrl-C to stop)", fg=typer.colors.CYAN
            )
            while True:
                for seen in await follower.poll(timeout_ms=500):
                    typer.secho(describe(seen), fg=typer.colors.GREEN)
                await asyncio.sleep(0)
