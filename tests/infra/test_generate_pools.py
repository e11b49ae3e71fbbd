"""The pools Azure gets are the pools pipelines.yaml declares: drift check and the generator's refusals."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "infra" / "generate_pools.py"
GENERATED = ROOT / "infra" / "pools.generated.json"

spec = importlib.util.spec_from_file_location("generate_pools", GENERATOR)
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

from shared.autoscale_formula import default_formula  # noqa: E402  (after the generator put ROOT on sys.path)

POOL = """
pools:
  - id: {id}
    vmSize: {vm}
    imageReference: {{publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: "2204", version: latest}}
    nodeAgentSkuId: {agent}
    taskSlotsPerNode: 2
    container:
      images: ["${{WORKER_IMAGE}}", "${{REGISTRY_SERVER}}/tools/extra:3"]
      registries:
        - server: ${{REGISTRY_SERVER}}
          username: ${{REGISTRY_USERNAME:-}}
          password: ${{REGISTRY_PASSWORD:-}}
          identityResourceId: ${{POOL_IDENTITY_RESOURCE_ID:-}}
    scale:
      mode: ${{POOL_SCALE_MODE:-fixed}}
      formula: default
      evaluationInterval: ${{POOL_AUTOSCALE_INTERVAL:-PT10M}}
      maxDedicatedNodes: {max_dedicated}
      maxSpotNodes: 3
