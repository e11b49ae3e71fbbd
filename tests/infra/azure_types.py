"""Type-check the resource bodies of infra/*.bicep against Azure's own type definitions, without a Bicep compiler.

tests/infra/azure-types/ (a copy of ../shared/azure-types, MIT; ``AZURE_TYPES_DIR`` overrides it) holds the generated definitions
the Bicep compiler checks templates against (Azure/bicep-types-az, one JSON file per provider and API version).
For every resource a template declares, the object literals of its body are checked against the resource's type:

- property names the type does not define (the compiler's BCP037), unless the object takes free keys;
- literal values of the wrong kind, or outside a closed string enum (BCP036/BCP088);
- read-only properties set, required properties missing;
- nested objects and arrays followed through ``$ref``; discriminated unions resolved by their discriminator.

A value that is an expression (a parameter, a function call, an interpolated string...) cannot be known here and
is skipped, and counted as skipped. Two kinds of expressions are known and followed: a variable whose value is a
literal, and bindings the caller passes (e.g. ``pool`` = one entry of infra/pools.generated.json, which is what
batch-pool.bicep receives). ``existing`` resources are only checked for their type and API version.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra.bicep_model import ROOT

FLAG_REQUIRED, FLAG_READ_ONLY = 1, 2
# Keys of a resource declaration that are Bicep's own, not properties of the resource type.
BICEP_RESOURCE_KEYS = {"parent", "scope", "dependsOn", "resources"}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNKNOWN = object()  # an expression whose value cannot be known offline


def types_dir() -> Path:
    if os.environ.get("AZURE_TYPES_DIR"):
        return Path(os.environ["AZURE_TYPES_DIR"])
    vendored = Path(__file__).resolve().parent / "azure-types"  # a copy in the repo (MIT, bicep-types-az)
    return vendored if vendored.is_dir() else ROOT.parent / "shared" / "azure-types"


@cache
def type_index() -> dict[str, tuple[list[dict[str, Any]], int]]:
    """'namespace/type@version' (lower case) -> (the file's type array, index of the resource body)."""
    folder = types_dir()
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no Azure type definitions in {folder}: put the bicep-types-az files there "
                                "(see its README.md) or set AZURE_TYPES_DIR")
    index: dict[str, tuple[list[dict[str, Any]], int]] = {}
    for path in files:
        types = json.loads(path.read_text(encoding="utf-8"))
        for entry in types:
            if entry.get("$type") == "ResourceType":
                index[entry["name"].lower()] = (types, ref_index(entry["body"]))
    return index


def ref_index(ref: dict[str, str]) -> int:
    return int(ref["$ref"].rsplit("/", 1)[1])


@dataclass
class Report:
    checked: int = 0  # properties whose name and value were verified against the type
    by_type: int = 0  # of those, expressions verified by their type (a string parameter into a string property)
    skipped: int = 0  # properties whose name was verified but whose value is an expression of unknown type
    resources: int = 0
    errors: list[str] = field(default_factory=list)
    skipped_at: list[str] = field(default_factory=list)


def is_expression(node: Any) -> bool:
    if isinstance(node, dict):
        return ("operator" in node and len(node) == 1) or ("function" in node and len(node) == 1)
    return False


