"""`ipfleet watch`: a live terminal view of the fleet built only from what ipfleet emits:
`ip.state_changed` (each event carries the IP's whole view), `pool.state_changed` and
`domain.pool_changed`. It reads those topics from the beginning without a consumer group,
keeps the last view per IP, and redraws. No database, no service internals: what it shows
is what any consumer of the contract could show."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from shared.contract import topics
from shared.kafka import client_options
from shared.settings import Settings

WATCHED = (topics.IP_STATE_CHANGED, topics.POOL_STATE_CHANGED, topics.DOMAIN_POOL_CHANGED)
CLEAR = "\x1b[2J\x1b[H"


@dataclass
class IpLine:
    ip_id: str
    account_id: str
    address: str
    status: str
    pool: str | None
    warmup_status: str
    day: int | None
    progress: float
    sent_today: int
    daily_limit: int
    score: int
    last_event: str
    time: str


@dataclass
class FleetView:
    """The fleet as the events tell it; `apply` one event at a time, in topic order."""

    recent_size: int = 10
    ips: dict[str, IpLine] = field(default_factory=dict)
    pools: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    recent: deque[tuple[str, str, str]] = field(default_factory=deque)  # (time, account, what)
    events: int = 0

    def apply(self, topic: str, event: dict[str, Any]) -> None:
        data = event.get("data")
        if not isinstance(data, dict):
            return
        self.events += 1
        kind = str(event.get("type", ""))
        when = str(event.get("time", ""))[:19].replace("T", " ")
        account = str(data.get("account_id", ""))
        if topic == topics.IP_STATE_CHANGED and "ip_id" in data:
            warmup = data.get("warmup") or {}
            self.ips[data["ip_id"]] = IpLine(
                ip_id=data["ip_id"],
                account_id=account,
                address=str(data.get("address", "")),
                status=str(data.get("status", "?")),
                pool=data.get("pool"),
                warmup_status=str(warmup.get("status", "")),
                day=warmup.get("day"),
                progress=float(warmup.get("progress") or 0.0),
                sent_today=int(warmup.get("sent_today") or 0),
                daily_limit=int(warmup.get("daily_limit", -1)),
                score=int(data.get("reputation_score") or 0),
                last_event=kind,
                time=when,
            )
        elif topic == topics.POOL_STATE_CHANGED and "name" in data:
            name = str(data["name"])
            if kind == "pool.renamed" and data.get("previous_name"):
                self.pools.pop((account, str(data["previous_name"])), None)
            if kind == "pool.deleted":
                self.pools.pop((account, name), None)
            else:
                self.pools[(account, name)] = list(data.get("ip_ids") or [])
            what = kind.removeprefix("pool.").replace("_", " ")
            subject = f" {data['ip_id']}" if data.get("ip_id") else ""
            self._note(when, account, f"pool {name}: {what}{subject}")
        elif topic == topics.DOMAIN_POOL_CHANGED and "domain" in data:
            self._note(
                when,
                account,
                f"domain {data['domain']}: {data.get('prev_pool') or 'default'} -> "
                f"{data.get('new_pool') or 'default'} ({data.get('initiated_by', '?')}: "
                f"{data.get('reason', '')})",
            )

    def _note(self, when: str, account: str, what: str) -> None:
        self.recent.append((when, account, what))
        while len(self.recent) > self.recent_size:
            self.recent.popleft()


def render(
    view: FleetView,
    *,
    account: str | None = None,
    status: str | None = None,
    width: int | None = None,
) -> str:
    """The screen, as text: a summary, one line per IP (filtered), the recent moves; lines
    cut at `width` (a terminal's) when given."""
    shown = [
        ip
        for ip in view.ips.values()
        if (account is None or ip.account_id == account) and (status is None or ip.status == status)
    ]
    shown.sort(key=lambda ip: (ip.account_id, ip.address))
    counts = Counter(ip.status for ip in view.ips.values() if account in (None, ip.account_id))
    filters = " ".join(
        f
        for f in (f"account={account}" if account else "", f"status={status}" if status else "")
        if f
    )
    lines = [
        f"ipfleet watch  {len(view.ips)} IPs, {view.events} events read"
        + (f"  [{filters}]" if filters else ""),
        "  " + "  ".join(f"{s}: {n}" for s, n in sorted(counts.items())),
        "",
        # Wide enough for every status of the contract (provisioning, not_started...).
        f"{'ACCOUNT':<16} {'IP_ID':<24} {'ADDRESS':<15} {'STATUS':<12} {'WARM-UP':<11} "
        f"{'DAY':>3} {'PROGRESS':>8} {'SENT/LIMIT':>17} {'SCORE':>5}  LAST",
    ]
    for ip in shown:
        limit = "unlim." if ip.daily_limit < 0 else str(ip.daily_limit)
        day = "-" if ip.day is None else str(ip.day)
        lines.append(
            f"{ip.account_id[:16]:<16} {ip.ip_id[:24]:<24} {ip.address[:15]:<15} "
            f"{ip.status[:12]:<12} {ip.warmup_status[:11]:<11} {day:>3} {ip.progress:>8.0%} "
            f"{f'{ip.sent_today}/{limit}':>17} {ip.score:>5}  {ip.last_event}"
        )
    if not shown:
        lines.append("(no IP matches)")
    recent = [r for r in view.recent if account in (None, r[1])]
    lines += ["", "recent pool moves:"]
    lines += [f"  {when}  {account_id:<16} {what}" for when, account_id, what in recent] or [
        "  (none yet)"
    ]
    return "\n".join(line[:width] if width else line for line in lines)


class Watcher:
    """Reads the watched topics from the beginning (no group) into a FleetView."""

    def __init__(self, settings: Settings, bootstrap: str, view: FleetView | None = None) -> None:
        self._prefix = settings.kafka_topic_prefix
        self._consumer = AIOKafkaConsumer(
            **client_options(settings, bootstrap),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        self.view = view or FleetView()
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> Watcher:
        await self._consumer.start()
        await self._consumer._client.force_metadata_update()
        for topic in WATCHED:
            found = self._consumer.partitions_for_topic(self._prefix + topic) or set()
            self._partitions += [TopicPartition(self._prefix + topic, p) for p in sorted(found)]
        if self._partitions:
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning(*self._partitions)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 500) -> int:
        if not self._partitions:
            await asyncio.sleep(timeout_ms / 1000)
            return 0
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        n = 0
        for tp, records in batches.items():
            topic = tp.topic.removeprefix(self._prefix)
            for record in records:
                try:
                    event = json.loads(record.value or b"")
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.view.apply(topic, event)
                    n += 1
        return n

    async def catch_up(self, timeout: float = 30.0) -> None:
        """Read until every partition's end offset as of now (then one short read more: an
        end offset can read one low on the embedded broker)."""
        if not self._partitions:
            return
        ends = await self._consumer.end_offsets(self._partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            positions = [await self._consumer.position(tp) for tp in self._partitions]
            if all(p >= ends[tp] for p, tp in zip(positions, self._partitions, strict=True)):
                break
            await self.poll(200)
        await self.poll(200)


async def watch(
    settings: Settings,
    bootstrap: str,
    *,
    account: str | None = None,
    status: str | None = None,
    once: bool = False,
    refresh: float = 1.0,
    echo: Callable[[str], None] = print,
    frames: Iterable[int] | None = None,
) -> str:
    """Catch up, draw; unless `once`, keep reading and redraw every `refresh` seconds until
    interrupted (or for the given `frames`). Returns the last screen."""
    width = None if once else shutil.get_terminal_size().columns
    async with Watcher(settings, bootstrap) as watcher:
        await watcher.catch_up()
        screen = render(watcher.view, account=account, status=status, width=width)
        if once:
            echo(screen)
            return screen
        for _ in frames if frames is not None else _forever():
            echo(CLEAR + screen)
            loop = asyncio.get_running_loop()
            until = loop.time() + refresh
            while (left := until - loop.time()) > 0:
                await watcher.poll(int(max(left, 0.05) * 1000))
            screen = render(watcher.view, account=account, status=status, width=width)
        return screen


def _forever() -> Iterable[int]:
    n = 0
    while True:
        yield n
        n += 1
