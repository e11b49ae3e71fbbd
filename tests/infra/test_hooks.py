"""The azd hooks: POSIX sh (macOS's bash 3.2 and Linux's dash), and what they do, run against a stand-in `az`.

The docs promise macOS, whose bash is 3.2: `mapfile`, associative arrays, `${x,,}` and friends fail there. The hooks
are run here with /bin/sh (dash where available), which has none of bash's extensions, so a bashism fails the run.
`az` and `curl` are small scripts on PATH that answer like the Azure CLI and record their arguments.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.bicep_model import INFRA, ROOT

HOOKS = sorted(p.name for p in (INFRA / "hooks").glob("*.sh"))
# Constructs bash 3.2 or POSIX sh lack (bash 4+: mapfile/readarray, declare -A, case modification, |&, &>>,
# coproc, globstar; bash-only: [[ ]], arrays, process substitution, here-strings, ${!name}, pipefail, `function`).
BASHISMS = {
    "mapfile": r"\bmapfile\b", "readarray": r"\breadarray\b", "declare/typeset": r"\b(declare|typeset)\b",
    "local -n (namerefs)": r"\blocal\s+-n\b", "${x,,} / ${x^^}": r"\$\{[^}]*(,,|\^\^)[^}]*\}",
    "|& and &>>": r"\|&|&>>", "coproc": r"\bcoproc\b", "shopt": r"\bshopt\b", "[[ ]]": r"\[\[",
    "arrays": r"\b\w+=\(", "process substitution": r"[<>]\(", "here-string": r"<<<",
    "${!name} indirection": r"\$\{!", "pipefail": r"pipefail", "function keyword": r"^\s*function\s",
    "&> redirect": r"&>", "$'...' strings": r"\$'", "bash shebang": r"^#!.*bash",
}


def code_lines(text: str) -> list[tuple[int, str]]:
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if not line.lstrip().startswith("#")
            or i == 1]


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_use_no_bash_only_constructs(hook):
    found = [f"line {i}: {name}: {line.strip()}" for i, line in code_lines((INFRA / "hooks" / hook).read_text())
             for name, pattern in BASHISMS.items() if re.search(pattern, line)]
    assert not found, f"{hook} is not POSIX sh (macOS bash 3.2 / dash):\n" + "\n".join(found)


def test_the_bashism_check_catches_the_old_postdeploy():
    old = 'mapfile -t found < <(az functionapp function list)\nif [[ "${#found[@]}" -gt 1 ]]; then :; fi\n'
    hits = {name for _, line in code_lines(old) for name, pattern in BASHISMS.items() if re.search(pattern, line)}
    assert {"mapfile", "process substitution", "[[ ]]"} <= hits


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("shell", ["sh", "dash", "bash --posix"])
def test_hooks_parse_in_posix_shells(hook, shell):
    argv = shell.split()
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} is not installed")
    result = subprocess.run([*argv, "-n", str(INFRA / "hooks" / hook)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_azure_yaml_runs_every_hook_with_sh():
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    assert set(hooks) == {"preprovision", "postprovision", "predeploy", "postdeploy"}
    for name, hook in hooks.items():
        assert hook["posix"]["run"] == f"sh infra/hooks/{name}.sh", name
        assert hook["posix"]["continueOnError"] is False


def fake_tools(tmp_path: Path, az_script: str) -> dict[str, str]:
    """PATH with `az` and `curl` stand-ins; `az` logs each call (one JSON argv a line) to az.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "az.log"
    (bin_dir / "az").write_text(f"""#!/bin/sh
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" >> {log}
{az_script}
""")
    (bin_dir / "curl").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("az", "curl"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}


def az_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "az.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_hook(name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(INFRA / "hooks" / name)], capture_output=True, text=True, timeout=60,
                          env=env, cwd=ROOT)


POSTDEPLOY_ENV = {"AZURE_RESOURCE_GROUP": "rg-dev", "AZURE_FUNCTION_APP_NAME": "func-x",
                  "AZURE_STORAGE_ACCOUNT_NAME": "stx", "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-x",
                  "INPUT_CONTAINER": "input", "MARKER_CONTAINER": "markers", "DEADLETTER_CONTAINER": "eventgrid-deadletter",
                  "POSTDEPLOY_POLL_SECONDS": "0", "POSTDEPLOY_ATTEMPTS": "3"}
AZ_FUNCTIONS = """case "$1 $2 $3" in
  "functionapp show -g") echo func-x.azurewebsites.net ;;
  "functionapp function list") printf 'func-x/blob_intake\\nfunc-x/task_marker\\n' ;;
esac
"""


