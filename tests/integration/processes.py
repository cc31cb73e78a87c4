"""Services as real OS processes, for tests that kill them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class ServiceProcess:
    """`python -m services run SERVICE` with its own environment; output goes to a log file."""

    def __init__(self, services: list[str], env: dict[str, str], log_path: Path) -> None:
        self._args = [sys.executable, "-m", "services", "run", *services]
        # Replicas run side by side: no health/metrics port unless the test gives one.
        self._env = {
            **os.environ,
            "IPFLEET_HTTP_PORT": "0",
            **env,
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self._args, env=self._env, stdout=log, stderr=log)

    def kill(self) -> None:
        """SIGKILL: no chance to finish, commit or close anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the graceful stop; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
