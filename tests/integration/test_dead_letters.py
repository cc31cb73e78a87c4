"""`ipfleet dlq list` and `ipfleet dlq redrive` over the real broker and real Postgres.

The consumer here is a small service of the test's own on `ip.requested`, whose handler
refuses some accounts until the test "fixes" it: a handler's refusal (whose id the inbox
recorded with it), a parse error, and an interrupted redrive, as an operator meets them. It
stands in for the provisioner (its name, so its schema: where its inbox and the redrive's
claims are kept)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.settings import FleetSettings as Settings
from shared import database as schemas
from shared import dead_letters
from shared.client import Follower, cloud_event
from shared.consumer import Consumer
from shared.contract import topics
from shared.contract.events import IpRequested
from shared.kafka import client_options
from shared.messages import Emit, Received, Unprocessable
from shared.runtime import Service
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

SERVICE = "provisioner"  # the schema the test's service works in (migrated for every test)


class Clerk:
    """The test service: applies requests, refusing the accounts in `refuse`."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.applied: Counter[str] = Counter()

    async def handle(self, conn: asyncpg.Connection, event: Received) -> list[Emit]:
        account = event.data.account_id
        if account in self.refuse:
            raise Unprocessable(f"{account} is not served yet")
        self.applied[account] += 1
        return []

    def service(self) -> Service:
        return Service(
            name=SERVICE,
            consumers=[
                Consumer(
                    service=SERVICE,
                    topic=topics.IP_REQUESTED,
                    types={"ip.requested": IpRequested},
                    handle=self.handle,
                )
            ],
        )


