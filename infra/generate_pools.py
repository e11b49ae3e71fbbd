"""Generate infra/pools.generated.json (the Batch pools main.bicep deploys) from pipelines.yaml.

Why a generator: pipelines.yaml is the one place where pools are declared; the function app routes pipelines to
them by id. If the Bicep declared pools on its own, a pool renamed or resized in one place would silently drift
from the other. So the Bicep only loads this generated file (``loadJsonContent``), and a test fails when the
committed file no longer matches what this script produces from the current pipelines.yaml.

How ``${NAME}`` / ``${NAME:-default}`` placeholders are resolved for Azure:

- names only known at deploy time (the registry login server, the worker image, the pool identity) become
  ``{{NAME}}`` tokens that main.bicep replaces with the deployed values;
- names with a fixed value on Azure take it (``POOL_SCALE_MODE=autoscale``; registry user name and password are
  always empty: on Azure the pool pulls with its managed identity, never with a password);
- any other name takes its ``:-default``; a name without a default is an error naming the setting.

``poolStorageAccess`` lists the containers the pool identity reads (the containers pipelines take inputs from: a
blob input's container, and the staging container of ``eventbatch submit`` for queue inputs) and writes (output
containers, the completion markers). storage.bicep gives the pool identity roles on exactly these containers and
nowhere else; container settings main.bicep names (``INPUT_CONTAINER``, ``OUTPUT_CONTAINER``, ``MARKER_CONTAINER``
and the uploads container) stay ``{{NAME}}`` tokens that storage.bicep replaces with its container parameters.

The autoscale formula ``default`` is the app's own (``shared.autoscale_formula.default_formula``), so the pools on
Azure scale exactly as the local emulator and the simulator do.

One validator: the pools are read and checked by the app's own code (``shared.pipelines.parse_pools``, with the
rules of ``shared/pool_rules.py``: container-capable Ubuntu images with their node agent, pool ids, required keys,
ranges), so a pool the app accepts is one azd can deploy. Only Azure's own rules are here: the autoscale interval
range (PT5M..PT168H), registries reached with the pool identity (never a password), and node agents past their end
of support in Batch (refused; ``--check`` warns within a year, NODE_AGENT_END_OF_SUPPORT, from Batch's
ListSupportedImages ``batchSupportEndOfLife``).

Usage: ``python infra/generate_pools.py`` (write) or ``python infra/generate_pools.py --check`` (exit 1 on drift).
Stdlib, PyYAML and shared/ (this repository's, put on sys.path when run as a script).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (python infra/generate_pools.py): the app's shared/ validates
    sys.path.insert(0, str(ROOT))

from shared.durations import format_duration  # noqa: E402
from shared.errors import ConfigError  # noqa: E402
from shared.names import CONTAINER_NAME  # noqa: E402
from shared.pipeline_users import AutoUser  # noqa: E402
from shared.pipelines import Pool, parse_pools, read_document  # noqa: E402
from shared.pool_spec import autoscale_formula  # noqa: E402

DEFAULT_PIPELINES = ROOT / "pipelines.yaml"
DEFAULT_OUTPUT = ROOT / "infra" / "pools.generated.json"

# Settings whose value main.bicep knows only at deploy time: emitted as {{NAME}} tokens.
DEPLOY_TIME_SETTINGS = ("REGISTRY_SERVER", "WORKER_IMAGE", "POOL_IDENTITY_RESOURCE_ID")
# Settings with a fixed value on Azure, whatever pipelines.yaml's default says.
AZURE_FIXED_SETTINGS = {"POOL_SCALE_MODE": "autoscale", "REGISTRY_USERNAME": "", "REGISTRY_PASSWORD": ""}

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Batch accepts autoscale evaluation intervals from 5 minutes to 168 hours (the emulator also shorter ones).
AZURE_INTERVALS = (timedelta(minutes=5), timedelta(hours=168))
NODE_FILL_TYPE = "Spread"
# End of support in Batch per node agent (ListSupportedImages "batchSupportEndOfLife"; announcements
# https://github.com/Azure/Batch/issues/174 for 20.04 and https://github.com/Azure/Batch/issues/200 for 22.04, which
# names microsoft-dsvm ubuntu-hpc 2404 as the container image to move to). None: no end date announced yet.
NODE_AGENT_END_OF_SUPPORT: dict[str, date | None] = {
    "batch.node.ubuntu 20.04": date(2025, 4, 23),
    "batch.node.ubuntu 22.04": date(2027, 6, 30),
    "batch.node.ubuntu 24.04": None,
}
WARN_DAYS = 365
# Container settings main.bicep passes to storage.bicep; poolStorageAccess names them by token.
CONTAINER_SETTINGS = ("INPUT_CONTAINER", "OUTPUT_CONTAINER", "MARKER_CONTAINER")
STAGING_CONTAINER = "UPLOADS_CONTAINER"  # where `eventbatch submit` stages queue requests' files
GPU_SWITCH = "DEPLOY_GPU_POOLS"  # main.bicep's deployGpuPools decides GPU pools whose `enabled` names it


class PoolSpecError(ValueError):
    """pipelines.yaml cannot be turned into an Azure pool; the message names the pool, the key and the fix."""


def token(name: str) -> str:
    """The marker main.bicep replaces with the deploy-time value of ``name``."""
    return "{{" + name + "}}"


def resolve(value: Any, where: str) -> Any:
    """Resolve ``${NAME}`` placeholders in strings (recursively) for an Azure deployment."""
    if isinstance(value, dict):
        return {k: resolve(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in DEPLOY_TIME_SETTINGS:
            return token(name)
        if name in AZURE_FIXED_SETTINGS:
            return AZURE_FIXED_SETTINGS[name]
        if default is not None:
            return default
        raise PoolSpecError(f"{where}: setting ${{{name}}} has no default and is not known to the Azure deployment; "
                            f"give it a default in pipelines.yaml (${{{name}:-value}}) or add it to "
                            f"DEPLOY_TIME_SETTINGS in infra/generate_pools.py and main.bicep")

    resolved = PLACEHOLDER.sub(one, value)
    return resolved


def is_gpu_size(vm_size: str) -> bool:
    """N-series sizes (Standard_NC*, ND*, NV*...) carry GPUs; those pools are deployed only when asked for."""
    return re.match(r"^standard_n[a-z]", vm_size.lower()) is not None


def check_azure_registries(raw: Any, where: str) -> None:
    """Registries on Azure carry no username/password (checked before the shared rules, which would only say that
    one needs the other)."""
    container = raw.get("container") if isinstance(raw, dict) else None
    registries = container.get("registries") if isinstance(container, dict) else None
    for i, registry in enumerate(registries if isinstance(registries, list) else []):
        if isinstance(registry, dict) and (registry.get("username") or registry.get("password")):
            raise PoolSpecError(f"{where}.container.registries[{i}]: username/password resolve to a value on Azure; "
                                "registries on Azure are reached with the pool's managed identity "
                                "(identityResourceId), never a password")


def registry_servers(pool: Pool, where: str) -> list[str]:
    """The registries' servers; each must be reached with the pool identity (AcrPull)."""
    for i, registry in enumerate(pool.registries):
        if registry.identity_resource_id != token("POOL_IDENTITY_RESOURCE_ID"):
            raise PoolSpecError(f"{where}.container.registries[{i}].identityResourceId must be "
                                "${POOL_IDENTITY_RESOURCE_ID:-} so the pool pulls with its user-assigned identity "
                                f"(AcrPull), got {registry.identity_resource_id!r}")
    return [r.server for r in pool.registries]


