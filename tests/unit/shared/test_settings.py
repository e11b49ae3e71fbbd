from datetime import timedelta

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings

BATCH = {"BATCH_ACCOUNT_URL": "http://127.0.0.1:8095", "BATCH_ACCOUNT_NAME": "acct", "BATCH_ACCOUNT_KEY": "a2V5"}


def test_local_settings_use_the_connection_string_and_defaults():
    s = load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", **BATCH})
    assert "devstoreaccount1" in s.storage.connection_string and not s.storage.uses_identity
    assert s.queues.requests == "requests" and s.queues.rejected == "rejected"
    assert s.task_retention == timedelta(0) and s.job_period == "day" and s.runs_table == "runs"
    assert not s.batch.uses_identity


def test_identity_storage_section_builds_service_urls():
    s = load_settings({"EVENTBATCH_STORAGE__accountName": "mystore", "EVENTBATCH_STORAGE__clientId": "cid",
                       "BATCH_ACCOUNT_URL": "https://acct.westeurope.batch.azure.com"})
    assert s.storage.uses_identity and s.storage.client_id == "cid"
    assert s.storage.blob_url == "https://mystore.blob.core.windows.net"
    assert s.storage.table_url == "https://mystore.table.core.windows.net"
    assert s.batch.uses_identity


def test_missing_storage_names_the_setting_and_the_fix():
    with pytest.raises(ConfigError, match="EVENTBATCH_STORAGE is missing.*UseDevelopmentStorage=true"):
        load_settings(BATCH)


def test_host_storage_is_the_fallback():
    s = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **BATCH})
    assert s.storage.setting == "AzureWebJobsStorage"


def test_token_credentials_over_http_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="BATCH_ACCOUNT_KEY is missing.*https"):
        load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true",
                       "BATCH_ACCOUNT_URL": "http://127.0.0.1:8095"})


def test_key_without_account_name_is_refused():
    with pytest.raises(ConfigError, match="BATCH_ACCOUNT_NAME"):
        load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true",
                       "BATCH_ACCOUNT_URL": "http://x", "BATCH_ACCOUNT_KEY": "k"})


@pytest.mark.parametrize("name,value,match", [
    ("TASK_RETENTION", "10 minutes", "TASK_RETENTION.*ISO 8601"),
    ("JOB_PERIOD", "week", "JOB_PERIOD.*day or hour"),
    ("REJECTED_QUEUE", "Rejected_Items", "REJECTED_QUEUE.*not a valid queue name"),
    ("SUBMIT_MAX_ATTEMPTS", "0", "SUBMIT_MAX_ATTEMPTS.*out of range"),
    ("RESUBMIT_AFTER", "PT1S", "RESUBMIT_AFTER.*out of range"),
    ("MARKER_CONTAINER", "Markers_1", "MARKER_CONTAINER.*not a valid container name"),
    ("CREATE_MISSING_POOLS", "maybe", "CREATE_MISSING_POOLS.*true or false"),
    ("PIPELINES_FILE", "/nonexistent/p.yaml", "PIPELINES_FILE.*does not exist"),
    ("SUBMIT_QUEUE", "requests", "different names"),
])
def test_bad_values_name_the_setting(name, value, match):
    with pytest.raises(ConfigError, match=match):
        load_settings({"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", **BATCH, name: value})


def test_identity_service_uris_need_all_three_services():
    with pytest.raises(ConfigError, match="EVENTBATCH_STORAGE__queueServiceUri, EVENTBATCH_STORAGE__tableServiceUri"):
        load_settings({"EVENTBATCH_STORAGE__blobServiceUri": "https://s.blob.core.windows.net", **BATCH})
