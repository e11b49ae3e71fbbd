"""pipelines.yaml: load, substitute `${SETTING}` / `${SETTING:-default}`, validate, and turn into typed objects.

One file declares pools and pipelines (infra/ generates Bicep parameters from its `pools:`), validated whole at
start-up, every error naming its path (`pipelines[1].outputs.path`) and what is allowed. Substitution happens on the
parsed tree (string values only), so a setting's value can never change the YAML structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from shared import pipeline_users, pool_rules
from shared.code_env import loads_code
from shared.config_reader import Reader, check_env_name
from shared.errors import ConfigError
from shared.names import CONTAINER_NAME
from shared.pipeline_preparation import Preparation, parse_preparation
from shared.schedules import Schedule, parse_schedule_section

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
OVERRIDABLE = ("environment", "retries", "maxWallClockTime")
# Output path placeholders: {input} is the input name below the folder of the pipeline's blob prefix (blob
# `transform/a/b.txt` of prefix `transform/` is `a/b.txt`), {inputName} the whole blob name (see task_spec).
TEMPLATE_FIELDS = ("pipeline", "input", "inputName", "inputKey", "request", "task", "date")
UPLOAD_CONDITIONS = ("tasksuccess", "taskfailure", "taskcompletion")
WORKING_DIRECTORIES = ("taskWorkingDirectory", "containerImageDefault")


@dataclass(frozen=True)
class BlobInputPolicy:
    container: str
    prefix: str = ""
    glob: str = "*"


@dataclass(frozen=True)
class Outputs:
    container: str
    path: str  # template: {pipeline} {input} {inputName} {inputKey} {request} {task} {date}
    patterns: tuple[str, ...] = ("out/**",)
    upload_condition: str = "tasksuccess"
    logs: bool = True


@dataclass(frozen=True)
class MergeStep:
    command_line: str
    path: str  # output path template of the merge task
    image: str | None = None
    # At most this many direct dependencies per task (Batch caps a dependency list at 64,000 characters); a larger
    # fan-out waits on barrier tasks of fan_in tasks each, and the merge waits on the barriers.
    fan_in: int = 1000
    barrier_command_line: str = "/bin/sh -c 'exit 0'"


@dataclass(frozen=True)
class Pipeline:
    name: str
    pool: str
    image: str
    command_line: str  # "" = the image's ENTRYPOINT
    outputs: Outputs
    description: str = ""
    blob_input: BlobInputPolicy | None = None
    queue_input: bool = False
    container_run_options: str = ""
    working_directory: str = "taskWorkingDirectory"
    environment: Mapping[str, str] = field(default_factory=dict)
    overridable: tuple[str, ...] = ()  # which of OVERRIDABLE a request may set
    overridable_environment: tuple[str, ...] = ()  # the environment variables it may set (names, exactly)
    max_input_bytes: int | None = None
    merge: MergeStep | None = None
    retries: int = 0
    max_wall_clock_time: timedelta = timedelta(hours=1)
    required_slots: int = 1
    max_inputs: int = 5000
    enabled: bool = True  # false (or its pool's): every input is rejected, naming why (work_items.check_enabled)
    schedule: Schedule | None = None  # shared.schedules: run over a prefix at fixed times
    preparation: Preparation | None = None  # per-node step, the job's jobPreparationTask (pipeline_preparation)
    task_user: Any = None  # shared.pipeline_users.TaskUserOptions: userIdentity, bind mounts, registry
    max_concurrent_tasks: int | None = None  # shared.quotas: runs in flight beyond it wait `received`, held
    priority: int = 0  # the job's Batch priority (-1000..1000) and the order of submission (shared.quotas)


@dataclass(frozen=True)
class Scale:
    mode: str  # autoscale | fixed
    formula: str = "default"
    evaluation_interval: timedelta = timedelta(minutes=5)
    max_dedicated_nodes: int = 1
    max_spot_nodes: int = 0
    dedicated_nodes: int = 1
    spot_nodes: int = 0


@dataclass(frozen=True)
class Pool:
    id: str
    vm_size: str
    image_reference: Mapping[str, str]
    node_agent_sku_id: str
    task_slots_per_node: int
    images: tuple[str, ...]
    registries: tuple[pipeline_users.Registry, ...]
    scale: Scale
    start_task_command: str | None = None
    start_task_wait: bool = True
    enabled: bool = True  # false: never created; its pipelines take no work (e.g. a GPU pool off by default)
    start_task_user: Any = None  # shared.pipeline_users.AutoUser (None: non-admin, pool scope)


@dataclass(frozen=True)
class PipelineConfig:
    pools: Mapping[str, Pool]
    pipelines: Mapping[str, Pipeline]

    def pipeline(self, name: str) -> Pipeline | None:
        return self.pipelines.get(name)

    def takes_work(self, pipeline: Pipeline) -> bool:
        """False for a pipeline switched off by its own `enabled` or its pool's (work_items.check_enabled says why)."""
        return pipeline.enabled and self.pools[pipeline.pool].enabled


