"""Reading a running process's health and metrics endpoints, as a probe or Prometheus would."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_now(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    """GET from this thread: (status, body); an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    return await asyncio.to_thread(get_now, port, path, timeout)


async def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    status, body = await get(port, path)
    return status, json.loads(body)


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a text exposition, or None when absent."""
    for line in exposition.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None
