"""Static checks of deploy/ (no Docker engine or cluster here): every `ipfleet` invocation
exists in the CLI, every service exists, every env var is a setting (or the Kafka/Postgres
image's own), and the image ships no development extras.

PyYAML is not a dependency, so the YAML is read by indentation and regexes: enough for
files written in block style with flow lists for commands, as deploy/ is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.fleet import SERVICES
from services.settings import FleetSettings as Settings
from services.settings import all_env_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))

SETTINGS = all_env_names()
REQUIRED_SETTINGS = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "IPFLEET_INVENTORY"}
# The postgres image's documented variables.
POSTGRES_IMAGE_VARS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"}
# apache/kafka turns KAFKA_A_B into the broker property a.b; these are the ones we mean.
KAFKA_BROKER_PROPERTIES = {
    "node.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "inter.broker.listener.name",
    "controller.quorum.voters",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms",
    "num.partitions",
    "log.dirs",
    "auto.create.topics.enable",
}
# Python and pip's own variables, which the Dockerfile may set.
PYTHON_RUNTIME_VARS = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}

_KEY = re.compile(r"^(\s*)([\w.-]+):")
_ENV_KEY = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*:\s*(.*)$", re.MULTILINE)
_ENV_REF = re.compile(r"^\s*-?\s*(?:name|key):\s*\"?([A-Z][A-Z0-9_]*)\"?\s*$", re.MULTILINE)
_INTERPOLATION = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")
_FLOW_LIST = r"^\s*{key}:\s*(\[.*\])\s*$"


# ---- reading the files ---------------------------------------------------------------------


def _yaml(path: Path) -> str:
    """The file without comment lines (a commented-out example is not configuration)."""
    return "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
    )


def _blocks(text: str, indent: int) -> dict[str, str]:
    """The block under each mapping key at exactly `indent` spaces, its own line included."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _KEY.match(line)
        if match and len(match.group(1)) == indent:
            current = blocks.setdefault(match.group(2), [])
        elif line.strip() and len(line) - len(line.lstrip()) <= indent:
            current = None
        if current is not None:
            current.append(line)
    return {key: "\n".join(lines) for key, lines in blocks.items()}


def _flow_lists(text: str, key: str) -> list[list[str]]:
    """Every `key: ["a", "b"]` value (written as JSON, as deploy/ writes command lists)."""
    pattern = re.compile(_FLOW_LIST.format(key=re.escape(key)), re.MULTILINE)
    return [json.loads(value) for value in pattern.findall(text)]


def _env_names(text: str) -> set[str]:
    return (
        {name for name, _ in _ENV_KEY.findall(text)}
        | set(_ENV_REF.findall(text))
        | set(_INTERPOLATION.findall(text))
    )


def _env_values(text: str) -> dict[str, str]:
    return {name: value.strip().strip("\"'") for name, value in _ENV_KEY.findall(text)}


def _compose_services() -> dict[str, str]:
    return _blocks(_blocks(_yaml(COMPOSE), 0)["services"], 2)


def _runs_ipfleet(block: str) -> bool:
    return "*ipfleet" in block


def _ipfleet_invocations() -> list[tuple[str, list[str]]]:
    """(where, the arguments after `ipfleet`) for every container that runs the image, whose
    entrypoint is `ipfleet`."""
    found = [
        (f"compose.yaml:{name}", argv)
        for name, block in _compose_services().items()
        if _runs_ipfleet(block)
        for argv in _flow_lists(block, "command")
    ]
    for path in K8S:
        found += [(path.name, argv) for argv in _flow_lists(_yaml(path), "args")]
    return found


def _run_targets(where_prefix: str) -> list[str]:
    return [
        target
        for where, argv in _ipfleet_invocations()
        if where.startswith(where_prefix) and argv[:1] == ["run"]
        for target in argv[1:]
    ]


# ---- the CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> Any:
    """The command tree behind the Typer app `services.cli.app`."""
    module = pytest.importorskip("services.cli")
    typer = pytest.importorskip("typer")
    return typer.main.get_command(module.app)


def test_deploy_files_invoke_ipfleet(cli: Any) -> None:
    assert _ipfleet_invocations(), "found no ipfleet invocation in deploy/"


@pytest.mark.parametrize(("where", "argv"), _ipfleet_invocations())
def test_every_invocation_parses_with_the_cli(cli: Any, where: str, argv: list[str]) -> None:
    from typer import TyperException  # what the CLI's usage errors derive from

    command, path, rest = cli, ["ipfleet"], list(argv)
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        assert rest, f"{where}: `{' '.join(path)}` needs a subcommand"
        name, *rest = rest
        assert name in command.commands, f"{where}: `{' '.join(path)}` has no command {name!r}"
        command = command.commands[name]
        path.append(name)
    try:
        # Parses arguments and options exactly as the CLI would, without running anything.
        command.make_context(" ".join(path), rest)
    except TyperException as error:
        pytest.fail(f"{where}: `{' '.join(path + rest)}`: {error}")