# ---- substitution -----------------------------------------------------------------------------------------
def substitute(node: Any, settings: Mapping[str, str], where: str = "") -> Any:
    """Replace ${NAME} / ${NAME:-default} in every string of the tree; ConfigError for an unset NAME."""
    if isinstance(node, dict):
        return {k: substitute(v, settings, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, settings, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def repl(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        value = settings.get(name)
        if value is not None and value != "":
            return value
        if default is not None:
            return default
        raise ConfigError(f"pipelines.yaml {where}: ${{{name}}} is not set; set the app setting {name} "
                          f"(or write ${{{name}:-default}})")

    return _VAR.sub(repl, node)


# ---- validation helpers -----------------------------------------------------------------------------------
def check_template(template: str, where: str) -> None:
    for name in re.findall(r"\{([^{}]*)\}", template):
        if name not in TEMPLATE_FIELDS:
            raise ConfigError(f"pipelines.yaml {where}: unknown field {{{name}}}; use {', '.join(TEMPLATE_FIELDS)}")
    if template.startswith("/") or ".." in template.split("/"):
        raise ConfigError(f"pipelines.yaml {where}: {template!r} must be a relative blob path without '..'")


# ---- pools -----------------------------------------------------------------------------------------------
def _pool(data: Any, where: str) -> Pool:
    r = Reader(data, where)
    r.known("id", "vmSize", "imageReference", "nodeAgentSkuId", "taskSlotsPerNode", "container", "startTask", "scale",
            "description", "enabled")
    pool_rules.check_pool(r.data, where)
    image_ref = r.sub("imageReference", required=True)
    image_ref.known("publisher", "offer", "sku", "version", "virtualMachineImageId")
    container = r.sub("container", required=True)
    container.known("images", "registries")
    registries = []
    for i, item in enumerate(container.data.get("registries") or []):
        registries.append(pipeline_users.parse_registry(Reader(item, f"{where}.container.registries[{i}]")))
    scale = r.sub("scale", required=True)
    scale.known("mode", "formula", "evaluationInterval", "maxDedicatedNodes", "maxSpotNodes", "dedicatedNodes",
                "spotNodes")
    start = r.sub("startTask")
    if start:
        start.known("commandLine", "waitForSuccess", "userIdentity")
    interval = scale.duration("evaluationInterval", "PT5M")
    if interval < timedelta(seconds=1):
        # Azure accepts PT5M..PT168H; the local emulator also accepts shorter intervals for quick demos.
        raise scale.fail("evaluationInterval", "must be at least PT1S (Azure: PT5M..PT168H)")
    return Pool(
        id=r.str("id", required=True),
        vm_size=r.str("vmSize", required=True),
        image_reference={k: str(v) for k, v in image_ref.data.items()},
        node_agent_sku_id=r.str("nodeAgentSkuId", required=True),
        task_slots_per_node=r.int("taskSlotsPerNode", 1, 1, 256),
        images=container.str_list("images"),
        registries=tuple(registries),
        scale=Scale(mode=scale.choice("mode", "autoscale", ("autoscale", "fixed")),
                    formula=scale.str("formula", "default"), evaluation_interval=interval,
                    max_dedicated_nodes=scale.int("maxDedicatedNodes", 1, 0, 10000),
                    max_spot_nodes=scale.int("maxSpotNodes", 0, 0, 10000),
                    dedicated_nodes=scale.int("dedicatedNodes", 1, 0, 10000),
                    spot_nodes=scale.int("spotNodes", 0, 0, 10000)),
        start_task_command=start.str("commandLine", required=True) if start else None,
        start_task_wait=start.bool("waitForSuccess", True) if start else True,
        enabled=r.bool("enabled", True), start_task_user=pipeline_users.auto_user(start) if start else None)


# ---- pipelines -------------------------------------------------------------------------------------------
def _outputs(r: Reader, where: str) -> Outputs:
    r.known("container", "path", "patterns", "uploadCondition", "logs")
    path = r.str("path", "{pipeline}/{inputKey}")
    check_template(path, f"{where}.path")
    return Outputs(container=r.str("container", required=True, pattern=CONTAINER_NAME), path=path,
                   patterns=r.str_list("patterns", ("out/**",)),
                   upload_condition=r.choice("uploadCondition", "tasksuccess", UPLOAD_CONDITIONS),
                   logs=r.bool("logs", True))


def _inputs(inputs: Reader) -> tuple[BlobInputPolicy | None, bool]:
    """`inputs: {blob: {container, prefix, glob}, queue: bool}`: the blob policy (or None) and whether requests
    are taken."""
    inputs.known("blob", "queue")
    blob = inputs.sub("blob")
    blob_policy = None
    if blob:
        blob.known("container", "prefix", "glob")
        blob_policy = BlobInputPolicy(container=blob.str("container", required=True, pattern=CONTAINER_NAME),
                                      prefix=blob.str("prefix", ""), glob=blob.str("glob", "*"))
    queue = inputs.bool("queue", False)
    if not blob_policy and not queue:
        raise inputs.fail("blob", "a pipeline needs inputs.blob, inputs.queue: true, or both")
    return blob_policy, queue


def _merge(merge_r: Reader, where: str) -> MergeStep:
    merge_r.known("commandLine", "image", "outputs", "fanIn", "barrierCommandLine")
    merge_out = merge_r.sub("outputs", required=True)
    merge_out.known("path")
    path = merge_out.str("path", required=True)
    check_template(path, f"{where}.merge.outputs.path")
    return MergeStep(command_line=merge_r.str("commandLine", ""), path=path, image=merge_r.str("image"),
                     fan_in=merge_r.int("fanIn", 1000, 2, 1000),
                     barrier_command_line=merge_r.str("barrierCommandLine", "/bin/sh -c 'exit 0'"))


def _pipeline(data: Any, where: str, pools: Mapping[str, Pool]) -> Pipeline:
    r = Reader(data, where)
    r.known("name", "description", "pool", "image", "commandLine", "containerRunOptions", "workingDirectory",
            "inputs", "maxInputBytes", "maxInputs", "environment", "overridable", "outputs", "merge", "retries",
            "maxWallClockTime", "requiredSlots", "enabled", "schedule", "preparation", "userIdentity",
            "containerHostBatchBindMounts", "registry", "maxConcurrentTasks", "priority")
    name = r.str("name", required=True, pattern=PIPELINE_NAME)
    pool = r.str("pool", required=True)
    if pool not in pools:
        raise r.fail("pool", f"{pool!r} is not a pool declared under pools: ({', '.join(pools) or 'none'})")
    blob_policy, queue = _inputs(r.sub("inputs", required=True))
    overridable, overridable_env = _overridable(r)
    merge_r = r.sub("merge")
    merge = _merge(merge_r, where) if merge_r else None
    max_bytes = r.data.get("maxInputBytes")
    slots = r.int("requiredSlots", 1, 1, 256)
    if slots > pools[pool].task_slots_per_node:
        raise r.fail("requiredSlots", f"{slots} exceeds taskSlotsPerNode ({pools[pool].task_slots_per_node}) of "
                     f"pool {pool}")
    return Pipeline(
        name=name, pool=pool, image=r.str("image", required=True), command_line=r.str("commandLine", ""),
        outputs=_outputs(r.sub("outputs", required=True), f"{where}.outputs"),
        description=r.str("description", ""), blob_input=blob_policy, queue_input=queue,
        container_run_options=r.str("containerRunOptions", ""),
        working_directory=r.choice("workingDirectory", "taskWorkingDirectory", WORKING_DIRECTORIES),
        environment=r.env("environment"), overridable=overridable, overridable_environment=overridable_env,
        max_input_bytes=None if max_bytes is None else r.int("maxInputBytes", 0, 0, 2**53),
        max_inputs=r.int("maxInputs", 5000, 1, 100000), merge=merge, retries=r.int("retries", 0, -1, 100),
        max_wall_clock_time=r.duration("maxWallClockTime", "PT1H"), required_slots=slots,
        enabled=r.bool("enabled", True), preparation=parse_preparation(r.sub("preparation")),
        task_user=pipeline_users.task_user_options(r), schedule=None if r.data.get("schedule") is None else
        parse_schedule_section(r.data["schedule"], f"{where}.schedule", blob_policy),
        max_concurrent_tasks=None if r.data.get("maxConcurrentTasks") is None else
        r.int("maxConcurrentTasks", 1, 1, 100000),
        priority=r.int("priority", 0, -1000, 1000),
    )


def parse_pools(items: Any) -> dict[str, Pool]:
    """The `pools:` list (after substitution) by id; what infra/generate_pools.py deploys, validated as the app does."""
    if not isinstance(items, list) or not items:
        raise ConfigError("pipelines.yaml pools: declare at least one pool (a list)")
    pools: dict[str, Pool] = {}
    for i, item in enumerate(items):
        pool = _pool(item, f"pools[{i}]")
        if pool.id in pools:
            raise ConfigError(f"pipelines.yaml pools[{i}].id: duplicate pool id {pool.id!r}")
        pools[pool.id] = pool
    return pools


def parse_config(data: Any, settings: Mapping[str, str]) -> PipelineConfig:
    """Validate an already-parsed document (after substitution); ConfigError on the first problem."""
    root = Reader(substitute(data, settings), "")
    root.where = "(root)"
    root.known("version", "pools", "pipelines")
    if root.data.get("version", 1) not in (1, "1"):
        raise root.fail("version", "only version 1 is supported")
    pools = parse_pools(root.data.get("pools"))
    pipelines: dict[str, Pipeline] = {}
    raw = root.data.get("pipelines") or []
    if not isinstance(raw, list) or not raw:
        raise ConfigError("pipelines.yaml pipelines: declare at least one pipeline (a list)")
    for i, item in enumerate(raw):
        pipeline = _pipeline(item, f"pipelines[{i}]", pools)
        if pipeline.name in pipelines:
            raise ConfigError(f"pipelines.yaml pipelines[{i}].name: duplicate pipeline name {pipeline.name!r}")
        pipelines[pipeline.name] = pipeline
    return PipelineConfig(pools=pools, pipelines=pipelines)


def check_containers(config: PipelineConfig, input_container: str, marker_container: str) -> None:
    """The start-up rules between the file and the app settings: every blob input is the container the blob trigger
    watches (INPUT_CONTAINER), no pipeline writes into its own input, and completion markers (MARKER_CONTAINER)
    have a container of their own."""
    for p in config.pipelines.values():
        if p.blob_input and p.blob_input.container != input_container:
            raise ConfigError(f"pipelines.yaml pipeline {p.name}: inputs.blob.container is "
                              f"{p.blob_input.container!r} but the blob trigger watches INPUT_CONTAINER="
                              f"{input_container!r}; make them the same")
        if p.blob_input and p.outputs.container == p.blob_input.container:
            raise ConfigError(f"pipelines.yaml pipeline {p.name}: outputs.container must differ from the input "
                              "container, or every output would trigger the pipeline again")
        if marker_container in (p.outputs.container, p.blob_input and p.blob_input.container):
            raise ConfigError(f"setting MARKER_CONTAINER: {marker_container!r} is a container of "
                              f"pipeline {p.name}; completion markers need a container of their own")


def _overridable(r) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`overridable: {environment: [NAME, ...], retries: true, maxWallClockTime: true}`, or the list form
    `[retries, maxWallClockTime]`. The environment is overridable only by name: a request may set exactly the
    variables listed, never one that loads code (CODE_LOADING_ENV)."""
    value = r.data.get("overridable")
    if value is None:
        return (), ()
    if isinstance(value, list):
        keys = r.str_list("overridable")
        if "environment" in keys:
            raise r.fail("overridable", "name the variables a request may set: overridable: {environment: "
                                        "[NAME, ...]} (a bare `environment` would let a request set any variable)")
        names: tuple[str, ...] = ()
    elif isinstance(value, dict):
        sub = r.sub("overridable")
        sub.known(*OVERRIDABLE)
        names = sub.str_list("environment") if "environment" in value else ()
        for name in names:
            check_env_name(name, f"{r.where}.overridable.environment")
        keys = tuple(k for k in OVERRIDABLE if k == "environment" and names or
                     k != "environment" and sub.bool(k, False))
    else:
        raise r.fail("overridable", "expected {environment: [NAME, ...], retries: true, maxWallClockTime: true}")
    bad = [o for o in keys if o not in OVERRIDABLE]
    if bad:
        raise r.fail("overridable", f"{', '.join(bad)} cannot be overridden; allowed: {', '.join(OVERRIDABLE)}")
    risky = [n for n in names if loads_code(n)]
    if risky:
        raise r.fail("overridable", f"{', '.join(risky)} cannot be overridable: a request setting it could make "
                                    "the worker load or run code of its choosing")
    return keys, tuple(names)


def read_document(path: Path, what: str = "setting PIPELINES_FILE") -> Any:
    """The parsed YAML, before substitution and validation (infra/generate_pools.py substitutes for Azure)."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipelines.yaml is not valid YAML: {exc}") from None


def load_config(path: Path, settings: Mapping[str, str]) -> PipelineConfig:
    return parse_config(read_document(path), settings)