class Checker:
    """Checks one file's resources; ``bindings`` gives values to parameters known to the caller."""

    def __init__(self, file: str, doc: dict[str, Any], report: Report, bindings: dict[str, Any] | None = None,
                 folder: Path | None = None):
        self.file, self.doc, self.report, self.folder = file, doc, report, folder
        self.symbols = set(doc.get("parameters") or {}) | set(doc.get("variables") or {}) | \
            set(doc.get("modules") or {}) | loop_names(doc)
        self.symbols |= resource_symbols(doc.get("resources") or {})
        self.known: dict[str, Any] = dict(bindings or {})
        for _ in range(3):  # variables may use variables declared after them
            for name, var in (doc.get("variables") or {}).items():
                if name not in self.known:
                    value = self.value_of(var.get("value"))
                    if value is not UNKNOWN:
                        self.known[name] = value

    def bound(self, extra: dict[str, Any]) -> Checker:
        """The same checker with loop variables bound (UNKNOWN values are left out)."""
        child = Checker.__new__(Checker)
        child.__dict__.update(self.__dict__)
        child.known = {**self.known, **{k: v for k, v in extra.items() if v is not UNKNOWN}}
        return child

    # --- values -------------------------------------------------------------------------------------------------
    def value_of(self, node: Any) -> Any:
        """The node's literal value, UNKNOWN for an expression. Known symbols and property reads are followed."""
        if isinstance(node, str):
            if "${" in node:
                return UNKNOWN
            if IDENTIFIER.match(node) and node in self.symbols:
                return self.known.get(node, UNKNOWN)
            return node
        if isinstance(node, list):
            items = [self.value_of(n) for n in node]
            return UNKNOWN if any(i is UNKNOWN for i in items) else items
        if isinstance(node, dict) and not is_expression(node):
            if "loop_type" in node or any("${" in k for k in node):
                return UNKNOWN
            values = {k.strip("'"): self.value_of(v) for k, v in node.items()}
            return UNKNOWN if any(v is UNKNOWN for v in values.values()) else values
        if is_expression(node):
            fn = node.get("function")
            if fn and fn["type"] == "load_json_content" and self.folder is not None:
                return self.load_json(list(fn.get("parameters", {}).values()))
            op = node.get("operator")
            if op and op["type"] == "property_accessor":
                base = self.value_of(op["operands"]["operand_1"])
                prop = op["operands"]["operand_2"]
                while isinstance(base, dict) and isinstance(prop, dict) and is_expression(prop) \
                        and prop.get("operator", {}).get("type") == "property_accessor":
                    base = base.get(prop["operator"]["operands"]["operand_1"], UNKNOWN)
                    prop = prop["operator"]["operands"]["operand_2"]
                if isinstance(base, dict) and isinstance(prop, str):
                    return base.get(prop, UNKNOWN)
            return UNKNOWN
        return node

    def load_json(self, args: list[Any]) -> Any:
        """loadJsonContent(path[, '$.key']): read at compile time, so the compiler (and this check) know it."""
        path = self.value_of(args[0]) if args else UNKNOWN
        query = self.value_of(args[1]) if len(args) > 1 and args[1] is not None else "$"
        if not isinstance(path, str) or not isinstance(query, str) or not re.match(r"^\$(\.[A-Za-z_]\w*)*$", query):
            return UNKNOWN
        value = json.loads((self.folder / path).read_text(encoding="utf-8"))
        for key in query.split(".")[1:]:
            value = value.get(key, UNKNOWN) if isinstance(value, dict) else UNKNOWN
        return value

    # --- types --------------------------------------------------------------------------------------------------
    def check_resource(self, symbol: str, rtype: str, api_version: str | None, body: dict[str, Any],
                       existing: bool) -> None:
        key = f"{rtype}@{api_version}".lower()
        where = f"{self.file}: resource {symbol} ({rtype}@{api_version})"
        if key not in type_index():
            self.report.errors.append(f"{where}: no such resource type/API version in {types_dir()}")
            return
        self.report.resources += 1
        if existing:
            return
        types, body_index = type_index()[key]
        fields = {k: v for k, v in body.items() if k not in BICEP_RESOURCE_KEYS}
        self.report.errors.extend(self._check(fields, types, body_index, where))

    def _check(self, node: Any, types: list[dict[str, Any]], index: int, where: str,
               resolved: bool = False) -> list[str]:
        t = types[index]
        kind = t["$type"]
        if kind == "AnyType":
            return []
        if isinstance(node, dict) and "loop_type" in node:  # [for x in ...: item] -> an array of item
            if kind != "ArrayType":
                return [f"{where}: a for-loop (array) where the type is {describe(types, index)}"]
            return self._check(node.get("config"), types, ref_index(t["itemType"]), f"{where}[*]")
        value = node if resolved or structural(node) else self.value_of(node)
        if value is UNKNOWN:
            cond = node.get("operator") if isinstance(node, dict) else None
            if cond and cond.get("type") == "conditional":  # both branches must fit
                ops = cond["operands"]
                return self._check(ops["true_value"], types, index, f"{where}(?:true)") + \
                    self._check(ops["false_value"], types, index, f"{where}(?:false)")
            return []
        if kind == "ObjectType":
            return self._object(node, value, types, t, where, resolved=resolved)
        if kind == "DiscriminatedObjectType":
            return self._discriminated(node, value, types, t, where, resolved)
        if kind == "ArrayType":
            if not isinstance(value, list):
                return [f"{where}: expected an array, got {short(value)}"]
            out: list[str] = []
            for i, item in enumerate(value):
                out += self._check(item, types, ref_index(t["itemType"]), f"{where}[{i}]", resolved)
            if "minLength" in t and len(value) < t["minLength"]:
                out.append(f"{where}: at least {t['minLength']} items expected, got {len(value)}")
            if "maxLength" in t and len(value) > t["maxLength"]:
                out.append(f"{where}: at most {t['maxLength']} items expected, got {len(value)}")
            return out
        if kind == "UnionType":
            # Try each element without counting, then count the properties of the one that fits (once).
            saved = (self.report.checked, self.report.skipped, len(self.report.skipped_at))
            results = [self._check(node, types, ref_index(e), where, resolved) for e in t["elements"]]
            self.report.checked, self.report.skipped = saved[0], saved[1]
            del self.report.skipped_at[saved[2]:]
            fits = [e for e, r in zip(t["elements"], results, strict=True) if not r]
            if fits:
                return self._check(node, types, ref_index(fits[0]), where, resolved)
            literals = [types[ref_index(e)].get("value") for e in t["elements"]
                        if types[ref_index(e)]["$type"] == "StringLiteralType"]
            if literals and isinstance(value, str):
                hint = next((v for v in literals if v.lower() == value.lower()), None)
                return [f"{where}: {value!r} is not one of {literals}" + (f" (did you mean {hint!r}?)" if hint
                                                                            else "")]
            return [f"{where}: {short(value)} matches none of {describe(types, index)}"]
        if kind == "StringLiteralType":
            if value != t["value"]:
                return [f"{where}: expected {t['value']!r}, got {short(value)}"]
            return []
        if kind == "StringType":
            if not isinstance(value, str):
                return [f"{where}: expected a string, got {short(value)}"]
            if "minLength" in t and len(value) < t["minLength"] or "maxLength" in t and len(value) > t["maxLength"]:
                return [f"{where}: string length {len(value)} outside {t.get('minLength')}..{t.get('maxLength')}"]
            return []
        if kind == "IntegerType":
            if isinstance(value, bool) or not isinstance(value, int):
                return [f"{where}: expected an integer, got {short(value)}"]
            if "minValue" in t and value < t["minValue"] or "maxValue" in t and value > t["maxValue"]:
                return [f"{where}: {value} outside {t.get('minValue')}..{t.get('maxValue')}"]
            return []
        if kind == "BooleanType":
            return [] if isinstance(value, bool) else [f"{where}: expected true/false, got {short(value)}"]
        if kind == "NullType":
            return [] if value is None else [f"{where}: expected null"]
        return [f"{where}: unsupported type kind {kind}"]

    def _object(self, node: Any, value: Any, types, t: dict[str, Any], where: str,
                properties: dict[str, Any] | None = None, resolved: bool = False) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({t.get('name', 'object')}), got {short(value)}"]
        # A literal from a known symbol (a variable, a binding) is walked as given; its own nodes are literals.
        literal = not resolved and isinstance(node, dict) and not is_expression(node)
        items = node if literal else value
        properties = (t.get("properties") or {}) if properties is None else properties
        additional = t.get("additionalProperties")
        out: list[str] = []
        for raw_key, child in items.items():
            key = raw_key.strip("'")
            path = f"{where}.{key}"
            if "${" in key:  # a computed key: only free-key objects take it
                if additional is None:
                    out.append(f"{path}: computed key in an object without free keys ({t.get('name')})")
                else:
                    out += self._property(child, types, ref_index(additional), path, not literal)
                continue
            prop = properties.get(key)
            if prop is None:
                if additional is not None:
                    out += self._property(child, types, ref_index(additional), path, not literal)
                    continue
                hint = next((n for n in properties if n.lower() == key.lower()), None)
                out.append(f"{path}: unknown property (BCP037) of {t.get('name', 'object')}"
                           + (f"; did you mean {hint!r}?" if hint else
                              f"; known: {sorted(n for n, p in properties.items() if not p['flags'] & 2)}"))
                continue
            if prop["flags"] & FLAG_READ_ONLY:
                out.append(f"{path}: read-only property set")
                continue
            out += self._property(child, types, ref_index(prop["type"]), path, not literal)
        present = {k.strip("'") for k in items}
        for name, prop in properties.items():
            if prop["flags"] & FLAG_REQUIRED and not prop["flags"] & FLAG_READ_ONLY and name not in present:
                out.append(f"{where}: required property {name!r} missing")
        return out

    def type_of(self, node: Any) -> str | None:
        """The Bicep type of an expression whose value is unknown: string/int/bool/object/array, or None."""
        if isinstance(node, str):
            if "${" in node:
                return "string"
            param = (self.doc.get("parameters") or {}).get(node)
            if param and param.get("type") in EXPRESSION_KINDS:
                return param["type"]
            var = (self.doc.get("variables") or {}).get(node)
            return self.type_of(var["value"]) if var and var.get("value") != node else None
        if isinstance(node, dict) and "function" in node:
            return FUNCTION_TYPES.get(node["function"]["type"])
        if isinstance(node, dict) and "operator" in node:
            op = node["operator"]
            operands = op.get("operands") or {}
            if op["type"] == "property_accessor" and operands.get("operand_2") in ("id", "name") \
                    and operands.get("operand_1") in resource_symbols(self.doc.get("resources") or {}):
                return "string"
        return None

    def _property(self, child: Any, types, index: int, path: str, resolved: bool = False) -> list[str]:
        if not resolved and not structural(child) and self.value_of(child) is UNKNOWN:
            cond = child.get("operator", {}) if isinstance(child, dict) else {}
            kind = self.type_of(child)
            expected = accepted_kinds(types, index)
            if kind is not None and expected is not None:
                self.report.checked += 1
                self.report.by_type += 1
                if kind not in expected:
                    return [f"{path}: a {kind} expression where {describe(types, index)} is expected"]
                return []
            if cond.get("type") != "conditional":
                self.report.skipped += 1
                self.report.skipped_at.append(path)
                return []
        self.report.checked += 1
        return self._check(child, types, index, path, resolved)

    def _discriminated(self, node: Any, value: Any, types, t: dict[str, Any], where: str,
                       resolved: bool = False) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({t.get('name')}), got {short(value)}"]
        disc = t["discriminator"]
        literal = not resolved and isinstance(node, dict) and not is_expression(node)
        items = node if literal else value
        if disc not in {k.strip("'") for k in items}:
            return [f"{where}: discriminator {disc!r} missing; one of {sorted(t['elements'])}"]
        chosen = items.get(disc, items.get(f"'{disc}'"))
        chosen = self.value_of(chosen) if literal else chosen
        base = dict(t.get("baseProperties") or {})
        if chosen is UNKNOWN:
            self.report.skipped += len(items)
            self.report.skipped_at.append(f"{where} (discriminator {disc} is an expression)")
            return []
        if chosen not in t["elements"]:
            return [f"{where}.{disc}: {short(chosen)} is not one of {sorted(t['elements'])}"]
        element = types[ref_index(t["elements"][chosen])]
        merged = {**base, **(element.get("properties") or {})}
        return self._object(node, value, types, element, where, properties=merged, resolved=resolved)


