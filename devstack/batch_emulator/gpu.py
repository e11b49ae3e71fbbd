"""GPU pools in the emulator: which vmSizes are GPU-capable, whether this machine has a GPU, and the engine
arguments that hand the host's GPUs to a task container.

On Batch, an N-series (Standard_N*) container pool's node agent gives container tasks the GPU by itself (no
`--gpus` in containerRunOptions). The emulator does the same when the machine has a GPU; when it has none, a task
on such a pool fails at start with GPU_UNAVAILABLE instead of silently running without one.
The detector is injectable so that both decisions can be tested on any machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GPU_UNAVAILABLE_CODE = "GPUUnavailable"
GPU_UNAVAILABLE_MESSAGE = (
    "The pool's vmSize {vm_size} is GPU-capable, but this machine has no GPU the container runtime can use "
    "(no /dev/nvidia0 or nvidia-smi{cdi}); the task was not started."
)
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
_GPU_SIZE = re.compile(r"^standard_n", re.IGNORECASE)


def is_gpu_vm_size(vm_size: str | None) -> bool:
    """True for the N-series families (Standard_NC*, ND*, NV*, NG*...), compared case-insensitively."""
    return bool(vm_size) and bool(_GPU_SIZE.match(vm_size.strip()))


@dataclass(frozen=True)
class GpuHost:
    """What this machine offers: any NVIDIA GPU, and whether a CDI spec for nvidia.com/gpu exists (podman)."""

    has_gpu: bool
    has_cdi_spec: bool = False


def _cdi_spec_present(dirs: tuple[str, ...] = CDI_DIRS) -> bool:
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            continue
        for f in p.iterdir():
            if f.suffix in (".yaml", ".yml", ".json"):
                try:
                    if "nvidia.com/gpu" in f.read_text(errors="replace"):
                        return True
                except OSError:
                    continue
    return False


def _nvidia_smi_lists_gpu() -> bool:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def detect_host() -> GpuHost:
    """The real detector: /dev/nvidia0 or `nvidia-smi -L`, plus a CDI spec in /etc/cdi or /var/run/cdi."""
    has_gpu = Path("/dev/nvidia0").exists() or _nvidia_smi_lists_gpu()
    return GpuHost(has_gpu=has_gpu, has_cdi_spec=has_gpu and _cdi_spec_present())


Detector = Callable[[], GpuHost]


@dataclass(frozen=True)
class GpuDecision:
    """run_args to add to the container create argv, or (when `error` is set) fail the task with that message."""

    run_args: list[str]
    error: str | None = None


def gpu_decision(vm_size: str | None, engine: str, detector: Detector = detect_host) -> GpuDecision:
    """Non-GPU pools: nothing. GPU pools: the engine's GPU flags when the host can provide them, else an error."""
    if not is_gpu_vm_size(vm_size):
        return GpuDecision([])
    host = detector()
    if host.has_gpu:
        if engine == "docker":
            return GpuDecision(["--gpus", "all"])
        if engine == "podman" and host.has_cdi_spec:
            return GpuDecision(["--device", "nvidia.com/gpu=all"])
    cdi = ", or no CDI spec for nvidia.com/gpu in /etc/cdi or /var/run/cdi" if engine == "podman" else ""
    if engine not in ("podman", "docker"):
        cdi = f"; the {engine} runtime cannot pass GPUs"
    return GpuDecision([], GPU_UNAVAILABLE_MESSAGE.format(vm_size=vm_size, cdi=cdi))


class GpuUnavailable(Exception):
    """A task of a GPU pool cannot get a GPU here. Same shape as runtimes.StartError (code, message), plus the
    failureInfo category: servererror, since the machine (not the task) lacks the hardware."""

    code = GPU_UNAVAILABLE_CODE
    category = "servererror"

    def __init__(self, message: str):
        super().__init__(f"{GPU_UNAVAILABLE_CODE}: {message}")
        self.message = message


def cached(detector: Detector = detect_host) -> Detector:
    """Detect once per emulator: the hardware does not change while it runs."""
    seen: list[GpuHost] = []

    def once() -> GpuHost:
        if not seen:
            seen.append(detector())
        return seen[0]

    return once


def container_gpu_args(vm_size: str | None, engine: str, detector: Detector) -> list[str]:
    """The create arguments for a container task of a pool of this vmSize; raises GpuUnavailable."""
    decision = gpu_decision(vm_size, engine, detector)
    if decision.error:
        raise GpuUnavailable(decision.error)
    return decision.run_args


FAKE_ENV = "EVENTBATCH_EMULATOR_GPU"


def detector_from_env(environ: dict[str, str]) -> Detector:
    """EVENTBATCH_EMULATOR_GPU=absent|present fakes the answer (tests: both decisions on any machine); unset or
    `detect` asks the machine, once."""
    value = (environ.get(FAKE_ENV) or "detect").strip().lower()
    if value == "absent":
        return lambda: GpuHost(False)
    if value == "present":
        return lambda: GpuHost(True, True)
    if value != "detect":
        raise ValueError(f"{FAKE_ENV} must be absent, present or detect, not {value!r}")
    return cached(detect_host)
