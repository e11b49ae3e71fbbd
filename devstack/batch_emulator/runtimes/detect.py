"""Choosing a runtime: the one the user asked for, or for `auto` the first engine that actually works here.

`auto` prefers a working docker engine (what Batch itself drives) and falls back to podman. A `docker`
command alone is not enough (on these machines it is often a client without an engine), so `docker info`
must succeed. podman must run with the project's CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (see
docs and .devstack/env): without them it would use the system storage and crun, which fail here.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .base import Runtime, RuntimeUnavailable
from .cli import ContainerCliRuntime
from .process import ProcessRuntime

PREFERENCES = ("auto", "podman", "docker", "process")

_INSTALL_HINT = (
    "install podman and runc (Debian: apt-get install -y podman runc; or `bash devstack/setup.sh`) and run with "
    "the env of .devstack/env, or start a docker engine, or use --runtime process for non-container pools"
)


def detect_runtime(preference: str, env: dict[str, str] | None = None) -> Runtime:
    pref = (preference or "auto").strip().lower()
    if pref not in PREFERENCES:
        raise RuntimeUnavailable(f"unknown runtime {preference!r}; choose one of {', '.join(PREFERENCES)}")
    full_env = {**os.environ, **(env or {})}
    if pref == "process":
        return ProcessRuntime(env)
    if pref == "docker":
        problem = _docker_problem(full_env)
        if problem:
            raise RuntimeUnavailable(f"runtime docker is not usable: {problem}")
        return ContainerCliRuntime("docker", shutil.which("docker", path=full_env.get("PATH")), env)
    if pref == "podman":
        problem = _podman_problem(full_env)
        if problem:
            raise RuntimeUnavailable(f"runtime podman is not usable: {problem}")
        return ContainerCliRuntime("podman", shutil.which("podman", path=full_env.get("PATH")), env)
    docker_problem = _docker_problem(full_env)
    if not docker_problem:
        return ContainerCliRuntime("docker", shutil.which("docker", path=full_env.get("PATH")), env)
    podman_problem = _podman_problem(full_env)
    if not podman_problem:
        return ContainerCliRuntime("podman", shutil.which("podman", path=full_env.get("PATH")), env)
    raise RuntimeUnavailable(
        f"no container runtime works here (docker: {docker_problem}; podman: {podman_problem}); {_INSTALL_HINT}"
    )


def _docker_problem(env: dict[str, str]) -> str | None:
    exe = shutil.which("docker", path=env.get("PATH"))
    if not exe:
        return "the docker command is not installed"
    try:
        res = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=15, env=env, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 15 s"
    if res.returncode != 0:
        return "`docker info` failed (no docker engine running?)"
    return None


def _podman_problem(env: dict[str, str]) -> str | None:
    exe = shutil.which("podman", path=env.get("PATH"))
    if not exe:
        return "the podman command is not installed"
    missing = [k for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF") if not env.get(k)]
    if missing:
        return f"{' and '.join(missing)} not set (source .devstack/env, written by `make up`)"
    for key in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"):
        if not os.path.isfile(env[key]):
            return f"{key} points to {env[key]}, which does not exist (run `make up` to write it)"
    try:
        res = subprocess.run([exe, "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True,
                             text=True, timeout=30, env=env, check=False)
    except subprocess.TimeoutExpired:
        return "`podman info` did not answer within 30 s"
    if res.returncode != 0:
        return f"`podman info` failed: {res.stderr.strip()[-300:]}"
    return None
