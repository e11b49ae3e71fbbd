import pytest

from devstack.batch_emulator import gpu


@pytest.mark.parametrize("size", ["Standard_NC4as_T4_v3", "standard_nc6s_v3", "STANDARD_ND96asr_v4", "Standard_NV12s_v3"])
def test_n_series_is_gpu(size):
    assert gpu.is_gpu_vm_size(size)


@pytest.mark.parametrize("size", ["Standard_D2s_v3", "standard_a1_v2", "", None, "Basic_N1", "Standard_E4s_v5"])
def test_other_sizes_are_not_gpu(size):
    assert not gpu.is_gpu_vm_size(size)


def _never():
    raise AssertionError("the detector must not run for a non-GPU pool")


def test_non_gpu_pool_unchanged():
    d = gpu.gpu_decision("Standard_D2s_v3", "podman", _never)
    assert d.run_args == [] and d.error is None


def test_docker_with_gpu_gets_gpus_all():
    d = gpu.gpu_decision("Standard_NC4as_T4_v3", "docker", lambda: gpu.GpuHost(True))
    assert d.run_args == ["--gpus", "all"] and d.error is None


def test_podman_with_cdi_gets_cdi_device():
    d = gpu.gpu_decision("standard_nc4as_t4_v3", "podman", lambda: gpu.GpuHost(True, True))
    assert d.run_args == ["--device", "nvidia.com/gpu=all"] and d.error is None


def test_podman_gpu_without_cdi_spec_fails():
    d = gpu.gpu_decision("Standard_NC4as_T4_v3", "podman", lambda: gpu.GpuHost(True, False))
    assert d.run_args == [] and "nvidia.com/gpu" in d.error


@pytest.mark.parametrize("engine", ["podman", "docker", "process"])
def test_no_gpu_fails_with_clear_message(engine):
    d = gpu.gpu_decision("Standard_NC4as_T4_v3", engine, lambda: gpu.GpuHost(False))
    assert d.run_args == []
    assert "this machine has no GPU" in d.error and "Standard_NC4as_T4_v3" in d.error


def test_cdi_spec_detection(tmp_path):
    (tmp_path / "other.yaml").write_text("kind: example.com/fpga\n")
    assert not gpu._cdi_spec_present((str(tmp_path), str(tmp_path / "missing")))
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n")
    assert gpu._cdi_spec_present((str(tmp_path),))


def test_fake_detection_from_env_and_bad_value():
    assert gpu.detector_from_env({"EVENTBATCH_EMULATOR_GPU": "absent"})() == gpu.GpuHost(False)
    assert gpu.detector_from_env({"EVENTBATCH_EMULATOR_GPU": "Present"})() == gpu.GpuHost(True, True)
    with pytest.raises(ValueError, match="EVENTBATCH_EMULATOR_GPU"):
        gpu.detector_from_env({"EVENTBATCH_EMULATOR_GPU": "yes"})


def test_detection_runs_once():
    calls = []
    once = gpu.cached(lambda: calls.append(1) or gpu.GpuHost(False))
    once(), once()
    assert calls == [1]


def test_container_gpu_args_raises_gpu_unavailable():
    with pytest.raises(gpu.GpuUnavailable) as exc:
        gpu.container_gpu_args("Standard_NC6s_v3", "docker", lambda: gpu.GpuHost(False))
    assert exc.value.code == "GPUUnavailable" and exc.value.category == "servererror"
    assert gpu.container_gpu_args("Standard_NC6s_v3", "docker", lambda: gpu.GpuHost(True)) == ["--gpus", "all"]
