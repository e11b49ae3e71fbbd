"""Parsed view of infra/*.bicep for the structural tests: resources by type, expressions rendered as text.

pycep turns Bicep into nested JSON; rendering expressions back to short text (``storage::blobService::input``,
``subscription_resource_id(Microsoft.Authorization/roleDefinitions, <guid>)``) lets a test compare them with what
a person reads in the template.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def render(node: Any) -> str:
    """Compact text of a pycep expression node."""
    if node is None or isinstance(node, str | int | float | bool):
        return str(node)
    if isinstance(node, list):
        return "[" + ", ".join(render(n) for n in node) + "]"
    if "operator" in node:
        op = node["operator"]
        operands = list(op.get("operands", {}).values())
        if op["type"] == "property_accessor":
            return f"{render(operands[0])}.{render(operands[1])}"
        if op["type"] == "nested_resource_accessor":
            return f"{render(operands[0])}::{render(operands[1])}"
        return f"{op['type']}(" + ", ".join(render(o) for o in operands) + ")"
    if "function" in node:
        fn = node["function"]
        args = [render(v) for v in fn.get("parameters", {}).values() if v is not None]
        return f"{fn['type']}(" + ", ".join(args) + ")"
    return "{" + ", ".join(f"{k}: {render(v)}" for k, v in node.items()) + "}"


@dataclass(frozen=True)
class Resource:
    file: str
    symbol: str
    type: str
    body: dict[str, Any]  # the resource's config (loop bodies unwrapped)
    loop: bool
    condition: str | None
    existing: bool


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], bool, str | None]:
    """(body, is_loop, condition) of a resource/module config."""
    loop = False
    if "loop_type" in config:
        loop, config = True, config["config"] if "config" in config else config
    condition = None
    if "condition" in config and "config" in config:
        condition, config = render(config["condition"]), config["config"]
    return config, loop, condition


@cache
def parsed(name: str) -> dict[str, Any]:
    """pycep JSON of infra/<name> (cached: parsing is the slow part)."""
    return BicepParser().parse(file_path=INFRA / name)


def bicep_files() -> list[str]:
    return sorted(str(p.relative_to(INFRA)) for p in INFRA.rglob("*.bicep"))


def resources(name: str) -> list[Resource]:
    """Top-level and nested resources of one file."""
    out: list[Resource] = []

    def walk(symbol: str, raw: dict[str, Any], parent_type: str | None) -> None:
        rtype = raw["type"] if parent_type is None else f"{parent_type}/{raw['type']}"
        body, loop, condition = unwrap(raw.get("config", {}))
        out.append(Resource(name, symbol, rtype, body, loop, condition, bool(raw.get("existing"))))
        for child_symbol, child in (body.get("resources") or {}).items():
            walk(child_symbol, child, rtype)

    for symbol, raw in parsed(name).get("resources", {}).items():
        walk(symbol, raw, None)
    return out


def all_resources() -> list[Resource]:
    return [r for f in bicep_files() for r in resources(f)]


def of_type(rtype: str, include_existing: bool = False) -> list[Resource]:
    return [r for r in all_resources() if r.type.lower() == rtype.lower() and (include_existing or not r.existing)]


def module_params(file: str, symbol: str) -> dict[str, str]:
    """Rendered params passed to module `symbol` in `file`."""
    raw = parsed(file)["modules"][symbol]
    body, _, _ = unwrap(raw["config"])
    return {k: render(v) for k, v in body["params"].items()}


def module_params_raw(file: str, symbol: str) -> dict[str, Any]:
    raw = parsed(file)["modules"][symbol]
    body, _, _ = unwrap(raw["config"])
    return body["params"]


def variable(file: str, name: str) -> Any:
    return parsed(file)["variables"][name]["value"]


def one(rtype: str):
    found = of_type(rtype)
    assert len(found) == 1, f"expected one {rtype}, found {[(r.file, r.symbol) for r in found]}"
    return found[0]


def props(resource) -> dict:
    return resource.body["properties"]


def app_settings() -> dict[str, str]:
    """Every app setting the templates create: the module's identity settings + main.bicep's app settings."""
    site = one("Microsoft.Web/sites")
    loop = props(site)["siteConfig"]["appSettings"]
    assert render(loop["loop_type"]["detail"]["array_name"]) == "items(union(identitySettings, appSettings))", \
        "app settings must come only from identitySettings and the appSettings parameter"
    assert not of_type("Microsoft.Web/sites/config"), "no other app-settings resource may exist"
    settings = {k: render(v) for k, v in variable("modules/functionapp.bicep", "identitySettings").items()}
    main_settings = parsed("main.bicep")["modules"]["functionApp"]["config"]["params"]["appSettings"]
    overlap = set(settings) & set(main_settings)
    assert not overlap, f"settings defined twice: {overlap}"
    settings.update({k: render(v) for k, v in main_settings.items()})
    return settings


# ---- storage access (pipelines.yaml -> container roles) ----
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def main_default(param: str) -> str:
    """Default of a main.bicep parameter, or the literal value of a variable (the deployment container's name)."""
    params = parsed("main.bicep")["parameters"]
    if param in params:
        return params[param]["default"]
    return render(parsed("main.bicep")["variables"][param]["value"])


def container_symbols() -> dict[str, str]:
    """Deployed container name (main.bicep defaults) -> its resource symbol in storage.bicep."""
    passed = module_params("main.bicep", "storage")
    out = {}
    for r in resources("modules/storage.bicep"):
        if r.type.endswith("/containers") and not r.existing:
            out[main_default(passed[r.body["name"]])] = r.symbol
    return out


LOOP_SCOPE = re.compile(r"^index_accessor\((\w+), (\w+)\)$")
TOKEN_LOOKUP = "conditional(contains(containerTokens, name), index_accessor(containerTokens, name), name)"


def loop_container_names(array: str) -> list[str]:
    """Deployed container names of a storage.bicep container list (poolReadContainers, poolWriteContainers): the
    generated poolStorageAccess main.bicep passes, with its {{NAME}} tokens replaced as containerTokens says."""
    assert render(parsed("main.bicep")["variables"]["poolStorageAccess"]["value"]) == \
        "load_json_content(pools.generated.json, $.poolStorageAccess)"
    assert module_params("main.bicep", "storage")["poolStorageAccess"] == "poolStorageAccess"
    generated = json.loads((INFRA / "pools.generated.json").read_text())["poolStorageAccess"]
    loop = parsed("modules/storage.bicep")["variables"][array]["value"]
    source = render(loop["loop_type"]["detail"]["array_name"])
    assert source.startswith("poolStorageAccess."), source
    assert render(loop["config"]) == TOKEN_LOOKUP, f"{array}: unexpected element expression"
    tokens = parsed("modules/storage.bicep")["variables"]["containerTokens"]["value"]
    passed = module_params("main.bicep", "storage")
    names = []
    for name in generated[source.split(".", 1)[1]]:
        param = tokens.get(f"'{name}'", tokens.get(name))
        names.append(main_default(passed[param]) if param else name)
    return names


def scopes(r: Resource) -> list[str]:
    """The container symbols (or other scope symbols) one role assignment resource covers once deployed."""
    scope = render(r.body["scope"])
    match = LOOP_SCOPE.match(scope) if r.loop else None
    if not match:
        return [scope]
    target = next(x for x in resources(r.file) if x.symbol == match.group(1))
    assert target.existing and target.type.endswith("/containers"), f"{r.symbol}: scope {scope}"
    array = render(parsed(r.file)["resources"][target.symbol]["config"]["loop_type"]["detail"]["array_name"])
    own = render(parsed(r.file)["resources"][r.symbol]["config"]["loop_type"]["detail"]["array_name"])
    assert own == array, f"{r.symbol} loops over {own} but its scopes over {array}"
    symbols = container_symbols()
    names = loop_container_names(array)
    missing = [n for n in names if n not in symbols]
    assert not missing, f"{r.symbol}: containers infra/ does not create: {missing}"
    return [symbols[n] for n in names]


def app_setting_values() -> dict[str, str]:
    """Container settings as deployed: the app settings main.bicep sets, resolved to main.bicep's defaults."""
    settings = parsed("main.bicep")["modules"]["functionApp"]["config"]["params"]["appSettings"]
    return {k: main_default(v) for k, v in settings.items() if isinstance(v, str) and v.endswith("ContainerName")}


def resolve(text: str, settings: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: settings.get(m.group(1), m.group(2) or ""), text)


def staging_container() -> str:
    from devstack.tools.submit import send_request

    return inspect.signature(send_request).parameters["staging_container"].default


def expected_container_roles() -> set[tuple[str, str, str]]:
    """(principal param, role, container symbol) the pipelines need."""
    settings = app_setting_values()
    symbols = container_symbols()
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    reads, writes, drops = set(), {settings["MARKER_CONTAINER"]}, set()
    for pipeline in doc["pipelines"]:
        inputs = pipeline.get("inputs") or {}
        if inputs.get("blob"):
            container = resolve(inputs["blob"]["container"], settings)
            reads.add(container)
            drops.add(container)
        if inputs.get("queue"):
            reads.add(staging_container())
            drops.add(staging_container())
        writes.add(resolve(pipeline["outputs"]["container"], settings))
    missing = (reads | writes) - set(symbols)
    assert not missing, f"pipelines.yaml uses containers infra/ does not create: {sorted(missing)}"
    outputs = {resolve(p["outputs"]["container"], settings) for p in doc["pipelines"]}
    return ({("poolPrincipalId", BLOB_DATA_READER, symbols[c]) for c in reads}
            | {("poolPrincipalId", BLOB_DATA_CONTRIBUTOR, symbols[c]) for c in writes}
            | {("deployerPrincipalId", BLOB_DATA_CONTRIBUTOR, symbols[c]) for c in drops}
            | {("deployerPrincipalId", BLOB_DATA_READER, symbols[c]) for c in outputs})
