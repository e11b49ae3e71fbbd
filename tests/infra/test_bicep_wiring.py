"""Wiring checks a Bicep compiler would make, done offline, plus app <-> infra setting agreement.

Without the bicep binary in CI, a renamed module parameter or output would only fail at `azd provision`. These
tests compare what each template passes with what the module declares, and check that every app setting the
function app's bindings refer to (``%NAME%``, ``connection="X"``) is created by the templates.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.infra.bicep_model import INFRA, ROOT, app_settings, bicep_files, parsed, render

MODULE_OUTPUT = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\.outputs\.([A-Za-z_][A-Za-z0-9_]*)")


def module_calls():
    """(file, symbol, module path relative to infra/, params passed, body) for every module statement."""
    for name in bicep_files():
        for symbol, module in (parsed(name).get("modules") or {}).items():
            body = module["config"]
            if "loop_type" in body:
                body = body["config"]
            path = (INFRA / name).parent / module["detail"]["path"]
            yield name, symbol, str(path.resolve().relative_to(INFRA)), body.get("params", {})


@pytest.mark.parametrize(("file", "symbol", "target", "params"), list(module_calls()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_module_params_match_the_module_declaration(file, symbol, target, params):
    declared = parsed(target)["parameters"]
    unknown = set(params) - set(declared)
    assert not unknown, f"{file}: module {symbol} passes undeclared params {sorted(unknown)} to {target}"
    required = {n for n, p in declared.items() if p.get("default") is None}
    missing = required - set(params)
    assert not missing, f"{file}: module {symbol} does not pass required params {sorted(missing)} of {target}"


def test_module_outputs_used_exist():
    checked = 0
    for name in bicep_files():
        modules = {symbol: target for file, symbol, target, _ in module_calls() if file == name}
        text = render(parsed(name))
        for symbol, output in MODULE_OUTPUT.findall(text):
            assert symbol in modules, f"{name}: {symbol}.outputs.{output} refers to no module"
            assert output in parsed(modules[symbol])["outputs"], \
                f"{name}: {modules[symbol]} has no output {output}"
            checked += 1
    # main.bicep wires modules together through their outputs: none found means the pattern no longer matches.
    assert checked, f"no <module>.outputs.<name> reference found in {bicep_files()}: {MODULE_OUTPUT.pattern} is stale"


def test_every_template_file_is_used():
    used = {"main.bicep", "modules/blob-events-subscription.bicep"}  # entry points (azd, postdeploy hook)
    used |= {target for _, _, target, _ in module_calls()}
    assert set(bicep_files()) == used, sorted(set(bicep_files()) - used)


def binding_references() -> tuple[set[str], set[str]]:
    """(%NAME% settings, connection names) used by the function app's trigger decorators."""
    sources = [ROOT / "function_app.py", *sorted((ROOT / "functions").glob("*.py"))]
    text = "\n".join(p.read_text() for p in sources if p.exists())
    return set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", text)), set(re.findall(r'connection="([^"]*)"', text))


def test_app_binding_settings_are_created_by_the_templates():
    names, connections = binding_references()
    # function_app.py and functions/ do bind (queues, Event Grid, timers): none found means the patterns went stale.
    assert names and connections, "no %SETTING% or connection=\"...\" found in function_app.py and functions/"
    settings = app_settings()
    missing = sorted(n for n in names if n not in settings)
    assert not missing, f"bindings in functions/ use %{missing}% but infra does not set them"
    for conn in connections - {""}:
        if conn == "AzureWebJobsStorage":
            conn_settings = [k for k in settings if k.startswith("AzureWebJobsStorage__")]
        else:
            conn_settings = [k for k in settings if k.startswith(f"{conn}__")]
        assert f"{conn}__credential" in conn_settings and f"{conn}__clientId" in conn_settings, \
            f"connection {conn!r} used by a binding has no identity-based settings in infra"


@pytest.mark.parametrize("hook", ["preprovision.sh", "postprovision.sh", "postdeploy.sh"])
def test_hook_scripts_are_valid_bash(hook):
    import subprocess

    result = subprocess.run(["bash", "-n", str(INFRA / "hooks" / hook)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_preprovision_hook_refuses_drifted_pools(tmp_path):
    """The hook is the gate before `azd provision`: it must fail when pools.generated.json is stale."""
    import shutil
    import subprocess

    repo = tmp_path / "repo"
    (repo / "infra" / "hooks").mkdir(parents=True)
    for rel in ("infra/generate_pools.py", "infra/hooks/preprovision.sh", "pipelines.yaml"):
        shutil.copy(ROOT / rel, repo / rel)
    shutil.copytree(ROOT / "shared", repo / "shared")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(ROOT / ".venv" / "bin" / "python")
    (repo / "infra" / "pools.generated.json").write_text((INFRA / "pools.generated.json").read_text())
    hook = ["bash", str(repo / "infra" / "hooks" / "preprovision.sh")]
    assert subprocess.run(hook, capture_output=True, text=True, timeout=60).returncode == 0
    pipelines = repo / "pipelines.yaml"
    doc = yaml.safe_load(pipelines.read_text())
    doc["pools"][0]["scale"]["maxSpotNodes"] = int(doc["pools"][0]["scale"].get("maxSpotNodes", 0)) + 1
    pipelines.write_text(yaml.safe_dump(doc))
    stale = subprocess.run(hook, capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "out of date" in stale.stderr