EXPRESSION_KINDS = {"string", "int", "bool", "object", "array"}
# Result types of the functions the templates call (pycep's names), for expressions whose value is unknown.
FUNCTION_TYPES = {"guid": "string", "subscription_resource_id": "string", "resource_id": "string",
                  "tenant_resource_id": "string", "to_lower": "string", "to_upper": "string", "unique_string": "string",
                  "replace": "string", "substring": "string", "format": "string", "length": "int", "empty": "bool"}
KIND_OF_TYPE = {"StringType": "string", "IntegerType": "int", "BooleanType": "bool", "ObjectType": "object",
                "DiscriminatedObjectType": "object", "ArrayType": "array"}


def accepted_kinds(types, index: int) -> set[str] | None:
    """Expression kinds a type accepts, or None when only a value can tell (closed enums, any)."""
    t = types[index]
    if t["$type"] == "UnionType":
        kinds = [accepted_kinds(types, ref_index(e)) for e in t["elements"]]
        if any(k is None for k in kinds):
            return None
        return set().union(*kinds)
    kind = KIND_OF_TYPE.get(t["$type"])
    return {kind} if kind else None


def structural(node: Any) -> bool:
    """An array or object literal (or a for-loop): checked element by element even if some are expressions."""
    return isinstance(node, list) or (isinstance(node, dict) and not is_expression(node))


