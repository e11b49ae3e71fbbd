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

Node images: only container-capable (DockerCompatible) Ubuntu images Batch supports are accepted, with the node
agent that matches the image. ``--check`` also warns when a pool's node agent reaches its end of support in Batch
within a year (NODE_AGENT_END_OF_SUPPORT, from Batch's ListSupportedImages ``batchSupportEndOfLife``).

Usage: ``python infra/generate_pools.py`` (write) or ``python infra/generate_pools.py --check`` (exit 1 on drift).
Stdlib + PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PIPELINES = ROOT / "pipelines.yaml"
DEFAULT_OUTPUT = ROOT / "infra" / "pools.generated.json"

# Settings whose value main.bicep knows only at deploy time: emitted as {{NAME}} tokens.
DEPLOY_TIME_SETTINGS = ("REGISTRY_SERVER", "WORKER_IMAGE", "POOL_IDENTITY_RESOURCE_ID")
# Settings with a fixed value on Azure, whatever pipelines.yaml's default says.
AZURE_FIXED_SETTINGS = {"POOL_SCALE_MODE": "autoscale", "REGISTRY_USERNAME": "", "REGISTRY_PASSWORD": ""}

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")
AGENT_SKU = re.compile(r"^batch\.node\.ubuntu (\d{2})\.04$")
MIN_UBUNTU = 22
NODE_FILL_TYPE = "Spread"
# End of support in Batch per node agent (ListSupportedImages "batchSupportEndOfLife"; announcements
# https://github.com/Azure/Batch/issues/174 for 20.04 and https://github.com/Azure/Batch/issues/200 for 22.04, which
# names microsoft-dsvm ubuntu-hpc 2404 as the container image to move to). None: no end date announced yet.
NODE_AGENT_END_OF_SUPPORT: dict[str, date | None] = {
    "batch.node.ubuntu 20.04": date(2025, 4, 23),
    "batch.node.ubuntu 22.04": date(2027, 6, 30),
    "batch.node.ubuntu 24.04": None,
}
# Container-capable (DockerCompatible) images and the node agent each needs (ListSupportedImages).
CONTAINER_IMAGES = {
    ("microsoft-dsvm", "ubuntu-hpc", "2204"): "batch.node.ubuntu 22.04",
    ("microsoft-dsvm", "ubuntu-hpc", "2404"): "batch.node.ubuntu 24.04",
}
WARN_DAYS = 365
# Container settings main.bicep passes to storage.bicep; poolStorageAccess names them by token.
CONTAINER_SETTINGS = ("INPUT_CONTAINER", "OUTPUT_CONTAINER", "MARKER_CONTAINER")
STAGING_CONTAINER = "UPLOADS_CONTAINER"  # where `eventbatch submit` stages queue requests' files
CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
REQUIRED_POOL_KEYS = ("id", "vmSize", "imageReference", "nodeAgentSkuId", "taskSlotsPerNode", "container", "scale")


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


def as_int(value: Any, where: str, low: int, high: int) -> int:
    """An integer setting in [low, high]; placeholders resolved to digits count as integers."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PoolSpecError(f"{where} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_interval(value: Any, where: str) -> str:
    """Batch accepts autoscale evaluation intervals from 5 minutes to 168 hours."""
    match = ISO_DURATION.match(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise PoolSpecError(f"{where} must be an ISO 8601 duration such as PT5M, got {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not 300 <= total <= 168 * 3600:
        raise PoolSpecError(f"{where} must be between PT5M and PT168H (Batch's limits), got {value}")
    return value


def check_image(pool: dict[str, Any], where: str) -> dict[str, str]:
    """Only current container-capable Ubuntu images: older node agents (20.04 and before) are retired by Batch."""
    ref = pool["imageReference"]
    if not isinstance(ref, dict) or not all(isinstance(ref.get(k), str) and ref[k] for k in
                                            ("publisher", "offer", "sku")):
        raise PoolSpecError(f"{where}.imageReference needs publisher, offer and sku (for example microsoft-dsvm, "
                            f"ubuntu-hpc, 2204)")
    agent = pool["nodeAgentSkuId"]
    match = AGENT_SKU.match(agent) if isinstance(agent, str) else None
    if not match or int(match.group(1)) < MIN_UBUNTU:
        raise PoolSpecError(f"{where}.nodeAgentSkuId must be 'batch.node.ubuntu 22.04' or newer, got {agent!r}")
    image = (ref["publisher"].lower(), ref["offer"].lower(), str(ref["sku"]).lower())
    needed = CONTAINER_IMAGES.get(image)
    if needed is None:
        known = ", ".join(" ".join(k) for k in CONTAINER_IMAGES)
        raise PoolSpecError(f"{where}.imageReference {' '.join(image)} is not a container (DockerCompatible) image "
                            f"Batch supports for these pools; use one of: {known}")
    if agent != needed:
        raise PoolSpecError(f"{where}.nodeAgentSkuId must be {needed!r} for image {' '.join(image)}, got {agent!r}")
    end = NODE_AGENT_END_OF_SUPPORT.get(agent)
    if end is not None and end <= date.today():
        raise PoolSpecError(f"{where}.nodeAgentSkuId {agent!r}: Batch support ended on {end.isoformat()}; move to "
                            f"microsoft-dsvm ubuntu-hpc 2404 / batch.node.ubuntu 24.04")
    return {"publisher": ref["publisher"], "offer": ref["offer"], "sku": str(ref["sku"]),
            "version": str(ref.get("version") or "latest")}


def is_gpu_size(vm_size: str) -> bool:
    """N-series sizes (Standard_NC*, ND*, NV*...) carry GPUs; those pools are deployed only when asked for."""
    return re.match(r"^standard_n[a-z]", vm_size.lower()) is not None


def container_settings(pool: dict[str, Any], where: str) -> tuple[list[str], list[str]]:
    """Prefetched images and registry servers; a registry must be reachable with the pool identity."""
    container = pool["container"]
    if not isinstance(container, dict):
        raise PoolSpecError(f"{where}.container must be a mapping with images and registries")
    images = container.get("images") or []
    if not images or not all(isinstance(i, str) and i for i in images):
        raise PoolSpecError(f"{where}.container.images must list at least one image to prefetch on the nodes")
    servers = []
    for i, registry in enumerate(container.get("registries") or []):
        rwhere = f"{where}.container.registries[{i}]"
        if not isinstance(registry, dict) or not registry.get("server"):
            raise PoolSpecError(f"{rwhere}.server is required")
        if registry.get("username") or registry.get("password"):
            raise PoolSpecError(f"{rwhere}: username/password resolve to a value on Azure; registries on Azure are "
                                f"reached with the pool's managed identity (identityResourceId), never a password")
        if registry.get("identityResourceId") != token("POOL_IDENTITY_RESOURCE_ID"):
            raise PoolSpecError(f"{rwhere}.identityResourceId must be ${{POOL_IDENTITY_RESOURCE_ID:-}} so the pool "
                                f"pulls with its user-assigned identity (AcrPull), got "
                                f"{registry.get('identityResourceId')!r}")
        servers.append(registry["server"])
    return list(images), servers


def scale_settings(pool: dict[str, Any], slots: int, where: str) -> dict[str, Any]:
    """Autoscale with the app's formula (and a variant without spot nodes), or a fixed size."""
    scale = pool["scale"]
    if not isinstance(scale, dict):
        raise PoolSpecError(f"{where}.scale must be a mapping")
    mode = scale.get("mode")
    max_dedicated = as_int(scale.get("maxDedicatedNodes", 0), f"{where}.scale.maxDedicatedNodes", 0, 1000)
    max_spot = as_int(scale.get("maxSpotNodes", 0), f"{where}.scale.maxSpotNodes", 0, 1000)
    # Every key is always present (one shape for both modes): ARM evaluates both branches' property reads.
    settings: dict[str, Any] = {"mode": mode, "formula": "", "formulaWithoutSpot": "", "evaluationInterval": "PT5M",
                                "maxDedicatedNodes": max_dedicated, "maxSpotNodes": max_spot,
                                "dedicatedNodes": 0, "spotNodes": 0}
    if mode == "fixed":
        settings["dedicatedNodes"] = as_int(scale.get("dedicatedNodes", 0), f"{where}.scale.dedicatedNodes", 0, 1000)
        settings["spotNodes"] = as_int(scale.get("spotNodes", 0), f"{where}.scale.spotNodes", 0, 1000)
        return settings
    if mode != "autoscale":
        raise PoolSpecError(f"{where}.scale.mode must be autoscale or fixed, got {mode!r}")
    formula = scale.get("formula", "default")
    if formula == "default":
        default_formula = load_default_formula()
        with_spot = default_formula(max_dedicated, max_spot, slots)
        # Spot can be switched off at deploy time (useSpotNodes=false): same caps for dedicated, none for spot.
        without_spot = default_formula(max_dedicated, 0, slots) if max_dedicated > 0 else ""
    elif isinstance(formula, str) and formula.strip():
        with_spot, without_spot = formula, ""
    else:
        raise PoolSpecError(f"{where}.scale.formula must be 'default' or the formula text")
    settings.update(formula=with_spot, formulaWithoutSpot=without_spot,
                    evaluationInterval=check_interval(scale.get("evaluationInterval", "PT5M"),
                                                      f"{where}.scale.evaluationInterval"))
    return settings


def load_default_formula():
    """The app's formula function; a clear error (not an invented formula) when it is missing."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from shared.autoscale_formula import default_formula
    except ImportError as exc:
        raise PoolSpecError("scale.formula is 'default' but shared/autoscale_formula.py (default_formula) cannot be "
                            f"imported ({exc}); the formula is owned by the autoscale code, not by infra: land that "
                            "module or give the pool an inline formula in pipelines.yaml") from exc
    return default_formula


def start_task(pool: dict[str, Any], where: str) -> dict[str, Any] | None:
    task = pool.get("startTask")
    if task is None:
        return None
    if not isinstance(task, dict) or not isinstance(task.get("commandLine"), str) or not task["commandLine"]:
        raise PoolSpecError(f"{where}.startTask.commandLine is required when startTask is given")
    # The Batch StartTask as main.bicep passes it: its auto-user (default non-admin, pool-wide; admin for a start
    # task that mounts a file server), one retry. The management API spells the enums Pool/Task, NonAdmin/Admin.
    auto = ((task.get("userIdentity") or {}).get("autoUser")) or {}
    scope = {"pool": "Pool", "task": "Task"}.get(str(auto.get("scope", "pool")).lower())
    level = {"nonadmin": "NonAdmin", "admin": "Admin"}.get(str(auto.get("elevationLevel", "nonadmin")).lower())
    if scope is None or level is None:
        raise PoolSpecError(f"{where}.startTask.userIdentity.autoUser: scope must be pool or task and "
                            "elevationLevel nonadmin or admin")
    return {"commandLine": task["commandLine"], "waitForSuccess": bool(task.get("waitForSuccess", True)),
            "maxTaskRetryCount": 1, "userIdentity": {"autoUser": {"scope": scope, "elevationLevel": level}}}


def pool_spec(raw: dict[str, Any], index: int) -> dict[str, Any]:
    """One pool of pipelines.yaml, resolved and validated, in the shape main.bicep consumes."""
    where = f"pools[{index}]"
    if not isinstance(raw, dict):
        raise PoolSpecError(f"{where} must be a mapping")
    missing = [k for k in REQUIRED_POOL_KEYS if k not in raw]
    if missing:
        raise PoolSpecError(f"{where} is missing {', '.join(missing)}")
    pool = resolve(raw, where)
    if not isinstance(pool["id"], str) or not POOL_ID.match(pool["id"]):
        raise PoolSpecError(f"{where}.id must be 1-64 letters, digits, '-' or '_', got {pool['id']!r}")
    where = f"pool {pool['id']}"
    slots = as_int(pool["taskSlotsPerNode"], f"{where}.taskSlotsPerNode", 1, 256)
    images, servers = container_settings(pool, where)
    return {
        "id": pool["id"],
        "vmSize": str(pool["vmSize"]),
        "gpu": is_gpu_size(str(pool["vmSize"])),
        "imageReference": check_image(pool, where),
        "nodeAgentSkuId": pool["nodeAgentSkuId"],
        "taskSlotsPerNode": slots,
        # Same policy as the pools the app creates itself (shared/pool_spec.py), so the autoscale formula tuned
        # on the emulator sees the same task placement on Azure; tests/infra compares the two.
        "taskSchedulingPolicy": {"nodeFillType": NODE_FILL_TYPE},
        "containerImageNames": images,
        "registryServers": servers,
        "startTask": start_task(pool, where),
        "scale": scale_settings(pool, slots, where),
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


GPU_SWITCH = "DEPLOY_GPU_POOLS"  # main.bicep's deployGpuPools decides GPU pools whose `enabled` names it


def deployable(raw: Any, index: int) -> bool:
    """False for a pool pipelines.yaml disables (`enabled` false after resolving placeholders): it is left out, as
    the app never creates it locally. A GPU pool whose `enabled` is ${DEPLOY_GPU_POOLS...} stays in, marked gpu:
    Bicep deploys it exactly when deployGpuPools is on, and sets that same app setting."""
    if not isinstance(raw, dict) or "enabled" not in raw:
        return True
    value = raw["enabled"]
    if isinstance(value, str):
        names = [m.group(1) for m in PLACEHOLDER.finditer(value)]
        if GPU_SWITCH in names and is_gpu_size(str(raw.get("vmSize", ""))):
            return True
        value = resolve(value, f"pools[{index}].enabled")
        value = {"true": True, "false": False}.get(value.strip().lower(), value)
    if not isinstance(value, bool):
        raise PoolSpecError(f"pools[{index}].enabled must be true or false after substitution, got {value!r}")
    return value


def generate(pipelines_path: Path = DEFAULT_PIPELINES) -> dict[str, Any]:
    """The document written to pools.generated.json."""
    try:
        doc = yaml.safe_load(pipelines_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PoolSpecError(f"cannot read {pipelines_path}: {exc}") from exc
    pools = doc.get("pools") if isinstance(doc, dict) else None
    if not isinstance(pools, list) or not pools:
        raise PoolSpecError(f"{pipelines_path}: 'pools' must list at least one pool")
    specs = [pool_spec(raw, i) for i, raw in enumerate(pools) if deployable(raw, i)]
    ids = [s["id"] for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise PoolSpecError(f"{pipelines_path}: duplicate pool id(s): {', '.join(dupes)}")
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