def test_kubernetes_keeps_the_image_entrypoint() -> None:
    for path in K8S:
        for command in _flow_lists(_yaml(path), "command"):
            assert command == ["ipfleet"], f"{path.name} overrides the entrypoint with {command}"


# ---- services --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["compose.yaml", "deployment-"])
def test_one_container_per_registered_service(where: str) -> None:
    targets = _run_targets(where)
    unknown = sorted(set(targets) - set(SERVICES))
    assert unknown == [], f"{where}: not in services.fleet.SERVICES: {unknown}"
    assert sorted(targets) == sorted(SERVICES), f"{where}: want one `run` per service"


def test_each_deployment_runs_one_service_robustly() -> None:
    deployments = [p for p in K8S if re.search(r"^kind: Deployment$", _yaml(p), re.MULTILINE)]
    assert len(deployments) == len(SERVICES)
    for path in deployments:
        text = _yaml(path)
        assert re.search(r"^  replicas: 2$", text, re.MULTILINE), path.name
        assert "terminationGracePeriodSeconds:" in text, path.name
        assert "resources:" in text and "requests:" in text, path.name


def test_kubernetes_manifests_name_no_namespace() -> None:
    for path in K8S:
        text = _yaml(path)
        assert not re.search(r"^\s*namespace:", text, re.MULTILINE), path.name
        assert "kind: Namespace" not in text, path.name


# ---- environment -----------------------------------------------------------------------------


def test_ipfleet_containers_use_only_settings() -> None:
    # In compose, ipfleet's environment lives in the `x-ipfleet` anchor its services merge.
    blocks = {"compose.yaml:x-ipfleet": _blocks(_yaml(COMPOSE), 0)["x-ipfleet"]}
    blocks |= {
        f"compose.yaml:{name}": block
        for name, block in _compose_services().items()
        if _runs_ipfleet(block)
    }
    blocks |= {path.name: _yaml(path) for path in K8S}
    for where, block in blocks.items():
        unknown = sorted(_env_names(block) - SETTINGS)
        assert unknown == [], f"{where}: not settings of the fleet: {unknown}"


def test_image_containers_use_only_their_images_variables() -> None:
    for name, block in _compose_services().items():
        if _runs_ipfleet(block):
            continue
        unknown = sorted(
            var
            for var in _env_names(block)
            if var not in POSTGRES_IMAGE_VARS
            and var != "CLUSTER_ID"
            and _kafka_property(var) not in KAFKA_BROKER_PROPERTIES
        )
        assert unknown == [], f"compose.yaml:{name}: undocumented variables {unknown}"


def test_compose_gives_ipfleet_valid_settings() -> None:
    environment = _blocks(_blocks(_yaml(COMPOSE), 0)["x-ipfleet"], 2)["environment"]
    values = _env_values(environment)
    assert REQUIRED_SETTINGS <= set(values)
    Settings(_env_file=None, **values)  # type: ignore[call-arg]  # raises on a bad value


def test_kubernetes_gives_ipfleet_valid_settings() -> None:
    values: dict[str, str] = {}
    for name in ("configmap.yaml", "secret.example.yaml"):
        data = _blocks(_yaml(DEPLOY / "k8s" / name), 0)
        values |= _env_values(data.get("data", "") + "\n" + data.get("stringData", ""))
    assert REQUIRED_SETTINGS <= set(values)
    Settings(_env_file=None, **values)  # type: ignore[call-arg]  # raises on a bad value


def _kafka_property(var: str) -> str | None:
    if not var.startswith("KAFKA_"):
        return None
    # The image's rule: `___` is `-`, `__` is `_`, `_` is `.`.
    name = var.removeprefix("KAFKA_").lower()
    return name.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")


# ---- the image -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_image_installs_no_development_extras() -> None:
    runs = [args for word, args in _instructions() if word == "RUN"]
    installs = [args for args in runs if "pip install" in args]
    assert any(re.search(r"pip install(\s+--?\S+)*\s+\.(\s|$)", a) for a in installs), installs
    for args in installs:
        assert "[" not in args, f"installs extras: {args}"
        assert not re.search(r"embedded|calfkit|testcontainers|pytest", args), args


def test_image_is_slim_multistage_nonroot_with_ipfleet_entrypoint() -> None:
    instructions = _instructions()
    build_args = {
        name: default
        for word, args in instructions
        if word == "ARG"
        for name, _, default in [args.partition("=")]
    }
    bases = [
        re.sub(r"\$\{?(\w+)\}?", lambda m: build_args.get(m.group(1), m.group(0)), args.split()[0])
        for word, args in instructions
        if word == "FROM"
    ]
    assert len(bases) >= 2 and all(b == "python:3.11-slim" for b in bases), bases
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert ("ENTRYPOINT", '["ipfleet"]') in instructions


def test_image_sets_only_runtime_variables() -> None:
    names = {
        name
        for word, args in _instructions()
        if word == "ENV"
        for name in re.findall(r"(?:^|\s)([A-Za-z_]\w*)=", args)
    }
    unknown = sorted(names - SETTINGS - PYTHON_RUNTIME_VARS)
    assert unknown == [], f"Dockerfile sets unknown variables {unknown}"