def check_support(pool: Pool, where: str) -> None:
    end = NODE_AGENT_END_OF_SUPPORT.get(pool.node_agent_sku_id)
    if end is not None and end <= date.today():
        raise PoolSpecError(f"{where}.nodeAgentSkuId {pool.node_agent_sku_id!r}: Batch support ended on "
                            f"{end.isoformat()}; move to microsoft-dsvm ubuntu-hpc 2404 / batch.node.ubuntu 24.04")


def scale_settings(pool: Pool, where: str) -> dict[str, Any]:
    """Autoscale with the app's formula (and a variant without spot nodes), or a fixed size."""
    scale = pool.scale
    # Every key is always present (one shape for both modes): ARM evaluates both branches' property reads.
    settings: dict[str, Any] = {"mode": scale.mode, "formula": "", "formulaWithoutSpot": "",
                                "evaluationInterval": "PT5M", "maxDedicatedNodes": scale.max_dedicated_nodes,
                                "maxSpotNodes": scale.max_spot_nodes, "dedicatedNodes": 0, "spotNodes": 0}
    if scale.mode == "fixed":
        settings.update(dedicatedNodes=scale.dedicated_nodes, spotNodes=scale.spot_nodes)
        return settings
    low, high = AZURE_INTERVALS
    if not low <= scale.evaluation_interval <= high:
        raise PoolSpecError(f"{where}.scale.evaluationInterval must be between PT5M and PT168H (Batch's limits), "
                            f"got {format_duration(scale.evaluation_interval)}")
    without_spot = ""
    if scale.formula in ("default", "") and scale.max_dedicated_nodes > 0:
        # Spot can be switched off at deploy time (useSpotNodes=false): same caps for dedicated, none for spot.
        without_spot = autoscale_formula(dataclasses.replace(pool, scale=dataclasses.replace(scale, max_spot_nodes=0)))
    settings.update(formula=autoscale_formula(pool), formulaWithoutSpot=without_spot,
                    evaluationInterval=format_duration(scale.evaluation_interval))
    return settings


