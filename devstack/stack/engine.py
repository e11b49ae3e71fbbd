"""The container engine the local stack uses, and the project-owned podman configuration.

Podman on these machines needs cgroupfs, runc and no default ulimits; rather than edit /etc we write our own
containers.conf and storage.conf under the state folder and point CONTAINERS_CONF / CONTAINERS_STORAGE_CONF at
them, so images and containers live in `.devstack/containers/` and nothing outside the repository changes.
A working docker engine, when one is present, is used instead.

One exception to "everything under the state folder": podman 4.3 + conmon 2.1 cannot use a storage runroot longer
than about 50 characters: every `podman kill` of an attached `podman run` then waits 15 s before the run notices
(measured; most likely a unix-socket path limit, like podman issues #8798 and #9264). A clone at a deep path would hit that, so when
`<state>/containers/run` is too long the runroot moves to a short per-stack folder in the temp directory
(runtime state only: /run-like, rebuilt by podman, removed by `make clean`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.common import image_copy, paths
from devstack.stack.processes import StackError


@dataclass(frozen=True)
class Engine:
    name: str  # "podman" or "docker"
    env: dict[str, str]  # extra environment every call to the CLI needs

    def run(self, *args: str, check: bool = True, timeout: float = 300, input_: bytes | None = None,
            ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(  # noqa: S603 - argv list
            image_copy.argv(self.name, args, self.name), env={**os.environ, **self.env}, capture_output=True, timeout=timeout,
            input=input_,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"`{self.name} {args[0]}` failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc


# The longest storage runroot with which an attached `podman run` still notices its container's exit at once
# (measured on podman 4.3.1 / conmon 2.1.6: 51 works, 52 does not); kept with a margin.
RUNROOT_MAX_CHARS = 44


def runroot_for(state: Path) -> Path:
    """Where podman keeps runtime state for the stack whose state folder is `state`."""
    inside = state.resolve() / "containers" / "run"
    if len(str(inside)) <= RUNROOT_MAX_CHARS:
        return inside
    tag = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"eventbatch-{os.getuid()}-{tag}" / "run"
    if len(str(short)) > RUNROOT_MAX_CHARS:  # a long TMPDIR
        short = Path("/tmp") / short.parent.name / "run"  # noqa: S108 - a short, private folder is the point
    return short


def remove_outside_runroot(state: Path | None = None) -> None:
    """`make clean`: drop the temp-folder runroot a deep state folder uses (the rest goes with the state folder)."""
    runroot = runroot_for(state or paths.state_dir())
    if runroot.parent.name.startswith("eventbatch-"):
        shutil.rmtree(runroot.parent, ignore_errors=True)


def podman_config(state: Path | None = None) -> dict[str, str]:
    """Write the project's podman config files (idempotent) and return the env that selects them."""
    state = state or paths.state_dir()
    root = state / "containers"
    for sub in ("storage", "tmp", "networks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    runroot = runroot_for(state)
    runroot.mkdir(parents=True, exist_ok=True)
    if runroot.parent != root:
        runroot.parent.chmod(0o700)
    conf = state / "containers.conf"
    storage = state / "storage.conf"
    _write_if_changed(conf, (
        "# Written by eventbatch (devstack/stack/engine.py); used through CONTAINERS_CONF.\n"
        "[containers]\n"
        "default_ulimits = []\n"
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'runtime = "runc"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{root}/events.log"\n'
        f'tmp_dir = "{root}/tmp"\n'
        f'image_copy_tmp_dir = "{root}/tmp"\n'
        # podman reads TMPDIR for some temp files (`run` makes one while reading the image; /var/tmp otherwise).
        f'env = ["TMPDIR={root}/tmp"]\n'
        "[network]\n"
        f'network_config_dir = "{root}/networks"\n'
    ))
    _write_if_changed(storage, (
        "# Written by eventbatch (devstack/stack/engine.py); used through CONTAINERS_STORAGE_CONF.\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root}/storage"\n'
        f'runroot = "{runroot}"\n'
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
