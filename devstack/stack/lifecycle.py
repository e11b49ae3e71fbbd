"""The local stack: Azurite, the private registry, the Batch emulator and the Functions host, started once.

`up()` health-checks each service, reuses any that is already healthy, starts the rest with logs under
`.devstack/logs/`, builds the sample images, and writes the stack's endpoints and (well-known, local-only)
credentials to `.devstack/env` so `source .devstack/env` points the azure SDKs at it. `down()` stops what the pid
files say we started, and the containers the emulator left behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devstack.common import local_accounts, paths
from devstack.common.env_file import read_env_file, write_env_file
from devstack.stack.azurite import azurite_service
from devstack.stack.emulator import batch_emulator_service
from devstack.stack.engine import Engine, detect_engine
from devstack.stack.host import func_host_service
from devstack.stack.ports import Ports
from devstack.stack.processes import Service, StackError, stop
from devstack.stack.registry import registry_service

SERVICE_ORDER = ("azurite", "registry", "batch-emulator", "func-host")


@dataclass
class StackInfo:
    env: dict[str, str]
    actions: dict[str, str] = field(default_factory=dict)  # service -> started | reused | restarted


def stack_env(ports: Ports, engine: Engine) -> dict[str, str]:
    registry = f"127.0.0.1:{ports.registry}"
    conn = local_accounts.azurite_connection_string("127.0.0.1", ports.blob, ports.queue, ports.table)
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": conn,
        "REGISTRY_SERVER": registry,
        "REGISTRY_USERNAME": local_accounts.REGISTRY_USERNAME,
        "REGISTRY_PASSWORD": local_accounts.REGISTRY_PASSWORD,
        "WORKER_IMAGE": f"{registry}/eventbatch/worker:1",
        "HELLO_IMAGE": f"{registry}/eventbatch/hello:1",
        "CONTAINER_RUNTIME": engine.name,
        "BATCH_ACCOUNT_URL": f"http://127.0.0.1:{ports.batch}",
        "BATCH_ACCOUNT_NAME": local_accounts.BATCH_ACCOUNT_NAME,
        "BATCH_ACCOUNT_KEY": local_accounts.BATCH_ACCOUNT_KEY,
    }
    env.update(engine.env)
    return env


def services(ports: Ports, env: dict[str, str], with_host: bool = True,
             images_from: Engine | None = None) -> list[Service]:
    """The stack's services in start order; with `images_from`, the emulator's start builds the sample images."""
    result = [azurite_service(ports, env), registry_service(ports.registry),
              batch_emulator_service(ports, env, images_from)]
    if with_host:
        result.append(func_host_service(env))
    return result


def up(with_host: bool = True, build_images: bool = True, log=print) -> StackInfo:
    ports = Ports.from_env()
    engine = detect_engine()
    env = stack_env(ports, engine)
    paths.state_dir().mkdir(parents=True, exist_ok=True)
    write_env_file(env)
    info = StackInfo(env)
    log("eventbatch local stack:")
    for service in services(ports, env, with_host, images_from=engine if build_images else None):
        info.actions[service.name] = service.bring_up(log)
    log(f"endpoints and credentials written to {paths.env_file()} (source it to use the azure SDKs)")
    return info


def down(log=print) -> list[str]:
    stopped = []
    env = read_env_file() or {}
    candidates = [Service(name, [name], None, lambda: False) for name in reversed(SERVICE_ORDER)]
    for service in candidates:
        if stop(service):
            stopped.append(service.name)
            log(f"  {service.name:<14} stopped")
    _remove_emulator_containers(env)
    if not stopped:
        log("nothing of ours was running")
    return stopped


def _remove_emulator_containers(env: dict[str, str]) -> None:
    """Containers the emulator started and did not get to remove (for example after a kill)."""
    if env.get("CONTAINER_RUNTIME") != "podman":
        return
    engine = Engine("podman", {k: env[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF") if k in env})
    try:
        listing = engine.run("ps", "-aq", "--filter", "label=eventbatch.emulator", check=False, timeout=30)
        ids = listing.stdout.decode().split()
        if ids:
            engine.run("rm", "-f", *ids, check=False, timeout=60)
    except (OSError, StackError):
        pass