def start_task(pool: Pool) -> dict[str, Any] | None:
    """The Batch StartTask as main.bicep passes it: its auto-user (default non-admin, pool-wide; admin for a start
    task that mounts a file server), one retry. The management API spells the enums Pool/Task, NonAdmin/Admin."""
    if pool.start_task_command is None:
        return None
    user = pool.start_task_user or AutoUser()
    return {"commandLine": pool.start_task_command, "waitForSuccess": pool.start_task_wait, "maxTaskRetryCount": 1,
            "userIdentity": {"autoUser": {"scope": {"pool": "Pool", "task": "Task"}[user.scope],
                                          "elevationLevel": {"nonadmin": "NonAdmin", "admin": "Admin"}[
                                              user.elevation_level]}}}


def pool_spec(pool: Pool) -> dict[str, Any]:
    """One pool of pipelines.yaml, validated by shared/ and Azure's rules, in the shape main.bicep consumes."""
    where = f"pool {pool.id}"
    check_support(pool, where)
    return {
        "id": pool.id,
        "vmSize": pool.vm_size,
        "gpu": is_gpu_size(pool.vm_size),
        "imageReference": {"publisher": pool.image_reference["publisher"], "offer": pool.image_reference["offer"],
                           "sku": pool.image_reference["sku"],
                           "version": pool.image_reference.get("version") or "latest"},
        "nodeAgentSkuId": pool.node_agent_sku_id,
        "taskSlotsPerNode": pool.task_slots_per_node,
        # Same policy as the pools the app creates itself (shared/pool_spec.py), so the autoscale formula tuned
        # on the emulator sees the same task placement on Azure; tests/infra compares the two.
        "taskSchedulingPolicy": {"nodeFillType": NODE_FILL_TYPE},
        "containerImageNames": list(pool.images),
        "registryServers": registry_servers(pool, where),
        "startTask": start_task(pool),
        "scale": scale_settings(pool, where),
    }


def container_name(value: Any, where: str) -> str:
    """A pipeline's container for Azure: a container setting main.bicep names becomes its token, any other
    placeholder its default; the result must be a container name (or a token)."""
    if not isinstance(value, str) or not value:
        raise PoolSpecError(f"{where} must name a container")

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in CONTAINER_SETTINGS:
            return token(name)
        if default is not None:
            return default
        raise PoolSpecError(f"{where}: setting ${{{name}}} has no default and is not a container main.bicep names; "
                            f"give it a default (${{{name}:-name}}) or use one of {', '.join(CONTAINER_SETTINGS)}")

    name = PLACEHOLDER.sub(one, value)
    if name not in {token(n) for n in CONTAINER_SETTINGS} and not CONTAINER_NAME.match(name):
        raise PoolSpecError(f"{where}: {value!r} is not a container name (3-63 lower-case letters, digits and single "
                            "hyphens) nor one container setting")
    return name


