"""The engine argv a container task of a GPU pool is created with: the GPU flags are there (as the agent prepends
them to the containerRunOptions), before the image, and absent for an ordinary pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.batch_emulator import gpu
from devstack.batch_emulator.runtimes.base import RunSpec
from devstack.batch_emulator.runtimes.cli import ContainerCliRuntime


def _argv(engine: str, vm_size: str, host: gpu.GpuHost, user_options: list[str]) -> list[str]:
    runtime = ContainerCliRuntime(engine, executable=f"/nonexistent/{engine}")
    run_options = [*gpu.container_gpu_args(vm_size, runtime.name, lambda: host), *user_options]
    spec = RunSpec(name="t1", command=["nvidia-smi", "-L"], env={}, workdir="/w", mounts=[],
                   image="registry.local/gpu:1", run_options=run_options, stdout_path="/o", stderr_path="/e")
    return runtime._run_args(spec, Path("/env"), Path("/cid"))


@pytest.mark.parametrize("engine, flags", [("docker", ["--gpus", "all"]),
                                           ("podman", ["--device", "nvidia.com/gpu=all"])])
def test_gpu_pool_container_is_created_with_the_engines_gpu_flags(engine, flags):
    argv = _argv(engine, "Standard_NC4as_T4_v3", gpu.GpuHost(True, True), ["--shm-size", "1g"])
    image_at = argv.index("registry.local/gpu:1")
    at = next(i for i in range(len(argv)) if argv[i:i + 2] == flags)
    assert at < image_at
    assert argv[image_at + 1:] == ["nvidia-smi", "-L"]
    assert "--shm-size" in argv[:image_at]


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_ordinary_pool_container_has_no_gpu_flags(engine):
    argv = _argv(engine, "Standard_D2s_v3", gpu.GpuHost(True, True), [])
    assert "--gpus" not in argv and "nvidia.com/gpu=all" not in argv


def test_gpu_pool_without_a_gpu_is_never_created():
    with pytest.raises(gpu.GpuUnavailable, match="this machine has no GPU"):
        _argv("docker", "standard_nc6s_v3", gpu.GpuHost(False), [])