async def publish_raw(
    settings: Settings, bootstrap: str, messages: list[tuple[str, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(**client_options(settings, bootstrap))
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(
                settings.kafka_topic_prefix + topics.IP_REQUESTED,
                value=value,
                key=key.encode(),
                headers=headers,
            )
    finally:
        await producer.stop()


async def letters(settings: Settings, bootstrap: str, **filters: Any) -> list[Any]:
    return [d async for d in dead_letters.read(settings, bootstrap, topics.IP_REQUESTED, **filters)]


async def wait_for_letters(settings: Settings, bootstrap: str, n: int) -> list[Any]:
    found: list[Any] = []

    async def enough() -> bool:
        found[:] = await letters(settings, bootstrap)
        return len(found) >= n

    await wait_until(enough, 30, f"{n} dead letters")
    return found


def request(account: str) -> bytes:
    event = cloud_event("ip.requested", {"account_id": account, "plan": "max"})
    return json.dumps(event).encode()


async def test_list_then_redrive_what_was_fixed_once_and_only_once(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    kafka_server: Any,
    database: str,
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    settings = settings_for()
    clerk = Clerk(refuse={"acct_a", "acct_b", "acct_c"})
    await start_fleet([clerk.service()], settings)
    trace = [("x-trace", b"abc")]
    await publish_raw(
        settings,
        bootstrap,
        [
            ("acct_a", request("acct_a"), trace),
            ("acct_b", request("acct_b"), trace),
            ("acct_c", request("acct_c"), trace),
            ("acct_ok", request("acct_ok"), []),
            ("acct_a", b"{broken", trace),
        ],
    )
    found = await wait_for_letters(settings, bootstrap, 4)
    assert Counter(d.error_class for d in found) == {"Unprocessable": 3, "InvalidJson": 1}
    assert {d.consumer for d in found} == {"provisioner/ip.requested"}
    assert all(("x-trace", b"abc") in d.headers for d in found)
    assert clerk.applied == {"acct_ok": 1}

    # list: by reason, by time.
    assert len(await letters(settings, bootstrap, reason="InvalidJson")) == 1
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await letters(settings, bootstrap, since=later) == []

    clerk.refuse.clear()  # the fix is deployed
    said: list[str] = []
    dry = await dead_letters.redrive(
        settings,
        bootstrap,
        {SERVICE: database},
        topics.IP_REQUESTED,
        dry_run=True,
        progress=said.append,
    )
    assert (dry.matched, dry.would_send, dry.sent) == (4, 4, 0)
    await asyncio.sleep(1)
    assert clerk.applied == {"acct_ok": 1}  # a dry run sends nothing

    # A run interrupted after its first message was sent and confirmed.
    class Interrupted(Exception):
        pass

    def interrupt(line: str) -> None:
        if "sent" in line:
            raise Interrupted(line)

    with pytest.raises(Interrupted):
        await dead_letters.redrive(
            settings,
            bootstrap,
            {SERVICE: database},
            topics.IP_REQUESTED,
            reason="Unprocessable",
            batch_size=1,
            progress=interrupt,
        )
    await wait_until(
        lambda: _true(sum(clerk.applied.values()) == 2), 30, "the first redriven letter"
    )
    again = await dead_letters.redrive(
        settings,
        bootstrap,
        {SERVICE: database},
        topics.IP_REQUESTED,
        reason="Unprocessable",
        progress=said.append,
    )
    assert (again.matched, again.sent, again.already_sent) == (3, 2, 1)
    await wait_until(lambda: _true(len(clerk.applied) == 4), 30, "every refused request applied")
    assert clerk.applied == {"acct_ok": 1, "acct_a": 1, "acct_b": 1, "acct_c": 1}

    # Nothing is sent twice, however often it runs.
    third = await dead_letters.redrive(
        settings,
        bootstrap,
        {SERVICE: database},
        topics.IP_REQUESTED,
        reason="Unprocessable",
        progress=said.append,
    )
    assert (third.sent, third.already_sent) == (0, 3)

    # The still-invalid one goes back to the DLQ, as a new dead letter with one set of
    # error headers: the old ones were not re-published.
    rest = await dead_letters.redrive(
        settings, bootstrap, {SERVICE: database}, topics.IP_REQUESTED, progress=said.append
    )
    assert rest.sent == 1
    found = await wait_for_letters(settings, bootstrap, 5)
    [old, new] = [d for d in found if d.error_class == "InvalidJson"]
    assert new.offset != old.offset and new.value == old.value == b"{broken"
    assert new.key == old.key == b"acct_a"
    assert [k for k, _ in new.headers].count("error.class") == 1
    assert ("x-trace", b"abc") in new.headers
    assert any("redrove" in line for line in said)


async def test_redriven_messages_carry_the_original_bytes_key_and_headers(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    kafka_server: Any,
    database: str,
    follow: Callable[[list[str]], Follower],
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    settings = settings_for()
    clerk = Clerk(refuse={"acct_h"})
    await start_fleet([clerk.service()], settings)
    original = request("acct_h")
    await publish_raw(
        settings, bootstrap, [("acct_h", original, [("x-trace", b"t1"), ("x-n", b"2")])]
    )
    await wait_for_letters(settings, bootstrap, 1)
    clerk.refuse.clear()
    async with follow([topics.IP_REQUESTED]) as seen:
        report = await dead_letters.redrive(
            settings, bootstrap, {SERVICE: database}, topics.IP_REQUESTED, progress=lambda _: None
        )
        assert report.sent == 1
        copies = await seen.wait_for(lambda s: s.value == original, count=2)
    redriven = copies[-1]
    assert redriven.key == "acct_h"
    assert redriven.headers == {"x-trace": "t1", "x-n": "2"}
    await wait_until(lambda: _true(clerk.applied == {"acct_h": 1}), 30, "the redriven request")


async def test_the_cli_lists_and_redrives(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    kafka_server: Any,
    database: str,
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    settings = settings_for()
    clerk = Clerk(refuse={"acct_cli"})
    await start_fleet([clerk.service()], settings)
    await publish_raw(settings, bootstrap, [("acct_cli", request("acct_cli"), [])])
    await wait_for_letters(settings, bootstrap, 1)
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "LOG_LEVEL": "WARNING",
    }

    def ipfleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = await asyncio.to_thread(ipfleet, "dlq", "list", "ip.requested.dlq", "--json")
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert json.loads(line)["error_class"] == "Unprocessable"
    clerk.refuse.clear()
    sent = await asyncio.to_thread(
        ipfleet, "dlq", "redrive", "ip.requested", "--reason", "Unprocessable"
    )
    assert sent.returncode == 0, sent.stderr
    assert "redrove 1 of 1" in sent.stdout
    await wait_until(lambda: _true(clerk.applied == {"acct_cli": 1}), 30, "the redriven request")


async def _true(value: bool) -> bool:
    return value


async def test_a_claim_left_unconfirmed_is_reported_and_sent_only_when_asked(
    start_fleet: Any,
    settings_for: Callable[..., Settings],
    kafka_server: Any,
    database: str,
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    settings = settings_for()
    clerk = Clerk(refuse={"acct_u1", "acct_u2"})
    await start_fleet([clerk.service()], settings)
    await publish_raw(settings, bootstrap, [(a, request(a), []) for a in ("acct_u1", "acct_u2")])
    found = await wait_for_letters(settings, bootstrap, 2)
    clerk.refuse.clear()
    # What a run killed between claiming and the broker's ack leaves behind.
    conn = await schemas.connect(database, SERVICE)
    try:
        await conn.execute(
            'INSERT INTO dead_letter_redrives (dlq_topic, partition, "offset") '
            "VALUES ('ip.requested.dlq', $1, $2)",
            found[0].partition,
            found[0].offset,
        )
    finally:
        await conn.close()
    said: list[str] = []
    report = await dead_letters.redrive(
        settings, bootstrap, {SERVICE: database}, topics.IP_REQUESTED, progress=said.append
    )
    assert (report.sent, report.unconfirmed) == (1, 1)
    assert any("interrupted run" in line for line in said)
    report = await dead_letters.redrive(
        settings,
        bootstrap,
        {SERVICE: database},
        topics.IP_REQUESTED,
        retry_unconfirmed=True,
        progress=said.append,
    )
    assert (report.sent, report.already_sent) == (1, 1)
    await wait_until(lambda: _true(len(clerk.applied) == 2), 30, "both requests")
    assert set(clerk.applied.values()) == {1}
