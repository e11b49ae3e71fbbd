"""The container engine the local stack uses, and the project-owned podman configuration.

Podman on these machines needs cgroupfs, runc and no default ulimits; rather than edit /etc we write our own
containers.conf and storage.conf under the state folder and point CONTAINERS_CONF / CONTAINERS_STORAGE_CONF at
them, so images and containers live in `.devstack/containers/` and nothing outside the repository changes.
A working docker engine, when one is present, is used instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack import paths
from devstack.services import StackError


@dataclass(frozen=True)
class Engine:
    name: str  # "podman" or "docker"
    env: dict[str, str]  # extra environment every call to the CLI needs

    def run(self, *args: str, check: bool = True, timeout: float = 300, input_: bytes | None = None,
            ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(  # noqa: S603 - argv list
            [self.name, *args], env={**os.environ, **self.env}, capture_output=True, timeout=timeout,
            input=input_,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"`{self.name} {args[0]}` failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc


def podman_config(state: Path | None = None) -> dict[str, str]:
    """Write the project's podman config files (idempotent) and return the env that selects them."""
    state = state or paths.state_dir()
    root = state / "containers"
    for sub in ("storage", "run", "tmp", "networks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = state / "containers.conf"
    storage = state / "storage.conf"
    _write_if_changed(conf, (
        "# Written by eventbatch (devstack/containers.py); used through CONTAINERS_CONF.\n"
        "[containers]\n"
        "default_ulimits = []\n"
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'runtime = "runc"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{root}/events.log"\n'
        f'tmp_dir = "{root}/tmp"\n'
        "[network]\n"
        f'network_config_dir = "{root}/networks"\n'
    ))
    _write_if_changed(storage, (
        "# Written by eventbatch (devstack/containers.py); used through CONTAINERS_STORAGE_CONF.\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root}/storage"\n'
        f'runroot = "{root}/run"\n'
    ))
    return {"CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def detect_engine(preference: str | None = None) -> Engine:
    """docker when a docker engine answers (or when asked for), else podman with the project config."""
    preference = (preference or os.environ.get("EVENTBATCH_CONTAINER_RUNTIME") or "auto").lower()
    if preference not in {"auto", "podman", "docker"}:
        raise StackError(f"EVENTBATCH_CONTAINER_RUNTIME={preference!r}: use auto, podman or docker")
    if preference in {"auto", "docker"} and shutil.which("docker"):
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20)  # noqa: S607
        if probe.returncode == 0:
            return Engine("docker", {})
        if preference == "docker":
            raise StackError("EVENTBATCH_CONTAINER_RUNTIME=docker but `docker info` fails: start the docker engine")
    if shutil.which("podman"):
        return Engine("podman", podman_config())
    raise StackError("no container engine: install podman and runc (`make setup` does it as root)")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