"""


def write(tmp_path: Path, id="p1", vm="STANDARD_D2S_V5", agent="batch.node.ubuntu 22.04", max_dedicated=1,
          extra="") -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(POOL.format(id=id, vm=vm, agent=agent, max_dedicated=max_dedicated) + extra)
    return path


def test_committed_pools_file_is_up_to_date_with_pipelines_yaml():
    """Drift check: fails when pipelines.yaml changed and infra/pools.generated.json was not regenerated."""
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_pool_of_pipelines_yaml_is_generated_with_its_contract_values():
    declared = yaml.safe_load((ROOT / "pipelines.yaml").read_text())["pools"]
    generated = {p["id"]: p for p in gen.generate()["pools"]}
    assert set(generated) == {p["id"] for p in declared}
    for pool in declared:
        out = generated[pool["id"]]
        assert out["vmSize"] == pool["vmSize"]
        assert out["taskSlotsPerNode"] == pool["taskSlotsPerNode"]
        assert out["nodeAgentSkuId"] == pool["nodeAgentSkuId"]
        scale = pool["scale"]
        if out["scale"]["mode"] == "autoscale" and scale.get("formula", "default") == "default":
            assert out["scale"]["formula"] == default_formula(scale["maxDedicatedNodes"], scale["maxSpotNodes"],
                                                              pool["taskSlotsPerNode"])


def test_check_mode_reports_drift_and_write_mode_fixes_it(tmp_path):
    pipelines = write(tmp_path)
    out = tmp_path / "pools.json"
    out.write_text("{}\n")
    check = [sys.executable, str(GENERATOR), "--pipelines", str(pipelines), "--output", str(out)]
    drift = subprocess.run([*check, "--check"], capture_output=True, text=True, timeout=60)
    assert drift.returncode == 1 and "out of date" in drift.stderr and "generate_pools.py" in drift.stderr
    assert subprocess.run(check, capture_output=True, text=True, timeout=60).returncode == 0
    assert subprocess.run([*check, "--check"], capture_output=True, text=True, timeout=60).returncode == 0


def test_placeholders_become_deploy_time_tokens_and_azure_values(tmp_path):
    pool = gen.generate(write(tmp_path))["pools"][0]
    assert pool["containerImageNames"] == ["{{WORKER_IMAGE}}", "{{REGISTRY_SERVER}}/tools/extra:3"]
    assert pool["registryServers"] == ["{{REGISTRY_SERVER}}"]
    # POOL_SCALE_MODE is autoscale on Azure whatever the file's default; other defaults are taken as written.
    assert pool["scale"]["mode"] == "autoscale"
    assert pool["scale"]["evaluationInterval"] == "PT10M"
    assert pool["scale"]["formula"] == default_formula(1, 3, 2)
    assert pool["scale"]["formulaWithoutSpot"] == default_formula(1, 0, 2)
    assert pool["gpu"] is False


def test_gpu_sizes_are_marked_so_bicep_deploys_them_only_on_request(tmp_path):
    pool = gen.generate(write(tmp_path, vm="Standard_NC4as_T4_v3"))["pools"][0]
    assert pool["gpu"] is True


def test_spot_only_pool_has_no_dedicated_variant(tmp_path):
    pool = gen.generate(write(tmp_path, max_dedicated=0))["pools"][0]
    assert pool["scale"]["formulaWithoutSpot"] == ""
    assert pool["scale"]["formula"] == default_formula(0, 3, 2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"agent": "batch.node.ubuntu 20.04"}, "nodeAgentSkuId must be 'batch.node.ubuntu 22.04' or newer"),
    ({"id": "bad id!"}, ".id must be 1-64 letters"),
    ({"extra": "  - id: p2\n    vmSize: x\n"}, "pools[1] is missing imageReference"),
])
def test_invalid_pools_are_refused_with_the_setting_named(tmp_path, kwargs, message):
    with pytest.raises(gen.PoolSpecError, match=re.escape(message)):
        gen.generate(write(tmp_path, **kwargs))


def test_registry_password_is_refused_on_azure(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text().replace("${REGISTRY_PASSWORD:-}", "hunter2"))
    with pytest.raises(gen.PoolSpecError, match="managed identity"):
        gen.generate(path)


def test_unknown_setting_without_default_is_refused(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text().replace("vmSize: STANDARD_D2S_V5", "vmSize: ${POOL_VM_SIZE}"))
    with pytest.raises(gen.PoolSpecError, match=r"\$\{POOL_VM_SIZE\} has no default"):
        gen.generate(path)


def test_missing_app_formula_is_an_error_not_an_invented_formula(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "shared.autoscale_formula", None)  # import now raises ImportError
    with pytest.raises(gen.PoolSpecError, match="shared/autoscale_formula.py"):
        gen.generate(write(tmp_path))
    result = subprocess.run([sys.executable, str(GENERATOR), "--pipelines", str(tmp_path / "nope.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_generated_pools_match_the_pools_the_app_would_create():
    """Azure's pools (Bicep) and the pools the app creates when one is missing (shared/pool_spec.py) agree."""
    from shared.pipelines import load_config
    from shared.pool_spec import build_pool

    tokens = {name: gen.token(name) for name in gen.DEPLOY_TIME_SETTINGS}
    config = load_config(ROOT / "pipelines.yaml", {**tokens, "POOL_SCALE_MODE": "autoscale"})
    generated = {p["id"]: p for p in gen.generate()["pools"]}
    assert set(generated) == set(config.pools)
    for pool_id, pool in config.pools.items():
        app, ours = build_pool(pool), generated[pool_id]
        vm = app["virtualMachineConfiguration"]
        assert ours["vmSize"] == app["vmSize"]
        assert ours["imageReference"] == {**vm["imageReference"], "version": vm["imageReference"].get("version", "latest")}
        assert ours["nodeAgentSkuId"] == vm["nodeAgentSKUId"]
        assert ours["taskSlotsPerNode"] == app["taskSlotsPerNode"]
        assert ours["taskSchedulingPolicy"]["nodeFillType"].lower() == app["taskSchedulingPolicy"]["nodeFillType"].lower()
        container = vm["containerConfiguration"]
        assert ours["containerImageNames"] == container["containerImageNames"]
        assert ours["registryServers"] == [r["registryServer"] for r in container.get("containerRegistries", [])]
        assert all(r.get("identityReference") == {"resourceId": gen.token("POOL_IDENTITY_RESOURCE_ID")}
                   for r in container.get("containerRegistries", []))
        if "startTask" in app:
            assert ours["startTask"]["commandLine"] == app["startTask"]["commandLine"]
            assert ours["startTask"]["waitForSuccess"] == app["startTask"]["waitForSuccess"]
            auto = app["startTask"]["userIdentity"]["autoUser"]
            assert {k: v.lower() for k, v in ours["startTask"]["userIdentity"]["autoUser"].items()} == \
                {k: v.lower() for k, v in auto.items()}
        assert app["enableAutoScale"] is (ours["scale"]["mode"] == "autoscale")
        if app["enableAutoScale"]:
            assert ours["scale"]["formula"] == app["autoScaleFormula"]
            assert ours["scale"]["evaluationInterval"] == app["autoScaleEvaluationInterval"]