def is_literal(node: Any, symbols: set[str]) -> bool:
    """True when the node holds no expression at all (a literal variable value)."""
    if isinstance(node, str):
        return "${" not in node and not (IDENTIFIER.match(node) and node in symbols)
    if isinstance(node, list):
        return all(is_literal(n, symbols) for n in node)
    if isinstance(node, dict):
        if is_expression(node) or "loop_type" in node:
            return False
        return all(is_literal(v, symbols) and "${" not in k for k, v in node.items())
    return True


def loop_names(node: Any) -> set[str]:
    """Item and index names of every for-loop in the file (they are symbols inside their loop)."""
    out: set[str] = set()
    if isinstance(node, dict):
        detail = (node.get("loop_type") or {}).get("detail") if isinstance(node.get("loop_type"), dict) else None
        if detail:
            out |= {v for k, v in detail.items() if k in ("item_name", "index_name") and isinstance(v, str)}
        for v in node.values():
            out |= loop_names(v)
    elif isinstance(node, list):
        for v in node:
            out |= loop_names(v)
    return out


def resource_symbols(resources: dict[str, Any]) -> set[str]:
    out = set(resources)
    for raw in resources.values():
        body = raw.get("config") or {}
        while isinstance(body, dict) and "config" in body and ("loop_type" in body or "condition" in body):
            body = body["config"]
        out |= resource_symbols(body.get("resources") or {}) if isinstance(body, dict) else set()
    return out


