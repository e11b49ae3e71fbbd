"""Request-body validation with Batch's error codes (MissingRequiredProperty, InvalidPropertyValue, ...).

Each ``check_*`` function takes the decoded JSON body as the SDK sent it and raises BatchError naming the
property (dotted path) and the reason; it returns nothing, so the stored entity is exactly what the client sent.
"""

from __future__ import annotations

import posixpath
import re

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.run_options import host_access_option

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTAINER_TYPES = {"dockerCompatible", "criCompatible"}
WORKING_DIRS = {"taskWorkingDirectory", "containerImageDefault"}
BIND_SOURCES = {"Shared", "Startup", "VfsMounts", "Task", "JobPrep", "Applications"}
UPLOAD_CONDITIONS = {"tasksuccess", "taskfailure", "taskcompletion"}
ALL_TASKS_COMPLETE = {"noaction", "terminatejob"}
TASK_FAILURE = {"noaction", "performexitoptionsjobaction"}
JOB_ACTIONS = {"none", "disable", "terminate"}
DEPENDENCY_ACTIONS = {"satisfy", "block"}
DEALLOCATION = {"requeue", "terminate", "taskcompletion", "retaineddata"}
NODE_FILL = {"spread", "pack"}
AUTO_USER_SCOPES = {"task", "pool"}
ELEVATION = {"nonadmin", "admin"}


def _lower_enum(value, allowed: set[str]) -> bool:
    return isinstance(value, str) and value.lower() in {a.lower() for a in allowed}


def require(body: dict, name: str, path: str = ""):
    full = f"{path}{name}"
    if not isinstance(body, dict) or body.get(name) is None:
        raise errors.missing_property(full)
    return body[name]