def test_check_warns_within_a_year_of_the_node_agents_end_of_support(tmp_path):
    """batch.node.ubuntu 22.04 ends 2027-06-30 in Batch: --check warns from a year before, and still passes."""
    pipelines = write(tmp_path)  # ubuntu-hpc 2204 / batch.node.ubuntu 22.04
    output = tmp_path / "pools.json"
    assert gen.main(["--pipelines", str(pipelines), "--output", str(output)]) == 0
    run = [sys.executable, str(GENERATOR), "--check", "--pipelines", str(pipelines), "--output", str(output)]
    near = subprocess.run([*run, "--today", "2026-12-01"], capture_output=True, text=True, timeout=60)
    assert near.returncode == 0
    assert "warning: pool p1: node agent 'batch.node.ubuntu 22.04' reaches its end of support" in near.stderr
    assert "on 2027-06-30 (211 days)" in near.stderr
    far = subprocess.run([*run, "--today", "2026-06-01"], capture_output=True, text=True, timeout=60)
    assert far.returncode == 0 and "warning" not in far.stderr


def test_the_committed_pools_use_the_longer_lived_node_agent():
    """pipelines.yaml's pools run on ubuntu-hpc 2404 (no end of support announced), not 2204 (ends 2027-06-30)."""
    doc = gen.generate()
    assert gen.support_warnings(doc, gen.date(2027, 6, 1)) == []
    for pool in doc["pools"]:
        assert pool["nodeAgentSkuId"] == "batch.node.ubuntu 24.04", pool["id"]
        assert pool["imageReference"]["sku"] == "2404"


@pytest.mark.parametrize(("image", "agent", "message"), [
    ('{publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: "2404"}', "batch.node.ubuntu 22.04",
     "must be 'batch.node.ubuntu 24.04' for image microsoft-dsvm ubuntu-hpc 2404"),
    ('{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}', "batch.node.ubuntu 24.04",
     "is not a container (DockerCompatible) image"),
])
def test_generator_refuses_images_without_container_support_or_with_the_wrong_agent(tmp_path, image, agent,
                                                                                    message):
    pipelines = write(tmp_path, agent=agent)
    pipelines.write_text(pipelines.read_text().replace(
        '{publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: "2204", version: latest}', image))
    with pytest.raises(gen.PoolSpecError, match=re.escape(message)):
        gen.generate(pipelines)


def test_generator_refuses_a_node_agent_past_its_end_of_support(tmp_path, monkeypatch):
    pipelines = write(tmp_path)
    monkeypatch.setitem(gen.NODE_AGENT_END_OF_SUPPORT, "batch.node.ubuntu 22.04", gen.date(2020, 1, 1))
    with pytest.raises(gen.PoolSpecError, match="Batch support ended on 2020-01-01"):
        gen.generate(pipelines)


PIPELINES = """
pipelines:
  - name: a
    inputs:
      blob: {container: "${INPUT_CONTAINER:-input}", prefix: a/}
    outputs: {container: "${OUTPUT_CONTAINER:-output}"}
  - name: b
    inputs:
      blob: {container: archive, prefix: b/}
      queue: true
    outputs: {container: "${RESULTS_CONTAINER:-results}"}
"""


