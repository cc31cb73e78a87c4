"""Which services exist and how to build them, by name."""

from __future__ import annotations

import importlib

from shared.runtime import Service
from shared.settings import Settings

SERVICES: dict[str, str] = {
    "provisioner": "services.provisioner.service",
    "warmup": "services.warmup.service",
    "reputation": "services.reputation.service",
}


class ServiceNotBuilt(RuntimeError):
    pass


def build_service(name: str, settings: Settings) -> Service:
    if name not in SERVICES:
        raise KeyError(f"unknown service {name!r}; choose from {', '.join(SERVICES)} or all")
    try:
        module = importlib.import_module(SERVICES[name])
    except ModuleNotFoundError as error:
        if error.name and SERVICES[name].startswith(error.name):
            raise ServiceNotBuilt(f"the {name} service is not built yet") from error
        raise
    service: Service = module.build(settings)
    return service


def available() -> list[str]:
    """Services whose code is present."""
    names = []
    for name, module in SERVICES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        names.append(name)
    return names


def expand(names: list[str]) -> list[str]:
    if "all" in names:
        return available()
    return list(dict.fromkeys(names))