def check_object(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise errors.invalid_property(path, value, "Expected a JSON object")
    return value


def check_list(value, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid_property(path, value, "Expected a JSON array")
    return value


def check_int(body: dict, name: str, path: str = "", lo: int | None = None, hi: int | None = None):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_property(f"{path}{name}", value, "Expected an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise errors.invalid_property(f"{path}{name}", value, f"Must be between {lo} and {hi}")
    return value


def check_bool(body: dict, name: str, path: str = ""):
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise errors.invalid_property(f"{path}{name}", value, "Expected true or false")
    return value


def check_str(body: dict, name: str, path: str = "", max_len: int | None = None):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.invalid_property(f"{path}{name}", value, "Expected a string")
    if max_len is not None and len(value) > max_len:
        raise errors.invalid_property(f"{path}{name}", value, f"Must be at most {max_len} characters")
    return value


def check_enum(body: dict, name: str, allowed: set[str], path: str = ""):
    value = body.get(name)
    if value is not None and not _lower_enum(value, allowed):
        raise errors.invalid_property(f"{path}{name}", value, f"Allowed values: {', '.join(sorted(allowed))}")
    return value


def check_duration(body: dict, name: str, path: str = "", minimum: float | None = None,
                   maximum: float | None = None):
    value = body.get(name)
    if value is None:
        return None
    seconds = timeutil.parse_duration(value)
    if seconds is None:
        raise errors.invalid_property(f"{path}{name}", value, "Expected an ISO 8601 duration such as PT1H")
    if (minimum is not None and seconds < minimum) or (maximum is not None and seconds > maximum):
        raise errors.invalid_property(f"{path}{name}", value, "The duration is out of the allowed range")
    return seconds


def check_id(body: dict, path: str = "") -> str:
    ident = require(body, "id", path)
    if not isinstance(ident, str) or not ID_RE.match(ident):
        raise errors.invalid_property(f"{path}id", ident, "The ID can contain letters, digits, hyphens and "
                                      "underscores only, and must be 1 to 64 characters long")
    return ident


def check_metadata(body: dict, path: str = "") -> None:
    for i, item in enumerate(check_list(body.get("metadata"), f"{path}metadata")):
        check_object(item, f"{path}metadata[{i}]")
        require(item, "name", f"{path}metadata[{i}].")
        check_str(item, "value", f"{path}metadata[{i}].")


def check_env(settings, path: str) -> None:
    for i, item in enumerate(check_list(settings, path)):
        check_object(item, f"{path}[{i}]")
        name = require(item, "name", f"{path}[{i}].")
        if not isinstance(name, str) or not name:
            raise errors.invalid_property(f"{path}[{i}].name", name, "Expected a non-empty string")
        check_str(item, "value", f"{path}[{i}].")


def check_relative_path(value: str, prop: str) -> None:
    if value.startswith("/") or value.startswith("\\"):
        raise errors.invalid_property(prop, value, "The path must be relative to the task working directory")
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        raise errors.invalid_property(prop, value, "The path cannot break out of the task working directory")


def check_resource_files(files, path: str) -> None:
    for i, rf in enumerate(check_list(files, path)):
        p = f"{path}[{i}]."
        check_object(rf, p[:-1])
        sources = [k for k in ("autoStorageContainerName", "storageContainerUrl", "httpUrl") if rf.get(k)]
        if len(sources) != 1:
            raise errors.invalid_property(p + "httpUrl", rf.get("httpUrl"), "Exactly one of "
                                          "autoStorageContainerName, storageContainerUrl and httpUrl must be set")
        if rf.get("httpUrl") and not rf.get("filePath"):
            raise errors.missing_property(p + "filePath")
        if rf.get("httpUrl") and rf.get("blobPrefix"):
            raise errors.invalid_property(p + "blobPrefix", rf["blobPrefix"], "blobPrefix is valid only with "
                                          "autoStorageContainerName or storageContainerUrl")
        if rf.get("filePath"):
            check_relative_path(rf["filePath"], p + "filePath")
        mode = rf.get("fileMode")
        if mode is not None and (not isinstance(mode, str) or not re.fullmatch(r"0?[0-7]{3,4}", mode)):
            raise errors.invalid_property(p + "fileMode", mode, "fileMode must be an octal string such as 0644")


def check_output_files(files, path: str) -> None:
    for i, of in enumerate(check_list(files, path)):
        p = f"{path}[{i}]."
        check_object(of, p[:-1])
        require(of, "filePattern", p)
        dest = check_object(require(of, "destination", p), p + "destination")
        cont = check_object(require(dest, "container", p + "destination."), p + "destination.container")
        require(cont, "containerUrl", p + "destination.container.")
        for j, header in enumerate(check_list(cont.get("uploadHeaders"), p + "destination.container.uploadHeaders")):
            require(header, "name", f"{p}destination.container.uploadHeaders[{j}].")
        options = check_object(require(of, "uploadOptions", p), p + "uploadOptions")
        require(options, "uploadCondition", p + "uploadOptions.")
        check_enum(options, "uploadCondition", UPLOAD_CONDITIONS, p + "uploadOptions.")


def check_registry(reg, path: str) -> None:
    check_object(reg, path)
    for key in ("registryServer", "username", "password"):
        check_str(reg, key, path + ".")
    if reg.get("username") and not reg.get("password") and not reg.get("identityReference"):
        raise errors.missing_property(path + ".password")


def check_task_container_settings(cs, path: str, allow_host_access: bool = False) -> None:
    check_object(cs, path)
    require(cs, "imageName", path + ".")
    check_str(cs, "imageName", path + ".")
    check_str(cs, "containerRunOptions", path + ".")
    check_run_options(cs.get("containerRunOptions"), path + ".containerRunOptions", allow_host_access)
    if cs.get("registry") is not None:
        check_registry(cs["registry"], path + ".registry")
    check_enum(cs, "workingDirectory", WORKING_DIRS, path + ".")
    mounts = cs.get("containerHostBatchBindMounts")
    for i, m in enumerate(check_list(mounts, path + ".containerHostBatchBindMounts")):
        check_enum(m, "source", BIND_SOURCES, f"{path}.containerHostBatchBindMounts[{i}].")
        check_bool(m, "isReadOnly", f"{path}.containerHostBatchBindMounts[{i}].")


def check_run_options(options: str | None, prop: str, allow_host_access: bool) -> None:
    """400 naming the option when containerRunOptions would reach into the host (see run_options.py)."""
    try:
        found = host_access_option(options)
    except ValueError as exc:
        raise errors.invalid_property(prop, options, f"containerRunOptions cannot be split into options: {exc}") \
            from None
    if found and not allow_host_access:
        option, why = found
        raise errors.invalid_property(prop, options, f"The Batch emulator refuses the run option '{option}': it "
                                      f"{why}. Start the emulator with --allow-host-access to allow it.")


def check_user_identity(ui, path: str) -> None:
    if ui is None:
        return
    check_object(ui, path)
    auto = ui.get("autoUser")
    if auto is not None:
        check_enum(auto, "scope", AUTO_USER_SCOPES, path + ".autoUser.")
        check_enum(auto, "elevationLevel", ELEVATION, path + ".autoUser.")


def check_start_task(st, path: str, allow_host_access: bool = False) -> None:
    check_object(st, path)
    require(st, "commandLine", path + ".")
    check_str(st, "commandLine", path + ".")
    if st.get("containerSettings") is not None:
        check_task_container_settings(st["containerSettings"], path + ".containerSettings", allow_host_access)
    check_resource_files(st.get("resourceFiles"), path + ".resourceFiles")
    check_env(st.get("environmentSettings"), path + ".environmentSettings")
    check_user_identity(st.get("userIdentity"), path + ".userIdentity")
    check_int(st, "maxTaskRetryCount", path + ".", -1)
    check_bool(st, "waitForSuccess", path + ".")


def check_exit_options(opts, path: str, job_task_failure: str | None) -> None:
    if opts is None:
        return
    check_object(opts, path)
    check_enum(opts, "jobAction", JOB_ACTIONS, path + ".")
    check_enum(opts, "dependencyAction", DEPENDENCY_ACTIONS, path + ".")
    if opts.get("jobAction") and opts["jobAction"].lower() != "none" and (
            (job_task_failure or "noaction").lower() == "noaction"):
        raise errors.invalid_property(path + ".jobAction", opts["jobAction"], "jobAction requires the job's "
                                      "onTaskFailure to be performexitoptionsjobaction")


def check_exit_conditions(ec, path: str, job_task_failure: str | None) -> None:
    if ec is None:
        return
    check_object(ec, path)
    for i, item in enumerate(check_list(ec.get("exitCodes"), path + ".exitCodes")):
        require(item, "code", f"{path}.exitCodes[{i}].")
        check_int(item, "code", f"{path}.exitCodes[{i}].")
        check_exit_options(require(item, "exitOptions", f"{path}.exitCodes[{i}]."),
                           f"{path}.exitCodes[{i}].exitOptions", job_task_failure)
    for i, item in enumerate(check_list(ec.get("exitCodeRanges"), path + ".exitCodeRanges")):
        for key in ("start", "end"):
            require(item, key, f"{path}.exitCodeRanges[{i}].")
            check_int(item, key, f"{path}.exitCodeRanges[{i}].")
        check_exit_options(require(item, "exitOptions", f"{path}.exitCodeRanges[{i}]."),
                           f"{path}.exitCodeRanges[{i}].exitOptions", job_task_failure)
    for key in ("preProcessingError", "fileUploadError", "default"):
        check_exit_options(ec.get(key), f"{path}.{key}", job_task_failure)


def check_task(body: dict, job: dict, allow_host_access: bool = False) -> None:
    """Validate one task of createTask/addTaskCollection against its job (dependencies, exit options)."""
    check_object(body, "task")
    check_id(body)
    require(body, "commandLine")
    check_str(body, "commandLine")
    check_str(body, "displayName", max_len=1024)
    if body.get("containerSettings") is not None:
        check_task_container_settings(body["containerSettings"], "containerSettings", allow_host_access)
    check_resource_files(body.get("resourceFiles"), "resourceFiles")
    check_output_files(body.get("outputFiles"), "outputFiles")
    check_env(body.get("environmentSettings"), "environmentSettings")
    check_user_identity(body.get("userIdentity"), "userIdentity")
    check_int(body, "requiredSlots", "", 1, 256)
    constraints = body.get("constraints")
    if constraints is not None:
        check_object(constraints, "constraints")
        check_duration(constraints, "maxWallClockTime", "constraints.")
        check_duration(constraints, "retentionTime", "constraints.")
        check_int(constraints, "maxTaskRetryCount", "constraints.", -1)
    check_exit_conditions(body.get("exitConditions"), "exitConditions", job.get("onTaskFailure"))
    if body.get("multiInstanceSettings") is not None:
        raise errors.unsupported("multiInstanceSettings (multi-instance tasks)")
    deps = body.get("dependsOn")
    if deps is not None:
        check_object(deps, "dependsOn")
        if not job.get("usesTaskDependencies"):
            raise errors.BatchError(400, "TaskDependenciesNotSpecifiedOnJob", "The Job does not allow Tasks with "
                                    "dependencies: create it with usesTaskDependencies set to true.")
        for i, tid in enumerate(check_list(deps.get("taskIds"), "dependsOn.taskIds")):
            if not isinstance(tid, str) or not ID_RE.match(tid):
                raise errors.invalid_property(f"dependsOn.taskIds[{i}]", tid, "Not a valid task ID")
        for i, rng in enumerate(check_list(deps.get("taskIdRanges"), "dependsOn.taskIdRanges")):
            start = require(rng, "start", f"dependsOn.taskIdRanges[{i}].")
            end = require(rng, "end", f"dependsOn.taskIdRanges[{i}].")
            check_int(rng, "start", f"dependsOn.taskIdRanges[{i}].", 0)
            check_int(rng, "end", f"dependsOn.taskIdRanges[{i}].", 0)
            if end < start:
                raise errors.invalid_property(f"dependsOn.taskIdRanges[{i}].end", end, "end must not be less "
                                              "than start")


def check_pool(body: dict, allow_host_access: bool = False) -> None:
    check_object(body, "pool")
    check_id(body)
    require(body, "vmSize")
    check_str(body, "vmSize")
    check_str(body, "displayName", max_len=1024)
    if body.get("cloudServiceConfiguration") is not None:
        raise errors.invalid_property("cloudServiceConfiguration", "...", "Cloud service pools are retired; "
                                      "use virtualMachineConfiguration")
    vmc = check_object(require(body, "virtualMachineConfiguration"), "virtualMachineConfiguration")
    check_object(require(vmc, "imageReference", "virtualMachineConfiguration."),
                 "virtualMachineConfiguration.imageReference")
    require(vmc, "nodeAgentSKUId", "virtualMachineConfiguration.")
    cc = vmc.get("containerConfiguration")
    if cc is not None:
        p = "virtualMachineConfiguration.containerConfiguration"
        check_object(cc, p)
        require(cc, "type", p + ".")
        check_enum(cc, "type", CONTAINER_TYPES, p + ".")
        for i, name in enumerate(check_list(cc.get("containerImageNames"), p + ".containerImageNames")):
            if not isinstance(name, str) or not name:
                raise errors.invalid_property(f"{p}.containerImageNames[{i}]", name, "Expected an image name")
        for i, reg in enumerate(check_list(cc.get("containerRegistries"), p + ".containerRegistries")):
            check_registry(reg, f"{p}.containerRegistries[{i}]")
    auto = check_bool(body, "enableAutoScale")
    check_int(body, "targetDedicatedNodes", "", 0, 2000)
    check_int(body, "targetLowPriorityNodes", "", 0, 1000)
    check_int(body, "taskSlotsPerNode", "", 1, 256)
    check_duration(body, "resizeTimeout", "", 300)
    if auto:
        if not body.get("autoScaleFormula"):
            raise errors.missing_property("autoScaleFormula")
        for key in ("targetDedicatedNodes", "targetLowPriorityNodes"):
            if body.get(key) is not None:
                raise errors.invalid_property(key, body[key], f"{key} must not be specified when "
                                              "enableAutoScale is true")
        check_duration(body, "autoScaleEvaluationInterval", "", 300, 168 * 3600)
    else:
        if body.get("autoScaleFormula"):
            raise errors.invalid_property("autoScaleFormula", body["autoScaleFormula"], "autoScaleFormula "
                                          "must not be specified when enableAutoScale is false")
    if body.get("startTask") is not None:
        check_start_task(body["startTask"], "startTask", allow_host_access)
    policy = body.get("taskSchedulingPolicy")
    if policy is not None:
        check_enum(check_object(policy, "taskSchedulingPolicy"), "nodeFillType", NODE_FILL,
                   "taskSchedulingPolicy.")
    check_metadata(body)


def check_job(body: dict) -> None:
    check_object(body, "job")
    check_id(body)
    check_str(body, "displayName", max_len=1024)
    from devstack.batch_emulator.auto_pools import check_pool_info  # auto_pools imports this module
    check_pool_info(require(body, "poolInfo"), schedule=bool(body.get("_schedule")))
    check_job_common(body)
    from devstack.batch_emulator.job_prep import check_job_tasks
    check_job_tasks(body)
    check_bool(body, "usesTaskDependencies")
    check_env(body.get("commonEnvironmentSettings"), "commonEnvironmentSettings")


def check_job_common(body: dict) -> None:
    check_int(body, "priority", "", -1000, 1000)
    check_int(body, "maxParallelTasks", "", -1)
    check_bool(body, "allowTaskPreemption")
    check_enum(body, "onAllTasksComplete", ALL_TASKS_COMPLETE)
    check_enum(body, "onTaskFailure", TASK_FAILURE)
    if body.get("maxParallelTasks") == 0:
        raise errors.invalid_property("maxParallelTasks", 0, "maxParallelTasks must be -1 or greater than 0")
    constraints = body.get("constraints")
    if constraints is not None:
        check_object(constraints, "constraints")
        check_duration(constraints, "maxWallClockTime", "constraints.")
        check_int(constraints, "maxTaskRetryCount", "constraints.", -1)
    check_metadata(body)


def check_resize(body: dict) -> None:
    check_object(body, "resize")
    check_int(body, "targetDedicatedNodes", "", 0, 2000)
    check_int(body, "targetLowPriorityNodes", "", 0, 1000)
    check_duration(body, "resizeTimeout", "", 300)
    check_enum(body, "nodeDeallocationOption", DEALLOCATION)
