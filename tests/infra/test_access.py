"""Storage access that matches what the pipelines do: derived from pipelines.yaml, compared with the templates.

The pool identity must read every container a pipeline takes inputs from (blob-triggered input containers, and the
staging container where `eventbatch submit` puts a queue request's files), and write the output and marker
containers, and nothing else; the deploying user writes where inputs go in and reads the outputs. A pipeline whose
inputs live in a container the pool cannot read fails on Azure with BlobAccessDenied only when its first task
starts; a container the pool can reach but no pipeline uses is access a compromised task should not have.

The pool's roles are for-loops over poolStorageAccess (generated from pipelines.yaml into pools.generated.json):
this file expands them the way ARM will, from main.bicep's defaults, and derives the expectation independently
from pipelines.yaml and the app settings main.bicep sets.
"""

from __future__ import annotations

import re

import yaml

from tests.infra.bicep_model import (
    BLOB_DATA_CONTRIBUTOR,
    BLOB_DATA_READER,
    ROOT,
    Resource,
    app_setting_values,
    container_symbols,
    expected_container_roles,
    of_type,
    parsed,
    render,
    resources,
    scopes,
    staging_container,
)

BATCH_JOB_SUBMITTER = "48e5e92e-a480-4e71-aa9c-2778f4c13781"
ROLE_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)$")


def actual_container_roles() -> set[tuple[str, str, str]]:
    containers = {r.symbol for r in resources("modules/storage.bicep")
                  if r.type.endswith("/containers") and not r.existing}
    out = set()
    for r in resources("modules/storage.bicep"):
        if r.type != "Microsoft.Authorization/roleAssignments":
            continue
        role = ROLE_ID.search(render(r.body["properties"]["roleDefinitionId"])).group(1)
        for scope in scopes(r):
            if scope in containers:
                out.add((render(r.body["properties"]["principalId"]), role, scope))
    return out


def pool_assignments() -> list[Resource]:
    return [r for r in resources("modules/storage.bicep") if r.type == "Microsoft.Authorization/roleAssignments"
            and render(r.body["properties"]["principalId"]) == "poolPrincipalId"]


def test_container_roles_are_exactly_what_the_pipelines_need():
    expected, actual = expected_container_roles(), actual_container_roles()
    assert actual == expected, f"missing: {sorted(expected - actual)}; not needed: {sorted(actual - expected)}"


def test_the_pool_reads_only_input_containers_and_writes_only_outputs_and_markers():
    settings = app_setting_values()
    symbols = container_symbols()
    roles = {(role, scope) for principal, role, scope in actual_container_roles() if principal == "poolPrincipalId"}
    readers = {scope for role, scope in roles if role == BLOB_DATA_READER}
    writers = {scope for role, scope in roles if role == BLOB_DATA_CONTRIBUTOR}
    assert readers == {symbols[settings["INPUT_CONTAINER"]], symbols[staging_container()]}
    assert writers == {symbols[settings["OUTPUT_CONTAINER"]], symbols[settings["MARKER_CONTAINER"]]}
    assert not readers & writers
    # Never the deployment package or the Event Grid dead letters.
    assert {"deploymentContainer", "deadLetterContainer"}.isdisjoint(readers | writers)


NO_DELETE = ("((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'}) AND "
             "!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action'})))")


def test_the_pool_writes_without_deleting_or_renaming_blobs():
    # ABAC: the writer role's delete and move (rename) actions are denied by the assignment's condition; read,
    # write and add (what Batch's uploads and a merge task's reads need) stay.
    writers = [r for r in pool_assignments()
               if BLOB_DATA_CONTRIBUTOR in render(r.body["properties"]["roleDefinitionId"])]
    assert writers
    for r in writers:
        p = r.body["properties"]
        condition = p["condition"]
        if render(condition) in parsed("modules/storage.bicep")["variables"]:
            condition = parsed("modules/storage.bicep")["variables"][render(condition)]["value"]
        condition = condition.replace("\\'", "'")  # the Bicep string's escaped quotes, as ARM receives them
        assert condition == NO_DELETE and p["conditionVersion"] == "2.0", r.symbol
    for r in pool_assignments():
        if r not in writers:
            assert "condition" not in r.body["properties"], r.symbol


def test_pool_role_assignment_names_are_the_ones_earlier_deployments_made():
    # guid(container id, principal, role): a redeploy updates the existing assignments (adding the condition)
    # instead of failing with RoleAssignmentExists on a second assignment of the same role.
    assignments = pool_assignments()
    assert assignments, "storage.bicep gives the pool identity no role"
    for r in assignments:
        role = ROLE_ID.search(render(r.body["properties"]["roleDefinitionId"])).group(1)
        assert render(r.body["name"]) == f"guid({render(r.body['scope'])}.id, poolPrincipalId, {role})", r.symbol


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
