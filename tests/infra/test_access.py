"""Storage access that matches what the pipelines do: derived from pipelines.yaml, compared with the templates.

The pool identity must read every container a pipeline takes inputs from (blob-triggered input containers, and the
staging container where `eventbatch submit` puts a queue request's files), and write the output and marker
containers; the deploying user writes where inputs go in and reads the outputs. A pipeline whose inputs live in a
container the pool cannot read fails on Azure with BlobAccessDenied only when its first task starts.
"""

from __future__ import annotations

import inspect
import re

import yaml
from bicep_model import ROOT, module_params, of_type, parsed, render, resources

BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
BATCH_JOB_SUBMITTER = "48e5e92e-a480-4e71-aa9c-2778f4c13781"
ROLE_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)$")
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
        if r.type.endswith("/containers"):
            out[main_default(passed[r.body["name"]])] = r.symbol
    return out


def app_setting_values() -> dict[str, str]:
    """Container settings as deployed: the app settings main.bicep sets, resolved to main.bicep's defaults."""
    settings = parsed("main.bicep")["modules"]["functionApp"]["config"]["params"]["appSettings"]
    return {k: main_default(v) for k, v in settings.items() if isinstance(v, str) and v.endswith("ContainerName")}


def resolve(text: str, settings: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: settings.get(m.group(1), m.group(2) or ""), text)


def staging_container() -> str:
    from devstack.app_submit import send_request

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


def actual_container_roles() -> set[tuple[str, str, str]]:
    containers = {r.symbol for r in resources("modules/storage.bicep") if r.type.endswith("/containers")}
    out = set()
    for r in resources("modules/storage.bicep"):
        if r.type == "Microsoft.Authorization/roleAssignments" and render(r.body["scope"]) in containers:
            role = ROLE_ID.search(render(r.body["properties"]["roleDefinitionId"])).group(1)
            out.add((render(r.body["properties"]["principalId"]), role, render(r.body["scope"])))
    return out


def test_container_roles_are_exactly_what_the_pipelines_need():
    expected, actual = expected_container_roles(), actual_container_roles()
    assert actual == expected, f"missing: {sorted(expected - actual)}; not needed: {sorted(actual - expected)}"


def test_queue_pipelines_can_read_the_staging_container_of_eventbatch_submit():
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    assert any((p.get("inputs") or {}).get("queue") for p in doc["pipelines"]), "no queue pipeline to check"
    staging = container_symbols()[staging_container()]
    assert ("poolPrincipalId", BLOB_DATA_READER, staging) in actual_container_roles()
    assert ("deployerPrincipalId", BLOB_DATA_CONTRIBUTOR, staging) in actual_container_roles()


def test_pool_writes_task_markers_to_the_marker_container_only():
    marker = container_symbols()[app_setting_values()["MARKER_CONTAINER"]]
    writes = {scope for principal, role, scope in actual_container_roles()
              if principal == "poolPrincipalId" and role == BLOB_DATA_CONTRIBUTOR}
    assert marker in writes
    # Nothing at account scope for the pool: its storage roles are all container-scoped.
    account_scoped = [r for r in of_type("Microsoft.Authorization/roleAssignments")
                      if render(r.body["properties"]["principalId"]) == "poolPrincipalId"
                      and render(r.body["scope"]) == "storage"]
    assert not account_scoped


def test_the_app_holds_the_narrowest_batch_role_that_submits_jobs():
    # Azure Batch Job Submitter: data actions jobs/* and jobSchedules/*, actions pools/read. Azure Batch Data
    # Contributor would also let the app create, resize and delete pools, which the deployment owns.
    batch_roles = [r for r in of_type("Microsoft.Authorization/roleAssignments") if r.file == "modules/batch.bicep"]
    assert [ROLE_ID.search(render(r.body["properties"]["roleDefinitionId"])).group(1) for r in batch_roles] \
        == [BATCH_JOB_SUBMITTER]
    assert render(batch_roles[0].body["scope"]) == "batch"
    settings = parsed("main.bicep")["modules"]["functionApp"]["config"]["params"]["appSettings"]
    assert settings["CREATE_MISSING_POOLS"] == "false", "Job Submitter cannot create pools"
