"""Parsed view of infra/*.bicep for the structural tests: resources by type, expressions rendered as text.

pycep turns Bicep into nested JSON; rendering expressions back to short text (``storage::blobService::input``,
``subscription_resource_id(Microsoft.Authorization/roleDefinitions, <guid>)``) lets a test compare them with what
a person reads in the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

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