def test_postdeploy_subscribes_both_event_grid_triggers(tmp_path):
    env = {**fake_tools(tmp_path, AZ_FUNCTIONS), **POSTDEPLOY_ENV}
    result = run_hook("postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    deploy = [c for c in az_calls(tmp_path) if c[:3] == ["deployment", "group", "create"]]
    assert len(deploy) == 1
    args = deploy[0]
    assert "infra/modules/blob-events-subscription.bicep" in args
    for expected in ("intakeFunctionName=blob_intake", "markerFunctionName=task_marker",
                     "inputContainerName=input", "markerContainerName=markers"):
        assert expected in args, (expected, args)
    assert not [c for c in az_calls(tmp_path) if c[:2] == ["functionapp", "keys"]]  # no key is ever read


def test_postdeploy_waits_for_the_marker_trigger_and_says_what_is_missing(tmp_path):
    only_intake = AZ_FUNCTIONS.replace("\\nfunc-x/task_marker", "")
    env = {**fake_tools(tmp_path, only_intake), **POSTDEPLOY_ENV}
    result = run_hook("postdeploy.sh", env)
    assert result.returncode == 1
    assert "expected blob_intake and task_marker" in result.stderr and "[blob_intake]" in result.stderr
    assert not [c for c in az_calls(tmp_path) if c[:2] == ["deployment", "group"]]


def test_postdeploy_names_a_missing_setting(tmp_path):
    env = {**fake_tools(tmp_path, AZ_FUNCTIONS), **POSTDEPLOY_ENV}
    del env["MARKER_CONTAINER"]
    result = run_hook("postdeploy.sh", env)
    assert result.returncode == 1 and "MARKER_CONTAINER is not set" in result.stderr


PROVISION_ENV = {"AZURE_CONTAINER_REGISTRY_NAME": "crx", "WORKER_IMAGE": "crx.azurecr.io/eventbatch/worker:1"}


def test_postprovision_builds_the_sample_worker_in_the_registry(tmp_path):
    # `az acr repository show` fails (no such image yet); `az acr build` copies its context so the test can look.
    az = f"""case "$1 $2" in
  "acr repository") exit 1 ;;
  "acr build") for a in "$@"; do last=$a; done; cp -R "$last" {tmp_path}/context ;;
esac
"""
    env = {**fake_tools(tmp_path, az), **PROVISION_ENV}
    result = run_hook("postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    build = [c for c in az_calls(tmp_path) if c[:2] == ["acr", "build"]][0]
    assert build[build.index("--registry") + 1] == "crx"
    assert build[build.index("--image") + 1] == "eventbatch/worker:1"
    assert build[build.index("--platform") + 1] == "linux/amd64"
    context = tmp_path / "context"
    assert (context / "Dockerfile").read_text() == (INFRA / "hooks" / "worker.Dockerfile").read_text()
    scripts = {p.name for p in (ROOT / "samples" / "images" / "worker" / "app").iterdir()}
    assert {p.name for p in (context / "app").iterdir()} == scripts
    assert not list(tmp_path.glob("eventbatch-worker.*")), "the staging folder must be removed"


def test_postprovision_keeps_an_existing_image(tmp_path):
    env = {**fake_tools(tmp_path, 'case "$1 $2" in "acr repository") exit 0 ;; esac'), **PROVISION_ENV}
    result = run_hook("postprovision.sh", env)
    assert result.returncode == 0 and "already exists" in result.stdout
    assert not [c for c in az_calls(tmp_path) if c[:2] == ["acr", "build"]]


def test_the_worker_image_runs_the_scripts_the_pipelines_call():
    dockerfile = (INFRA / "hooks" / "worker.Dockerfile").read_text()
    assert "COPY app/ /app/" in dockerfile
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    scripts = {p.name for p in (ROOT / "samples" / "images" / "worker" / "app").iterdir()}
    for pipeline in doc["pipelines"]:
        for line in (pipeline["commandLine"], (pipeline.get("merge") or {}).get("commandLine")):
            if line and line.startswith("/app/"):
                assert line.split()[0].removeprefix("/app/") in scripts, line


def test_pools_start_at_zero_nodes_so_the_image_can_follow_provisioning():
    """postprovision builds the image after the pools exist: safe only while no pool starts nodes on creation."""
    pools = json.loads((INFRA / "pools.generated.json").read_text())["pools"]
    assert pools, "pools.generated.json has no pool"
    for pool in pools:
        assert pool["scale"]["mode"] == "autoscale", pool["id"]
        assert "$PendingTasks" in pool["scale"]["formula"] or "$ActiveTasks" in pool["scale"]["formula"], pool["id"]


def test_postprovision_builds_the_entrypoint_sample_image_too(tmp_path):
    az = f"""case "$1 $2" in
  "acr repository") exit 1 ;;
  "acr build") for a in "$@"; do last=$a; done; mkdir -p {tmp_path}/ctx; cp -R "$last" {tmp_path}/ctx/ ;;
esac
"""
    env = {**fake_tools(tmp_path, az), **PROVISION_ENV}
    result = run_hook("postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    images = [c[c.index("--image") + 1] for c in az_calls(tmp_path) if c[:2] == ["acr", "build"]]
    assert images == ["eventbatch/worker:1", "eventbatch/hello:1"]
    hello = next(p for p in (tmp_path / "ctx").iterdir() if p.name.startswith("eventbatch-hello."))
    assert 'ENTRYPOINT ["/app/hello.sh"]' in (hello / "Dockerfile").read_text()
    assert {p.name for p in (hello / "app").iterdir()} == {"hello.sh"}
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    assert any(p["image"] == "${REGISTRY_SERVER}/eventbatch/hello:1" and p["commandLine"] == ""
               for p in doc["pipelines"])


def test_predeploy_image_check_is_skippable(tmp_path):
    env = {**fake_tools(tmp_path, ""), "EVENTBATCH_SKIP_IMAGE_CHECK": "true"}
    result = run_hook("predeploy.sh", env)
    assert result.returncode == 0 and "not checking" in result.stdout


def test_predeploy_skips_a_registry_it_cannot_reach(tmp_path):
    env = {**fake_tools(tmp_path, ""), "WORKER_IMAGE": "127.0.0.1:9/eventbatch/worker:1",
           "AZURE_CONTAINER_REGISTRY_ENDPOINT": "127.0.0.1:9", "EVENTBATCH_IMAGE_CHECK_OUT": str(tmp_path / "f.json")}
    result = run_hook("predeploy.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not reachable" in result.stdout and "SKIPPED" in result.stdout
    assert json.loads((tmp_path / "f.json").read_text())["images"] == {}


def test_preprovision_skips_the_image_check_before_the_registry_exists(tmp_path):
    result = run_hook("preprovision.sh", fake_tools(tmp_path, ""))
    assert result.returncode == 0, result.stderr
    assert "image check skipped: no registry yet" in result.stdout
