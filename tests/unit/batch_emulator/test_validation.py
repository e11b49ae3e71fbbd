"""Body validation: Batch's codes and the property each error names."""

from __future__ import annotations

import pytest

from devstack.batch_emulator import errors
from devstack.batch_emulator.agent.run_specs import normalize_image, split_command_line
from devstack.batch_emulator.model import validation
from devstack.batch_emulator.runtimes.images import registry_of

JOB = {"id": "j", "poolInfo": {"poolId": "p"}, "usesTaskDependencies": False, "onTaskFailure": "noaction"}
POOL = {"id": "p", "vmSize": "standard_d2s_v3", "virtualMachineConfiguration": {
    "imageReference": {"publisher": "canonical"}, "nodeAgentSKUId": "batch.node.ubuntu 22.04"}}


def error_of(fn, *args) -> errors.BatchError:
    with pytest.raises(errors.BatchError) as err:
        fn(*args)
    return err.value


@pytest.mark.parametrize("task_id,ok", [("a", True), ("A-b_9", True), ("x" * 64, True), ("x" * 65, False),
                                        ("a.b", False), ("a b", False), ("", False), ("ü", False)])
def test_id_rules(task_id, ok):
    body = {"id": task_id, "commandLine": "x"}
    if ok:
        validation.check_task(body, JOB)
    else:
        assert error_of(validation.check_task, body, JOB).code in ("InvalidPropertyValue", "MissingRequiredProperty")


def test_missing_command_line_is_missing_required_property():
    err = error_of(validation.check_task, {"id": "t"}, JOB)
    assert err.code == "MissingRequiredProperty" and err.values["PropertyName"] == "commandLine"


@pytest.mark.parametrize("rf,prop", [
    ({"httpUrl": "http://x/y"}, "resourceFiles[0].filePath"),
    ({"httpUrl": "http://x/y", "storageContainerUrl": "http://x", "filePath": "a"}, "resourceFiles[0].httpUrl"),
    ({"httpUrl": "http://x/y", "filePath": "../escape"}, "resourceFiles[0].filePath"),
    ({"httpUrl": "http://x/y", "filePath": "/abs"}, "resourceFiles[0].filePath"),
    ({"httpUrl": "http://x/y", "filePath": "a", "fileMode": "rwx"}, "resourceFiles[0].fileMode"),
])
def test_resource_file_rules(rf, prop):
    err = error_of(validation.check_task, {"id": "t", "commandLine": "x", "resourceFiles": [rf]}, JOB)
    assert err.values["PropertyName"] == prop


def test_output_file_upload_condition_enum():
    of = {"filePattern": "*.txt", "destination": {"container": {"containerUrl": "http://x/c"}},
          "uploadOptions": {"uploadCondition": "always"}}
    err = error_of(validation.check_task, {"id": "t", "commandLine": "x", "outputFiles": [of]}, JOB)
    assert err.code == "InvalidPropertyValue"
    assert err.values["PropertyName"] == "outputFiles[0].uploadOptions.uploadCondition"


def test_dependencies_need_uses_task_dependencies():
    body = {"id": "t", "commandLine": "x", "dependsOn": {"taskIds": ["a"]}}
    assert error_of(validation.check_task, body, JOB).code == "TaskDependenciesNotSpecifiedOnJob"
    validation.check_task(body, {**JOB, "usesTaskDependencies": True})
    bad_range = {**body, "dependsOn": {"taskIdRanges": [{"start": 5, "end": 1}]}}
    assert error_of(validation.check_task, bad_range, {**JOB, "usesTaskDependencies": True}).code == \
        "InvalidPropertyValue"


def test_job_action_needs_perform_exit_options_job_action():
    body = {"id": "t", "commandLine": "x", "exitConditions": {"default": {"jobAction": "terminate"}}}
    assert error_of(validation.check_task, body, JOB).code == "InvalidPropertyValue"
    validation.check_task(body, {**JOB, "onTaskFailure": "performExitOptionsJobAction"})


def test_pool_rules():
    validation.check_pool(POOL)
    err = error_of(validation.check_pool, {**POOL, "enableAutoScale": True})
    assert err.values["PropertyName"] == "autoScaleFormula"
    err = error_of(validation.check_pool, {**POOL, "enableAutoScale": True, "autoScaleFormula": "$T=1;",
                                           "targetDedicatedNodes": 2})
    assert err.values["PropertyName"] == "targetDedicatedNodes"
    vmc = dict(POOL["virtualMachineConfiguration"], containerConfiguration={"type": "docker"})
    err = error_of(validation.check_pool, {**POOL, "virtualMachineConfiguration": vmc})
    assert err.values["PropertyName"] == "virtualMachineConfiguration.containerConfiguration.type"
    assert error_of(validation.check_pool, {**POOL, "taskSlotsPerNode": 0}).code == "InvalidPropertyValue"
    assert error_of(validation.check_pool, {"id": "p", "vmSize": "x"}).values["PropertyName"] == \
        "virtualMachineConfiguration"


def test_command_line_split_without_shell():
    assert split_command_line("/bin/sh -c 'echo $HOME; ls'") == ["/bin/sh", "-c", "echo $HOME; ls"]
    assert split_command_line('prog "a b" c\\ d') == ["prog", "a b", "c d"]
    assert split_command_line("") is None and split_command_line("   ") is None


def test_image_names():
    assert normalize_image("busybox") == "busybox:latest"
    assert normalize_image("127.0.0.1:5055/x/y") == "127.0.0.1:5055/x/y:latest"
    assert normalize_image("reg.io/x@sha256:abc") == "reg.io/x@sha256:abc"
    assert registry_of("127.0.0.1:5055/x/y:1") == "127.0.0.1:5055"
    assert registry_of("library/ubuntu") is None and registry_of("ubuntu") is None  # Docker Hub