def test_pool_storage_access_names_exactly_the_containers_pipelines_read_and_write():
    doc = yaml.safe_load(PIPELINES)
    access = gen.storage_access(doc)
    # Container settings main.bicep names stay tokens; other placeholders take their default; literals stay.
    assert access == {"read": ["archive", "{{INPUT_CONTAINER}}", "{{UPLOADS_CONTAINER}}"],
                      "write": ["results", "{{MARKER_CONTAINER}}", "{{OUTPUT_CONTAINER}}"]}
    # No queue pipeline: the staging container is not readable.
    del doc["pipelines"][1]["inputs"]["queue"]
    assert "{{UPLOADS_CONTAINER}}" not in gen.storage_access(doc)["read"]


@pytest.mark.parametrize("container, message", [
    ("${SOMEWHERE}", "has no default"), ("Bad_Name", "not a container name"), (None, "must name a container")])
def test_pipeline_containers_that_cannot_be_deployed_are_refused(container, message):
    doc = yaml.safe_load(PIPELINES)
    doc["pipelines"][0]["outputs"]["container"] = container
    with pytest.raises(gen.PoolSpecError, match=message) as info:
        gen.storage_access(doc)
    assert "pipelines[0] (a).outputs.container" in str(info.value)


def test_the_sample_gpu_pool_is_deployed_and_enabled_by_the_same_switch():
    """pipelines.yaml's GPU pool is marked gpu (so Bicep deploys it only with deployGpuPools) and its `enabled`
    names the app setting main.bicep sets from that same parameter: the app never takes work for a pool that was not
    deployed, nor refuses work for one that was."""
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    gpu_pools = [p for p in doc["pools"] if gen.is_gpu_size(p["vmSize"])]
    assert gpu_pools, "the sample GPU pool is missing from pipelines.yaml"
    generated = {p["id"]: p for p in gen.generate(ROOT / "pipelines.yaml")["pools"]}
    main = (ROOT / "infra" / "main.bicep").read_text()
    for pool in gpu_pools:
        assert generated[pool["id"]]["gpu"] is True
        setting = re.fullmatch(r"\$\{([A-Z_]+):-false\}", str(pool.get("enabled")))
        assert setting, f"GPU pool {pool['id']} must say enabled: ${{SETTING:-false}}"
        assert re.search(rf"^\s*{setting.group(1)}: deployGpuPools \? 'true' : 'false'$", main, re.M), \
            f"main.bicep does not set app setting {setting.group(1)} from deployGpuPools"


def _with_pools(tmp_path: Path, *extra: dict) -> Path:
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    base = dict(doc["pools"][0])
    doc["pools"] = [base] + [{**base, **e} for e in extra]
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("enabled", [False, "false", "${CPU_EXTRA_ENABLED:-false}"])
def test_a_disabled_pool_is_not_generated(tmp_path, enabled):
    path = _with_pools(tmp_path, {"id": "off", "enabled": enabled}, {"id": "on", "enabled": "${X_ON:-true}"})
    ids = [p["id"] for p in gen.generate(path)["pools"]]
    assert "off" not in ids
    assert "on" in ids


def test_a_gpu_pool_switched_by_deploy_gpu_pools_is_generated_for_bicep_to_decide(tmp_path):
    path = _with_pools(tmp_path, {"id": "g", "vmSize": "Standard_NC4as_T4_v3",
                                  "enabled": "${DEPLOY_GPU_POOLS:-false}"})
    assert {p["id"]: p["gpu"] for p in gen.generate(path)["pools"]}["g"] is True


def test_a_non_boolean_enabled_is_refused_naming_the_pool(tmp_path):
    path = _with_pools(tmp_path, {"id": "bad", "enabled": "${X:-sometimes}"})
    with pytest.raises(gen.PoolSpecError, match=r"pools\[1\]\.enabled: 'sometimes' is not true or false"):
        gen.generate(path)