def describe(types, index: int) -> str:
    t = types[index]
    if t["$type"] == "UnionType":
        return " | ".join(describe(types, ref_index(e)) for e in t["elements"])
    if t["$type"] == "StringLiteralType":
        return repr(t["value"])
    return t.get("name") or t["$type"]


def short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


def check_deployment(infra: Path, report: Report, entry_points: tuple[str, ...],
                     parser=parse) -> set[str]:
    """Check every resource reachable from the entry points, following module calls with the values they pass.

    Module parameters get the values the caller passes when those are known (a literal, a literal variable, the
    content of loadJsonContent, the item of a module for-loop), else their default; entry points get their
    parameters' defaults (the default deployment). Returns the files visited (relative to ``infra``).
    """
    visited: set[str] = set()

    def visit(rel: str, bindings: dict[str, Any], label: str) -> None:
        path = infra / rel
        visited.add(rel)
        doc = parser(path)
        known = {k: v for k, v in bindings.items() if v is not UNKNOWN}
        for name, param in (doc.get("parameters") or {}).items():
            if name not in known and param.get("default") is not None:
                default = Checker(label, doc, Report(), known, path.parent).value_of(param["default"])
                if default is not UNKNOWN:
                    known[name] = default
        checker = Checker(label, doc, report, known, path.parent)
        for symbol, raw in (doc.get("resources") or {}).items():
            walk(checker, symbol, raw, None)
        for symbol, module in (doc.get("modules") or {}).items():
            target = str((path.parent / module["detail"]["path"]).resolve().relative_to(infra.resolve()))
            body = module["config"]
            calls: list[tuple[Checker, str]] = [(checker, "")]
            if "loop_type" in body:
                detail = body["loop_type"]["detail"]
                items = checker.value_of(detail.get("array_name"))
                item = detail.get("item_name")
                body = body["config"]
                if isinstance(items, list) and isinstance(item, str):
                    calls = [(checker.bound({item: v}), f"[{i}]") for i, v in enumerate(items)]
            if "condition" in body and "config" in body:
                body = body["config"]
            for caller, suffix in calls:
                passed = {k: caller.value_of(v) for k, v in (body.get("params") or {}).items()}
                visit(target, passed, f"{target} (module {symbol}{suffix} of {label.split(' ')[0]})")

    for entry in entry_points:
        visit(entry, {}, entry)
    return visited


def walk(checker: Checker, symbol: str, raw: dict[str, Any], parent: tuple[str, str | None] | None) -> None:
    """Check one resource declaration and its nested child resources."""
    rtype = raw["type"] if parent is None else f"{parent[0]}/{raw['type']}"
    version = raw.get("api_version") or (parent[1] if parent else None)
    body = raw.get("config") or {}
    while isinstance(body, dict) and "config" in body and ("loop_type" in body or "condition" in body):
        body = body["config"]
    checker.check_resource(symbol, rtype, version, body, bool(raw.get("existing")))
    for child_symbol, child in (body.get("resources") or {}).items():
        walk(checker, child_symbol, child, (rtype, version))