def storage_access(doc: dict[str, Any]) -> dict[str, list[str]]:
    """The containers the pool identity must read and write for the pipelines of pipelines.yaml, and no other."""
    pipelines = doc.get("pipelines") or []
    if not isinstance(pipelines, list):
        raise PoolSpecError("pipelines.yaml: 'pipelines' must be a list")
    reads, writes = set(), {token("MARKER_CONTAINER")}
    for i, pipeline in enumerate(pipelines):
        where = f"pipelines[{i}]" + (f" ({pipeline.get('name')})" if isinstance(pipeline, dict) else "")
        if not isinstance(pipeline, dict):
            raise PoolSpecError(f"{where} must be a mapping")
        inputs = pipeline.get("inputs") or {}
        if isinstance(inputs.get("blob"), dict):
            reads.add(container_name(inputs["blob"].get("container"), f"{where}.inputs.blob.container"))
        if inputs.get("queue"):
            reads.add(token(STAGING_CONTAINER))
        writes.add(container_name((pipeline.get("outputs") or {}).get("container"), f"{where}.outputs.container"))
    # Merge tasks read the output container too: its writer role (Contributor, no delete) includes reading.
    return {"read": sorted(reads - writes), "write": sorted(writes)}


def deployable(raw: Any, pool: Pool) -> bool:
    """False for a pool pipelines.yaml disables (`enabled` false after resolving placeholders): it is left out, as
    the app never creates it locally. A GPU pool whose `enabled` is ${DEPLOY_GPU_POOLS...} stays in, marked gpu:
    Bicep deploys it exactly when deployGpuPools is on, and sets that same app setting."""
    enabled = raw.get("enabled") if isinstance(raw, dict) else None
    switched = isinstance(enabled, str) and GPU_SWITCH in [m.group(1) for m in PLACEHOLDER.finditer(enabled)]
    return pool.enabled or (switched and is_gpu_size(pool.vm_size))


def generate(pipelines_path: Path = DEFAULT_PIPELINES) -> dict[str, Any]:
    """The document written to pools.generated.json."""
    try:
        doc = read_document(pipelines_path, "pipelines file")
        raw_pools = doc.get("pools") if isinstance(doc, dict) else None
        if not isinstance(raw_pools, list) or not raw_pools:
            raise PoolSpecError(f"{pipelines_path}: 'pools' must list at least one pool")
        resolved = [resolve(raw, f"pools[{i}]") for i, raw in enumerate(raw_pools)]
        for i, raw in enumerate(resolved):
            check_azure_registries(raw, f"pools[{i}]")
        pools = list(parse_pools(resolved).values())
        specs = [pool_spec(pool) for raw, pool in zip(raw_pools, pools, strict=True) if deployable(raw, pool)]
    except ConfigError as exc:
        raise PoolSpecError(str(exc)) from None
    return {
        "_comment": "GENERATED by infra/generate_pools.py from pipelines.yaml; do not edit. "
                    "Regenerate: .venv/bin/python infra/generate_pools.py",
        "tokens": [token(n) for n in DEPLOY_TIME_SETTINGS],
        "pools": specs,
        "poolStorageAccess": storage_access(doc),
    }


def support_warnings(doc: dict[str, Any], today: date) -> list[str]:
    """Pools whose node agent reaches its end of support in Batch within WARN_DAYS of ``today``."""
    out = []
    for pool in doc["pools"]:
        end = NODE_AGENT_END_OF_SUPPORT.get(pool["nodeAgentSkuId"])
        if end is not None and (end - today).days <= WARN_DAYS:
            out.append(f"pool {pool['id']}: node agent {pool['nodeAgentSkuId']!r} reaches its end of support in Batch "
                       f"on {end.isoformat()} ({(end - today).days} days); move the pool to microsoft-dsvm ubuntu-hpc "
                       f"2404 / batch.node.ubuntu 24.04 (a new pool id: Batch cannot change a pool's image)")
    return out


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=Path, default=DEFAULT_PIPELINES, help="pipelines file to read")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--check", action="store_true", help="exit 1 if --output is not up to date; write nothing")
    parser.add_argument("--today", type=date.fromisoformat, default=None,
                        help="date the end-of-support warning counts from (YYYY-MM-DD; default: today)")
    args = parser.parse_args(argv)
    try:
        doc = generate(args.pipelines)
        text = render(doc)
    except PoolSpecError as exc:
        print(f"generate_pools: {exc}", file=sys.stderr)
        return 2
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        for warning in support_warnings(doc, args.today or date.today()):
            print(f"generate_pools: warning: {warning}", file=sys.stderr)
        if current != text:
            print(f"generate_pools: {args.output} is out of date with {args.pipelines}; run "
                  f".venv/bin/python infra/generate_pools.py and commit the result", file=sys.stderr)
            return 1
        print(f"generate_pools: {args.output} is up to date")
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"generate_pools: wrote {args.output}")
    else:
        print(f"generate_pools: {args.output} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
