"""Structural tests of infra/*.bicep: the security properties issue 7 promises, read from the parsed templates.

Each test names the property a reviewer would check by eye (shared keys off, AAD-only Batch, container-scoped
pool roles, no key or SAS in app settings...), so a template change that weakens one fails here, offline.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.infra.bicep_model import (
    INFRA,
    ROOT,
    app_settings,
    bicep_files,
    expected_container_roles,
    module_params,
    of_type,
    one,
    parsed,
    props,
    render,
    resources,
    scopes,
    variable,
)

# Built-in role definition ids (the same in every Azure cloud).
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
QUEUE_MESSAGE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
TABLE_DATA_READER = "76199698-9eea-4c19-bc75-cec21354c6b6"
BATCH_JOB_SUBMITTER = "48e5e92e-a480-4e71-aa9c-2778f4c13781"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

# (file, principal, role, scope symbol): every role assignment the templates make, and no other. The container-scoped
# roles of the pool and the deploying user are derived from pipelines.yaml (test_access.py) and added below.
EXPECTED_ROLES = {
    ("modules/storage.bicep", "functionPrincipalId", BLOB_DATA_OWNER, "storage"),
    ("modules/storage.bicep", "functionPrincipalId", QUEUE_DATA_CONTRIBUTOR, "storage"),
    ("modules/storage.bicep", "functionPrincipalId", TABLE_DATA_CONTRIBUTOR, "storage"),
    ("modules/storage.bicep", "deployerPrincipalId", QUEUE_MESSAGE_SENDER, "requestsQueue"),
    ("modules/storage.bicep", "deployerPrincipalId", QUEUE_MESSAGE_SENDER, "controlQueue"),
    ("modules/storage.bicep", "deployerPrincipalId", TABLE_DATA_READER, "runsTable"),
    ("modules/batch.bicep", "functionPrincipalId", BATCH_JOB_SUBMITTER, "batch"),
    ("modules/registry.bicep", "poolPrincipalId", ACR_PULL, "registry"),
    ("modules/registry.bicep", "deployerPrincipalId", ACR_PUSH, "registry"),
    ("modules/monitoring.bicep", "functionPrincipalId", METRICS_PUBLISHER, "appInsights"),
    ("modules/eventgrid.bicep", "systemTopic.identity.principalId", BLOB_DATA_CONTRIBUTOR,
     "storage::blobService::deadLetter"),
} | {("modules/storage.bicep", *role) for role in expected_container_roles()}

ROLE_ID = re.compile(r"^subscription_resource_id\(Microsoft\.Authorization/roleDefinitions, ([0-9a-f-]{36})\)$")


def test_every_template_parses():
    names = bicep_files()
    assert "main.bicep" in names and len(names) >= 8, names
    for name in names:
        assert parsed(name)["resources"] or parsed(name).get("modules"), f"{name}: no resources or modules"


def test_storage_is_identity_only_private_and_tls12():
    p = props(one("Microsoft.Storage/storageAccounts"))
    assert p["allowSharedKeyAccess"] is False
    assert p["allowBlobPublicAccess"] is False
    assert p["minimumTlsVersion"] == "TLS1_2"
    assert p["supportsHttpsTrafficOnly"] is True
    assert p["defaultToOAuthAuthentication"] is True
    assert p["isLocalUserEnabled"] is False and p["isSftpEnabled"] is False
    containers = of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
    assert {c.symbol for c in containers} == {"inputContainer", "outputContainer", "uploadsContainer",
                                              "markerContainer", "deploymentContainer", "deadLetterContainer"}
    assert all(props(c)["publicAccess"] == "None" for c in containers)


def test_storage_has_the_apps_queues_and_runs_table():
    params = module_params("main.bicep", "storage")
    queue_names = variable("main.bicep", "queueNames")
    for name in ("requests", "submit", "rejected", "completions", "failures"):
        assert queue_names[name] == name
        assert f"queueNames.{name}" in params["queueNames"]
    # Delayed re-checks of a task (issue 18): CHECK_QUEUE, default taskcheck.
    assert queue_names["check"] == "taskcheck" and "queueNames.check" in params["queueNames"]
    assert variable("main.bicep", "runsTableName") == "runs"
    assert params["runsTableName"] == "runsTableName"
    queues = [r for r in resources("modules/storage.bicep") if r.symbol == "queues"]
    assert queues and queues[0].loop


def test_batch_account_is_entra_only_batchservice():
    p = props(one("Microsoft.Batch/batchAccounts"))
    assert p["allowedAuthenticationModes"] == ["AAD"]
    assert p["poolAllocationMode"] == "BatchService"
    assert "autoStorage" not in p, "auto-storage would bring storage account keys into Batch"


def test_registry_has_no_admin_user_and_no_anonymous_pull():
    p = props(one("Microsoft.ContainerRegistry/registries"))
    assert p["adminUserEnabled"] is False
    # anonymousPullEnabled exists only in preview API versions (not in 2023-07-01, see test_bicep_types) and is
    # off by default: it must not be turned on.
    assert p.get("anonymousPullEnabled", False) is False


def test_pools_are_container_pools_pulling_with_the_pool_identity():
    pool = one("Microsoft.Batch/batchAccounts/pools")
    assert pool.file == "modules/batch-pool.bicep"
    identity = pool.body["identity"]
    assert identity["type"] == "UserAssigned"
    assert [k.strip("'") for k in identity["userAssignedIdentities"]] == ["${poolIdentityId}"]
    vm = props(pool)["deploymentConfiguration"]["virtualMachineConfiguration"]
    container = vm["containerConfiguration"]
    assert container["type"] == "DockerCompatible"
    images = container["containerImageNames"]
    assert render(images["loop_type"]["detail"]["array_name"]) == "pool.containerImageNames"
    registry = container["containerRegistries"]["config"]
    assert render(registry["identityReference"]) == "{resourceId: poolIdentityId}"
    assert not {"userName", "username", "password"} & set(registry), "registries must not carry credentials"
    # Everything pool-specific comes from the generated file, not from literals in the template.
    assert render(vm["imageReference"]) == "pool.imageReference"
    assert render(vm["nodeAgentSkuId"]) == "pool.nodeAgentSkuId"
    assert render(props(pool)["vmSize"]) == "pool.vmSize"
    assert "autoScale" in render(props(pool)["scaleSettings"])


def test_pools_come_from_the_generated_file_with_the_pool_identity():
    assert render(variable("main.bicep", "pools")) == "load_json_content(pools.generated.json, $.pools)"
    batch = module_params("main.bicep", "batch")
    assert batch["pools"] == "pools"
    assert batch["poolIdentityId"] == "identities.outputs.poolIdentityId"
    assert batch["registryServer"] == "registry.outputs.loginServer"


def test_function_app_is_flex_consumption_python_311_with_its_identity():
    plan = props(one("Microsoft.Web/serverfarms"))
    plan_res = one("Microsoft.Web/serverfarms")
    assert plan_res.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["reserved"] is True
    site = one("Microsoft.Web/sites")
    assert site.body["kind"] == "functionapp,linux"
    assert site.body["identity"]["type"] == "UserAssigned"
    p = props(site)
    assert p["httpsOnly"] is True
    # TLS 1.2 for the site; FTP is off through the basic-publishing policies below (ftpsState is not allowed on
    # Flex Consumption: test_flex_consumption.py).
    assert p["siteConfig"]["minTlsVersion"] == "1.2" and "ftpsState" not in p["siteConfig"]
    config = p["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    policies = {r.body["name"]: props(r)["allow"] for r in of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert policies == {"ftp": False, "scm": False}
    fa = module_params("main.bicep", "functionApp")
    assert fa["identityId"] == "identities.outputs.functionIdentityId"
    assert fa["identityClientId"] == "identities.outputs.functionIdentityClientId"


SECRET_MARKERS = ("listkeys", "list_func", "listaccountsas", "listservicesas", "accountkey", "sharedaccesssignature",
                  "sig=", "primarykey", "password", "secret")


def test_no_connection_string_key_or_sas_in_app_settings():
    settings = app_settings()
    for name, value in settings.items():
        lowered = f"{name}={value}".lower()
        assert not any(m in lowered for m in SECRET_MARKERS), f"{name} looks like a credential: {value}"
        if "connectionstring" in name.lower().replace("_", ""):
            # The only one: telemetry routing; ingestion needs an Entra token because local auth is off.
            assert name == "APPLICATIONINSIGHTS_CONNECTION_STRING", name
    assert props(one("Microsoft.Insights/components"))["DisableLocalAuth"] is True
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD")
    assert "AzureWebJobsStorage" not in settings and "EVENTBATCH_STORAGE" not in settings, \
        "a plain connection setting would be a connection string"
    assert "BATCH_ACCOUNT_KEY" not in settings


def test_storage_connections_are_identity_based():
    settings = app_settings()
    for conn in ("AzureWebJobsStorage", "EVENTBATCH_STORAGE"):
        assert settings[f"{conn}__credential"] == "managedidentity"
        assert settings[f"{conn}__clientId"] == "identityClientId"
        for service in ("blob", "queue", "table"):
            assert settings[f"{conn}__{service}ServiceUri"] == f"{service}ServiceUri"
    assert settings["STORAGE_CONNECTION"] == "EVENTBATCH_STORAGE"


def test_app_gets_the_settings_it_reads():
    settings = app_settings()
    expected = {
        "BATCH_ACCOUNT_URL": "batch.outputs.accountEndpoint",
        "POOL_IDENTITY_RESOURCE_ID": "identities.outputs.poolIdentityId",
        "BATCH_NODE_IDENTITY_RESOURCE_ID": "identities.outputs.poolIdentityId",
        "REGISTRY_SERVER": "registry.outputs.loginServer",
        "WORKER_IMAGE": "${registry.outputs.loginServer}/${workerImageName}",
        "INPUT_CONTAINER": "inputContainerName",
        "OUTPUT_CONTAINER": "outputContainerName",
        "POOL_SCALE_MODE": "autoscale",
        "RUNS_TABLE": "runsTableName",
        "MARKER_CONTAINER": "markerContainerName",
        "CHECK_QUEUE": "queueNames.check",
    }
    for name, value in expected.items():
        assert settings.get(name) == value, f"{name}: {settings.get(name)!r}"
    # Every ${NAME} without a default in pipelines.yaml must be set on Azure, or the app cannot load it.
    text = json.dumps(yaml.safe_load((ROOT / "pipelines.yaml").read_text()))
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert required <= set(settings), f"pipelines.yaml needs {sorted(required - set(settings))}"
    # The timers' schedules are the app's defaults (reconciler every 5 minutes; no drain timer any more).
    assert "DRAIN_SCHEDULE" not in settings and "RECONCILE_SCHEDULE" not in settings


def test_no_template_reads_a_key():
    assert bicep_files(), f"no template under {INFRA}"
    for name in bicep_files():
        text = (INFRA / name).read_text()
        assert "listAccountSas" not in text and "listServiceSas" not in text, name
        assert "listKeys" not in text and "listCredentials" not in text, f"{name} reads a key"


def test_role_assignments_are_exactly_the_least_privilege_set():
    actual = set()
    for r in of_type("Microsoft.Authorization/roleAssignments"):
        p = props(r)
        match = ROLE_ID.match(render(p["roleDefinitionId"]))
        assert match, f"{r.file}:{r.symbol}: role must be a built-in role id, got {render(p['roleDefinitionId'])}"
        actual |= {(r.file, render(p["principalId"]), match.group(1), scope) for scope in scopes(r)}
        if render(p["principalId"]) != "deployerPrincipalId":
            assert p.get("principalType") == "ServicePrincipal", f"{r.file}:{r.symbol}"
        else:
            assert r.condition == "not(empty(deployerPrincipalId))", "deployer roles must be optional"
    assert actual == EXPECTED_ROLES, (f"unexpected: {sorted(actual - EXPECTED_ROLES)}; "
                                      f"missing: {sorted(EXPECTED_ROLES - actual)}")


def test_pool_identity_roles_are_scoped_to_containers():
    by_symbol = {r.symbol: r for r in resources("modules/storage.bicep")}
    assert by_symbol["inputContainer"].type.endswith("/containers")
    assert by_symbol["inputContainer"].body["name"] == "inputContainerName"
    assert by_symbol["outputContainer"].type.endswith("/containers")
    assert by_symbol["outputContainer"].body["name"] == "outputContainerName"
    dead_letter = [r for r in resources("modules/eventgrid.bicep") if r.symbol.endswith("deadLetter")]
    assert dead_letter and dead_letter[0].type.endswith("/containers")


def test_principals_are_wired_to_the_right_identities():
    for module in ("storage", "registry"):
        params = module_params("main.bicep", module)
        assert params["poolPrincipalId"] == "identities.outputs.poolIdentityPrincipalId"
        assert params["deployerPrincipalId"] == "principalId"
    for module in ("storage", "batch", "monitoring"):
        assert module_params("main.bicep", module)["functionPrincipalId"] == \
            "identities.outputs.functionIdentityPrincipalId"


COMPLETE_BLOB_APIS = ["CopyBlob", "PutBlob", "PutBlockList", "FlushWithClose"]


def subscriptions() -> dict[str, dict]:
    return {r.symbol: props(r) for r in of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")}


def test_event_grid_delivers_blob_created_of_the_input_container_to_the_intake_function():
    topic = one("Microsoft.EventGrid/systemTopics")
    assert props(topic)["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert render(props(topic)["source"]) == "storage.id"
    subs = subscriptions()
    assert set(subs) == {"blobCreated", "markerCreated"}
    sub = subs["blobCreated"]
    filt = sub["filter"]
    assert filt["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert filt["subjectBeginsWith"] == "/blobServices/default/containers/${inputContainerName}/blobs/"
    # The function itself is the destination (Event Grid trigger): no webhook URL, so no key in any URL.
    assert sub["destination"]["endpointType"] == "AzureFunction"
    assert render(sub["destination"]["properties"]["resourceId"]) == "${functionApp.id}/functions/${intakeFunctionName}"
    params = parsed("modules/blob-events-subscription.bicep")["parameters"]
    assert params["intakeFunctionName"]["default"] == "blob_intake"


def test_task_markers_reach_the_task_marker_trigger():
    sub = subscriptions()["markerCreated"]
    assert sub["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert sub["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/${markerContainerName}/blobs/"
    assert sub["destination"]["endpointType"] == "AzureFunction"
    assert render(sub["destination"]["properties"]["resourceId"]) == "${functionApp.id}/functions/${markerFunctionName}"
    params = parsed("modules/blob-events-subscription.bicep")["parameters"]
    assert params["markerFunctionName"]["default"] == "task_marker"
    assert params["markerSubscriptionName"]["default"] == "task-markers-created"
    # Same delivery and dead-lettering as the inputs' subscription.
    first = subscriptions()["blobCreated"]
    for key in ("retryPolicy", "deadLetterWithResourceIdentity", "eventDeliverySchema"):
        assert render(sub[key]) == render(first[key]), key
    assert first["deadLetterWithResourceIdentity"]["deadLetterDestination"]["endpointType"] == "StorageBlob"


def test_every_subscription_takes_only_complete_blobs():
    """BlobCreated can fire more than once per upload; only these APIs mean the blob is fully committed."""
    doc = parsed("modules/blob-events-subscription.bicep")
    assert subscriptions(), "no Event Grid subscription found"
    for symbol, sub in subscriptions().items():
        filters = sub["filter"]["advancedFilters"]
        resolved = [doc["variables"][f]["value"] if isinstance(f, str) else f for f in filters]
        api = [f for f in resolved if f["key"] == "data.api"]
        assert api == [{"operatorType": "StringIn", "key": "data.api", "values": COMPLETE_BLOB_APIS}], symbol


def test_azure_yaml_deploys_the_function_app_and_subscribes_after_deploy():
    doc = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert doc["infra"]["path"] == "infra" and doc["infra"].get("module", "main") == "main"
    assert doc["services"]["api"]["host"] == "function" and doc["services"]["api"]["language"] == "python"
    hooks = doc["hooks"]
    assert "postdeploy.sh" in hooks["postdeploy"]["posix"]["run"]
    assert "preprovision.sh" in hooks["preprovision"]["posix"]["run"]
    assert "postprovision.sh" in hooks["postprovision"]["posix"]["run"]
    for name in ("postdeploy.sh", "preprovision.sh", "postprovision.sh"):
        assert (INFRA / "hooks" / name).is_file()
    hook = (INFRA / "hooks" / "postdeploy.sh").read_text()
    assert "blob-events-subscription.bicep" in hook
    # Every environment value the hook needs is a main.bicep output azd writes to the environment.
    outputs = set(parsed("main.bicep")["outputs"])
    for name in ("postdeploy.sh", "postprovision.sh"):
        text = (INFRA / "hooks" / name).read_text()
        needed = set(re.findall(r"^for name in ([^;]+);", text, re.M | re.S)[0].replace("\\", " ").split())
        assert needed <= outputs, (name, sorted(needed - outputs))


@pytest.mark.parametrize("name", ["environmentName", "location", "principalId"])
def test_parameters_file_feeds_azd_environment(name):
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert name in params and params[name]["value"].startswith("${AZURE_")
    declared = set(parsed("main.bicep")["parameters"])
    assert set(params) <= declared, sorted(set(params) - declared)
