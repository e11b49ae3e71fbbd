"""Every resource body in infra/*.bicep type-checked against Azure's type definitions (what `bicep build` checks).

No Bicep compiler can be installed here, so without this a misspelled property, a wrong enum value or a read-only
property would first show up at `azd provision`. See azure_types.py for what is checked and what is skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.infra.azure_types import Report, check_deployment, parse, type_index, types_dir
from tests.infra.bicep_model import INFRA, bicep_files, parsed

MIN_CHECKED = 300


ENTRY_POINTS = ("main.bicep", "modules/blob-events-subscription.bicep")  # azd; the postdeploy hook


def check_all(infra: Path = INFRA) -> Report:
    """Type-check every resource reachable from the entry points (each module with the values passed to it)."""
    report = Report()
    parser = (lambda path: parsed(str(path.relative_to(INFRA)))) if infra == INFRA else parse
    visited = check_deployment(infra, report, ENTRY_POINTS, parser)
    unvisited = {str(p.relative_to(infra)) for p in infra.rglob("*.bicep")} - visited
    assert not unvisited, f"templates no entry point reaches (so never type-checked): {sorted(unvisited)}"
    return report


@pytest.fixture(scope="module")
def report() -> Report:
    if not types_dir().is_dir():
        pytest.fail(f"{types_dir()} is missing: the Azure type definitions (bicep-types-az) are needed to "
                    "type-check infra/; set AZURE_TYPES_DIR to their folder")
    return check_all()


def test_every_resource_body_matches_its_azure_type(report, capsys):
    with capsys.disabled():
        print(f"\n[bicep types] {report.resources} resources, {report.checked} properties checked "
              f"({report.checked - report.by_type} by value, {report.by_type} by the expression's type), "
              f"{report.skipped} skipped (expressions of unknown type), {len(report.errors)} errors")
    assert report.errors == []


def test_the_check_covers_the_templates(report):
    assert report.checked >= MIN_CHECKED, f"only {report.checked} properties were checked"
    declared = sum(len(parsed(f).get("resources") or {}) for f in bicep_files())
    assert report.resources >= declared  # nested resources add to the count


def test_every_resource_type_and_api_version_has_a_definition():
    used = set()
    for name in bicep_files():
        for raw in (parsed(name).get("resources") or {}).values():
            used.add(f"{raw['type']}@{raw['api_version']}".lower())
    missing = sorted(u for u in used if u not in type_index())
    assert not missing, f"no type definition for {missing} in {types_dir()}"


MODULES = [f for f in bicep_files() if f.startswith("modules/")]


BICEP_KEYS = {"name", "parent", "scope", "dependsOn"}


def misspell(text: str) -> tuple[str, str] | None:
    """Drop the third letter of the first property of a (non-existing) resource body: location -> loation."""
    lines = text.splitlines(keepends=True)
    inside = False
    for i, line in enumerate(lines):
        if line.startswith("resource ") and " existing" not in line:
            inside = True
        elif line.startswith("}"):
            inside = False
        elif inside:
            key = line.strip().split(":", 1)[0]
            if ":" in line and key.isidentifier() and len(key) > 3 and key not in BICEP_KEYS:
                lines[i] = line.replace(f"{key}:", f"{key[:2]}{key[3:]}:", 1)
                return "".join(lines), key
    return None


@pytest.mark.parametrize("module", MODULES)
def test_a_misspelled_property_in_any_module_fails_the_check(module, tmp_path):
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns("__pycache__"))
    changed = misspell((copy / module).read_text())
    assert changed, f"{module}: no property to misspell found"
    text, key = changed
    (copy / module).write_text(text)
    report = check_all(copy)
    wrong = f"{key[:2]}{key[3:]}"
    assert any(f".{wrong}: unknown property" in e for e in report.errors), (key, report.errors)
