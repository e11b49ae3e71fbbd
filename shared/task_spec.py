"""WorkItem + pipeline -> the Batch task (REST wire JSON). Pure: data in, data out.

The task references its input as a resource file (SAS URL or identityReference, whatever the BlobAccess given
says; a SAS names the one blob, or the run's output prefix, and lasts as long as the task's constraints allow it to
run), sends outputs and stdout/stderr back to the output container as OutputFiles (Batch uploads them itself),
runs in the pipeline's container image, and carries the untrusted blob name only in environment variables
(INPUT_NAME): the command line is fixed by pipelines.yaml and never contains input data.

Environment contract for worker images:
    INPUT_PATH          the downloaded input file (absolute when the pipeline has a commandLine; relative to the
                        task working directory when it uses the image's ENTRYPOINT)
    INPUT_FILE          the same file relative to AZ_BATCH_TASK_WORKING_DIR (in/<file>)
    INPUT_NAME          the exact blob name (untrusted: treat as data), INPUT_CONTAINER, INPUT_ETAG, INPUT_SIZE,
                        INPUT_CONTENT_TYPE
    EVENTBATCH_PIPELINE, EVENTBATCH_RUN_ID, EVENTBATCH_REQUEST_ID, EVENTBATCH_INPUT_COUNT and
    EVENTBATCH_FAILED_DIR (merge tasks)
    outputs go under $AZ_BATCH_TASK_WORKING_DIR/out/ (the pipeline's output patterns); merge tasks find the
    fan-out tasks' uploaded outputs under $AZ_BATCH_TASK_WORKING_DIR/in/ (by their whole blob names), and one file
    per fan-out task that failed while it ran in $EVENTBATCH_FAILED_DIR (relative to the working directory; named
    by its run id, holding its stderr).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared import ids, pipeline_users
from shared.durations import format_duration, parse_duration
from shared.errors import Rejection
from shared.names import MAX_BLOB_NAME, local_file_name
from shared.pipelines import TEMPLATE_FIELDS, BlobInputPolicy, Pipeline
from shared.work_items import WorkItem

# The fixed wrapper that turns INPUT_FILE into an absolute INPUT_PATH inside the container; it contains no input
# data (the name travels in the environment) and hands over to the pipeline's command with exec.
INPUT_PATH_WRAPPER = ("/bin/sh -c 'INPUT_PATH=\"$AZ_BATCH_TASK_WORKING_DIR/$INPUT_FILE\"; export INPUT_PATH; "
                      "exec \"$@\"' eventbatch-input ")
LOG_SLACK = 100  # room for "/logs/stderr.txt" and the worker's own file names under the output prefix
BLOB_EVENTS_REQUEST = "_events"
FAILED_FOLDER = "_failed"  # under a request's fan-out prefix: one file per failed fan-out task (for its merge)
SAS_MARGIN = timedelta(hours=1)  # time to wait for a node and to upload, on top of the task's own running time


class BlobAccess(Protocol):
    """How tasks reach Storage: SAS URLs (key or user delegation) or identityReference (Azure). `lifetime` is how
    long the task needs the URL (None: the access's longest); `prefix` is the only place the task writes to."""

    def read_blob_url(self, container: str, name: str, lifetime: timedelta | None = None) -> str: ...
    def list_container_url(self, container: str, lifetime: timedelta | None = None) -> str: ...
    def write_container_url(self, container: str, prefix: str = "", lifetime: timedelta | None = None) -> str: ...
    def identity_reference(self) -> dict | None: ...


@dataclass(frozen=True)
class TaskSpec:
    """One Batch task plus what the app needs to remember about it."""

    task_id: str
    pipeline: str
    body: dict  # the TaskAddParameter wire JSON
    output_container: str
    output_prefix: str
    kind: str = "task"  # task | merge | barrier
    work_item: WorkItem | None = None
    merge_task_id: str | None = None  # fan-out tasks: the merge task that depends on this one
    sas_lifetime: timedelta | None = None  # how long the task's storage URLs must stay valid (None: SAS_VALIDITY)

    @property
    def manifest_blob(self) -> str:
        return f"{self.output_prefix}/manifest.json"

    @property
    def size(self) -> int:
        return len(json.dumps(self.body, separators=(",", ":")).encode("utf-8"))


_FIELD = re.compile(r"\{(" + "|".join(TEMPLATE_FIELDS) + r")\}")


def render_path(template: str, values: dict[str, str]) -> str:
    """The template with its fields filled in one pass (a blob name holding `{date}` stays as it is)."""
    return _FIELD.sub(lambda m: values.get(m.group(1), ""), template).strip("/")


def relative_input(policy: BlobInputPolicy | None, container: str, name: str) -> str:
    """What {input} means in an output path: the input's name below the folder of the pipeline's blob prefix
    (prefix `transform/`: `transform/a/b.txt` -> `a/b.txt`; prefix `logs/2026-`: `logs/2026-01.csv` ->
    `2026-01.csv`), so the output path does not repeat the pipeline's folder. Cutting one common folder keeps
    names apart (requests of a pipeline with a blob policy must match it); the whole name where the input is not
    under that folder (another container, a queue-only pipeline) or nothing would remain."""
    folder = policy.prefix[:policy.prefix.rfind("/") + 1] if policy else ""
    if policy and container == policy.container and folder and name.startswith(folder) and len(name) > len(folder):
        return name[len(folder):]
    return name


def task_id_for(item: WorkItem) -> str:
    b = item.blob
    if item.request_id:
        return ids.request_task_id(item.pipeline, item.request_id, b.container, b.name, b.etag)
    return ids.blob_task_id(item.pipeline, b.container, b.name, b.etag)


def _output_files(pipeline: Pipeline, access: BlobAccess, prefix: str, lifetime: timedelta | None,
                  identity: dict | None) -> list[dict]:
    """The pipeline's outputs (and logs) uploaded under `prefix` of its output container."""
    url = access.write_container_url(pipeline.outputs.container, prefix, lifetime)
    condition = pipeline.outputs.upload_condition

    def dest(path: str) -> dict:
        container = {"containerUrl": url, "path": path}
        if identity:
            container["identityReference"] = identity
        return {"container": container}

    files = [{"filePattern": p, "destination": dest(prefix), "uploadOptions": {"uploadCondition": condition}}
             for p in pipeline.outputs.patterns]
    if pipeline.outputs.logs:
        for log in ("stdout.txt", "stderr.txt"):
            files.append({"filePattern": f"../{log}", "destination": dest(f"{prefix}/logs/{log}"),
                          "uploadOptions": {"uploadCondition": "taskcompletion"}})
    return files


def _constraints(pipeline: Pipeline, item: WorkItem | None) -> dict:
    retries = pipeline.retries
    wall = format_duration(pipeline.max_wall_clock_time)
    if item is not None:
        if item.overrides.retries is not None:
            retries = item.overrides.retries
        if item.overrides.max_wall_clock_time:
            wall = item.overrides.max_wall_clock_time
    return {"maxWallClockTime": wall, "maxTaskRetryCount": retries}


def sas_lifetime(max_wall_clock: timedelta | None, retries: int | None) -> timedelta | None:
    """How long a task's SAS must stay valid: every attempt may run for the whole wall clock limit, plus a margin
    for the wait in the queue and the output upload. None when the task sets no bound (no wall clock limit, or
    unlimited retries, -1): the access's SAS_VALIDITY applies."""
    if max_wall_clock is None or retries is None or retries < 0:
        return None
    return max_wall_clock * (1 + retries) + SAS_MARGIN


def _lifetime(constraints: dict) -> timedelta | None:
    """How long the task's SAS must last, from the constraints Batch enforces on it (sas_lifetime)."""
    wall = constraints.get("maxWallClockTime")
    return sas_lifetime(parse_duration(wall) if wall else None, constraints.get("maxTaskRetryCount", 0))


def _env(values: dict[str, str]) -> list[dict]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _container_settings(pipeline: Pipeline, image: str | None = None) -> dict:
    settings = {"imageName": image or pipeline.image, "workingDirectory": pipeline.working_directory}
    if pipeline.container_run_options:
        settings["containerRunOptions"] = pipeline.container_run_options
    pipeline_users.apply_to_container_settings(pipeline.task_user, settings)
    return settings


def _task_body(pipeline: Pipeline, task_id: str, display_name: str, command_line: str, image: str | None,
               files: dict, env: dict[str, str], constraints: dict, required_slots: int, **after) -> dict:
    """The TaskAddParameter every task of a pipeline shares (fan-out, merge, barrier), in Batch's field order;
    `files`: its resourceFiles/outputFiles (a barrier has none); `after`: dependsOn, exitConditions."""
    return {"id": task_id, "displayName": display_name, "commandLine": command_line,
            "containerSettings": _container_settings(pipeline, image), **pipeline_users.identity(pipeline.task_user),
            **files, "environmentSettings": _env(env), "constraints": constraints, "requiredSlots": required_slots,
            **after}


def _merge_prefix(pipeline: Pipeline, request_id: str, task_id: str, now: datetime) -> str:
    return render_path(pipeline.merge.path, {"pipeline": pipeline.name, "request": request_id, "task": task_id,
                                             "date": now.strftime("%Y-%m-%d")})


def build_task(item: WorkItem, pipeline: Pipeline, access: BlobAccess, *, now: datetime | None = None,
               merge_follows: bool = False) -> TaskSpec:
    """The Batch task for one input; Rejection when the name makes the output path too long."""
    now = now or datetime.now(UTC)
    blob = item.blob
    task_id = task_id_for(item)
    values = {"pipeline": pipeline.name, "input": relative_input(pipeline.blob_input, blob.container, blob.name),
              "inputName": blob.name, "inputKey": ids.input_key(blob.container, blob.name),
              "request": item.request_id or BLOB_EVENTS_REQUEST, "task": task_id, "date": now.strftime("%Y-%m-%d")}
    prefix = render_path(pipeline.outputs.path, values)
    if len(prefix) + LOG_SLACK > MAX_BLOB_NAME:
        raise Rejection("unsafe-name", f"the blob name is too long: its output path would be {len(prefix)} "
                                       f"characters and output blob names are limited to {MAX_BLOB_NAME}; use a "
                                       f"name shorter than {len(blob.name) - (len(prefix) + LOG_SLACK - MAX_BLOB_NAME)}"
                                       " characters")
    file_path = f"in/{local_file_name(blob.name)}"
    identity = access.identity_reference()
    constraints = _constraints(pipeline, item)
    lifetime = _lifetime(constraints)
    resource = {"httpUrl": access.read_blob_url(blob.container, blob.name, lifetime), "filePath": file_path}
    if identity:
        resource["identityReference"] = identity
    env = dict(pipeline.environment)
    env.update(item.overrides.environment)
    env.update({
        "INPUT_NAME": blob.name, "INPUT_CONTAINER": blob.container, "INPUT_FILE": file_path,
        "INPUT_PATH": file_path, "INPUT_ETAG": blob.etag, "INPUT_SIZE": str(blob.size),
        "INPUT_CONTENT_TYPE": blob.content_type or "",
        "EVENTBATCH_PIPELINE": pipeline.name, "EVENTBATCH_RUN_ID": task_id,
        "EVENTBATCH_REQUEST_ID": item.request_id or "",
    })
    command = INPUT_PATH_WRAPPER + pipeline.command_line if pipeline.command_line.strip() else ""
    files = {"resourceFiles": [resource], "outputFiles": _output_files(pipeline, access, prefix, lifetime, identity)}
    body = _task_body(pipeline, task_id, f"{pipeline.name} {values['inputKey']}", command, None, files, env,
                      constraints, pipeline.required_slots)
    if merge_follows:
        _tell_the_merge(body, pipeline, access, item.request_id or BLOB_EVENTS_REQUEST, task_id, lifetime, identity,
                        now)
    return TaskSpec(task_id=task_id, pipeline=pipeline.name, body=body, output_container=pipeline.outputs.container,
                    output_prefix=prefix, work_item=item, sas_lifetime=lifetime)


def failed_input_name(fanout: str, task_id: str) -> str:
    """Where a failed fan-out task leaves its stderr for the merge: `<fan-out prefix>/_failed/<task id>`, which the
    merge downloads with the outputs (in/_failed/<task id>)."""
    return f"{fanout}/{FAILED_FOLDER}/{task_id}"


def _tell_the_merge(body: dict, pipeline: Pipeline, access: BlobAccess, request_id: str, task_id: str,
                    lifetime: timedelta | None, identity: dict | None, now: datetime) -> None:
    """A fan-out task that a merge waits for. When it fails it uploads its stderr to the request's `_failed/`
    folder (uploadCondition taskfailure: Batch uploads before it marks the task completed, so the merge, which
    depends on it, finds the file; a task that failed before it ran uploads nothing, which the merge tells from
    EVENTBATCH_INPUT_COUNT). Its dependency action: without merge.requireAll a failure satisfies the merge, which
    runs after all of them with what succeeded; with it, a failure blocks the merge (shared.requests skips it)."""
    fanout = fanout_prefix(pipeline, request_id, now)
    container = {"containerUrl": access.write_container_url(pipeline.outputs.container, f"{fanout}/{FAILED_FOLDER}",
                                                            lifetime),
                 "path": failed_input_name(fanout, task_id)}
    if identity:
        container["identityReference"] = identity
    body["outputFiles"].append({"filePattern": "../stderr.txt", "destination": {"container": container},
                                "uploadOptions": {"uploadCondition": "taskfailure"}})
    action = "block" if pipeline.merge.require_all else "satisfy"
    body["exitConditions"] = {"default": {"dependencyAction": action}}


def marker_name(job_id: str, task_id: str) -> str:
    """The completion marker's blob name in MARKER_CONTAINER (job and task ids never contain '/')."""
    return f"{job_id}/{task_id}"


def with_completion_marker(spec: TaskSpec, job_id: str, container_url: str, identity: dict | None) -> TaskSpec:
    """The task with its completion marker added as the last OutputFile: a copy of the task's stderr.txt (the one
    file every task has, usually empty; the app never reads it) uploaded on completion, success or failure, to
    `<job id>/<task id>` in the marker container. Its blob-created event is what starts the run's completion
    (shared.completion); Batch does not order uploads, so it only means "look at the task now"."""
    container = {"containerUrl": container_url, "path": marker_name(job_id, spec.task_id)}
    if identity:
        container["identityReference"] = identity
    marker = {"filePattern": "../stderr.txt", "destination": {"container": container},
              "uploadOptions": {"uploadCondition": "taskcompletion"}}
    return replace(spec, body={**spec.body, "outputFiles": [*(spec.body.get("outputFiles") or []), marker]})


def fanout_prefix(pipeline: Pipeline, request_id: str, now: datetime | None = None) -> str:
    """The output folder shared by all fan-out tasks of a request: the template cut before the first per-input
    field. The merge task downloads everything under it."""
    template = pipeline.outputs.path
    cut = min([template.index(f) for f in ("{input}", "{inputName}", "{inputKey}", "{task}")
                if f in template] or [len(template)])
    now = now or datetime.now(UTC)
    return render_path(template[:cut], {"pipeline": pipeline.name, "request": request_id,
                                        "date": now.strftime("%Y-%m-%d")})


def build_merge_task(pipeline: Pipeline, request_id: str, depends_on: Sequence[str], access: BlobAccess, *,
                     now: datetime | None = None) -> TaskSpec:
    """The task that runs after all fan-out tasks of a request and reads their outputs from in/."""
    if pipeline.merge is None:
        raise ValueError(f"pipeline {pipeline.name} has no merge step")
    now = now or datetime.now(UTC)
    task_id = ids.merge_task_id(pipeline.name, request_id)
    prefix = _merge_prefix(pipeline, request_id, task_id, now)
    identity = access.identity_reference()
    constraints = _constraints(pipeline, None)
    lifetime = _lifetime(constraints)
    fanout = fanout_prefix(pipeline, request_id, now)
    source = {"storageContainerUrl": access.list_container_url(pipeline.outputs.container, lifetime),
              "blobPrefix": fanout + "/", "filePath": "in"}
    if identity:
        source["identityReference"] = identity
    env = dict(pipeline.environment)
    env.update({"EVENTBATCH_PIPELINE": pipeline.name, "EVENTBATCH_RUN_ID": task_id,
                "EVENTBATCH_REQUEST_ID": request_id, "EVENTBATCH_INPUT_COUNT": str(len(depends_on)),
                # Batch keeps a downloaded blob's whole name under filePath: the failed inputs' files are here.
                "EVENTBATCH_FAILED_DIR": f"in/{failed_input_name(fanout, '')}".rstrip("/")})
    files = {"resourceFiles": [source], "outputFiles": _output_files(pipeline, access, prefix, lifetime, identity)}
    body = _task_body(pipeline, task_id, f"{pipeline.name} merge", pipeline.merge.command_line, pipeline.merge.image,
                      files, env, constraints, pipeline.required_slots, dependsOn={"taskIds": list(depends_on)})
    if len(json.dumps(body["dependsOn"])) > 64000:
        raise Rejection("outside-policy", f"{len(depends_on)} dependencies are too many for one task (Batch limits a "
                                          "task's dependency list to 64000 characters); lower merge.fanIn")
    return TaskSpec(task_id=task_id, pipeline=pipeline.name, body=body, output_container=pipeline.outputs.container,
                    output_prefix=prefix, kind="merge", sas_lifetime=lifetime)


def build_barrier_task(pipeline: Pipeline, request_id: str, index: int, depends_on: Sequence[str],
                       merge_id: str, *, now: datetime | None = None) -> TaskSpec:
    """A task that does nothing but wait for up to merge.fanIn fan-out tasks, so the merge can wait on a short list
    of barriers instead of thousands of IDs. It never blocks the merge: it satisfies its dependants even if its
    (trivial) command fails."""
    now = now or datetime.now(UTC)
    task_id = ids.barrier_task_id(pipeline.name, request_id, index)
    prefix = _merge_prefix(pipeline, request_id, task_id, now) + f"/_barriers/{index}"
    env = {"EVENTBATCH_PIPELINE": pipeline.name, "EVENTBATCH_RUN_ID": task_id, "EVENTBATCH_REQUEST_ID": request_id}
    body = _task_body(pipeline, task_id, f"{pipeline.name} barrier {index}", pipeline.merge.barrier_command_line,
                      pipeline.merge.image, {}, env, {"maxWallClockTime": "PT5M", "maxTaskRetryCount": 1}, 1,
                      dependsOn={"taskIds": list(depends_on)},
                      exitConditions={"default": {"dependencyAction": "satisfy"}})
    return TaskSpec(task_id=task_id, pipeline=pipeline.name, body=body, output_container=pipeline.outputs.container,
                    output_prefix=prefix, kind="barrier", merge_task_id=merge_id,
                    sas_lifetime=_lifetime(body["constraints"]))  # its completion marker's SAS


def plan_merge(pipeline: Pipeline, request_id: str, fanout: Sequence[TaskSpec], access: BlobAccess, *,
               now: datetime | None = None) -> list[TaskSpec]:
    """Fan-out tasks + (barriers when there are more than merge.fanIn of them) + the merge task, in submission
    order (a task is always added after the tasks it depends on). Each fan-out task records which task waits for
    it (`merge_task_id`): the reconciler keeps it until that one is recorded."""
    fan_in = pipeline.merge.fan_in
    merge_id = ids.merge_task_id(pipeline.name, request_id)
    if len(fanout) <= fan_in:
        tasks = [replace(s, merge_task_id=merge_id) for s in fanout]
        return [*tasks, build_merge_task(pipeline, request_id, [s.task_id for s in tasks], access, now=now)]
    tasks, barriers = [], []
    for index, start in enumerate(range(0, len(fanout), fan_in)):
        group = fanout[start:start + fan_in]
        barrier = build_barrier_task(pipeline, request_id, index, [s.task_id for s in group], merge_id, now=now)
        tasks.extend(replace(s, merge_task_id=barrier.task_id) for s in group)
        barriers.append(barrier)
    if len(barriers) > fan_in:
        raise Rejection("outside-policy", f"{len(fanout)} inputs need {len(barriers)} barrier tasks, more than "
                                          f"merge.fanIn ({fan_in}); split the request")
    merge = build_merge_task(pipeline, request_id, [b.task_id for b in barriers], access, now=now)
    merge.body["environmentSettings"] = [e if e["name"] != "EVENTBATCH_INPUT_COUNT" else
                                         {"name": "EVENTBATCH_INPUT_COUNT", "value": str(len(fanout))}
                                         for e in merge.body["environmentSettings"]]
    return [*tasks, *barriers, merge]


def retarget(spec: TaskSpec, pipeline: Pipeline, access: BlobAccess, task_id: str, prefix: str,
             label: str = "") -> TaskSpec:
    """The same task as another attempt (shared.control's retries): a new id and its own output folder, the same
    inputs, command, environment and constraints."""
    env = [e if e["name"] != "EVENTBATCH_RUN_ID" else {"name": "EVENTBATCH_RUN_ID", "value": task_id}
           for e in spec.body.get("environmentSettings") or []]
    body = {**spec.body, "id": task_id, "displayName": f"{spec.body.get('displayName', '')} {label}".strip(),
            "environmentSettings": env,
            "outputFiles": _output_files(pipeline, access, prefix, spec.sas_lifetime, access.identity_reference())}
    return replace(spec, task_id=task_id, body=body, output_prefix=prefix)
