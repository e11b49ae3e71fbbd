"""Request-body validation with Batch's error codes: the entity schemas (pool, job, task, start task, job
preparation/release tasks, auto pool specification), made of the field checkers in fields.py.

Each ``check_*`` function takes the decoded JSON body as the SDK sent it and raises BatchError naming the
property (dotted path) and the reason; it returns nothing, so the stored entity is exactly what the client sent.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from devstack.batch_emulator import errors
from devstack.batch_emulator.model.fields import (
    ID_RE,
    check_bool,
    check_duration,
    check_enum,
    check_env,
    check_id,
    check_int,
    check_list,
    check_metadata,
    check_object,
    check_relative_path,
    check_str,
    require,
)
from devstack.batch_emulator.run_options import host_access_option

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
LIFETIMES = ("job", "jobschedule")  # autoPoolSpecification.poolLifetimeOption
AUTO_USER_SCOPES = {"task", "pool"}
ELEVATION = {"nonadmin", "admin"}


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
    check_pool_info(require(body, "poolInfo"), schedule=bool(body.get("_schedule")))
    check_job_common(body)
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


def check_job_tasks(body: dict, allow_host_access: bool = False) -> None:
    """400 naming the property for a bad jobPreparationTask / jobReleaseTask."""
    if body.get("jobManagerTask") is not None:
        raise errors.unsupported("jobManagerTask")
    prep, rel = body.get("jobPreparationTask"), body.get("jobReleaseTask")
    for name, spec in (("jobPreparationTask", prep), ("jobReleaseTask", rel)):
        if spec is None:
            continue
        check_object(spec, name)
        check_str(spec, "id", name + ".", max_len=64)
        require(spec, "commandLine", name + ".")
        check_str(spec, "commandLine", name + ".")
        if spec.get("containerSettings") is not None:
            check_task_container_settings(spec["containerSettings"], name + ".containerSettings",
                                                     allow_host_access)
        check_resource_files(spec.get("resourceFiles"), name + ".resourceFiles")
        check_env(spec.get("environmentSettings"), name + ".environmentSettings")
        check_user_identity(spec.get("userIdentity"), name + ".userIdentity")
    if prep is not None:
        check_bool(prep, "waitForSuccess", "jobPreparationTask.")
        check_bool(prep, "rerunOnNodeRebootAfterSuccess", "jobPreparationTask.")
        c = prep.get("constraints")
        if c is not None:
            check_object(c, "jobPreparationTask.constraints")
            check_duration(c, "maxWallClockTime", "jobPreparationTask.constraints.")
            check_duration(c, "retentionTime", "jobPreparationTask.constraints.")
            check_int(c, "maxTaskRetryCount", "jobPreparationTask.constraints.", -1)
    if rel is not None:
        if prep is None:
            raise errors.invalid_property("jobReleaseTask", "set", "A job release task requires a job "
                                          "preparation task (jobPreparationTask)")
        check_duration(rel, "maxWallClockTime", "jobReleaseTask.")
        check_duration(rel, "retentionTime", "jobReleaseTask.")


@contextmanager
def _prefixed(prefix: str):
    """Re-raise validation errors with the property path as the caller's body has it."""
    try:
        yield
    except errors.BatchError as exc:
        name = exc.values.get("PropertyName")
        if name is not None:
            exc.values["PropertyName"] = prefix + name
        raise


def check_pool_info(info: dict, path: str = "poolInfo", schedule: bool = False) -> None:
    """poolInfo: exactly one of poolId and autoPoolSpecification (a clear 400 naming the property)."""
    check_object(info, path)
    spec = info.get("autoPoolSpecification")
    if info.get("poolId") and spec is not None:
        raise errors.invalid_property(f"{path}.autoPoolSpecification", "...", "Specify either poolId or "
                                      "autoPoolSpecification, not both")
    if info.get("poolId"):
        return
    if spec is None:
        raise errors.missing_property(f"{path}.poolId")
    p = f"{path}.autoPoolSpecification"
    check_object(spec, p)
    if not spec.get("poolLifetimeOption"):
        raise errors.missing_property(f"{p}.poolLifetimeOption")
    lifetime = str(spec["poolLifetimeOption"]).lower()
    if lifetime not in LIFETIMES:
        raise errors.invalid_property(f"{p}.poolLifetimeOption", spec["poolLifetimeOption"],
                                      "Allowed values: job, jobschedule")
    if lifetime == "jobschedule" and not schedule:
        raise errors.invalid_property(f"{p}.poolLifetimeOption", spec["poolLifetimeOption"], "jobschedule is "
                                      "only valid in a job schedule's jobSpecification; use job")
    prefix = spec.get("autoPoolIdPrefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 20
                               or not all(c.isalnum() or c in "-_" for c in prefix)):
        raise errors.invalid_property(f"{p}.autoPoolIdPrefix", prefix, "Up to 20 letters, digits, hyphens and "
                                      "underscores")
    if spec.get("keepAlive") is not None and not isinstance(spec["keepAlive"], bool):
        raise errors.invalid_property(f"{p}.keepAlive", spec["keepAlive"], "Expected true or false")
    pool = spec.get("pool")
    if pool is None:
        raise errors.missing_property(f"{p}.pool")
    check_object(pool, f"{p}.pool")
    if pool.get("id") is not None:
        raise errors.invalid_property(f"{p}.pool.id", pool["id"], "A pool specification has no id; Batch "
                                      "assigns the auto pool's id")
    with _prefixed(f"{p}.pool."):
        check_pool({**pool, "id": "autopool"})
