"""host.json, local.settings.json and connection resolution: defaults, precedence, and errors that say the fix."""

import json
import os

import pytest

from devstack.func_host.app_settings import apply_settings, read_settings_file, resolve_percent_settings
from devstack.func_host.connections import AZURITE_CONNECTION_STRING, resolve_connection
from devstack.func_host.errors import UnsupportedFeatureError
from devstack.func_host.host_config import parse_host_json
from shared.dotnet_timespan import parse_timespan
from shared.errors import ConfigError


def test_host_json_defaults_follow_the_docs():
    config = parse_host_json({"version": "2.0"})
    cores = os.cpu_count() or 1
    assert config.queues.batch_size == 16
    assert config.queues.new_batch_threshold == 8 * cores
    assert config.queues.max_polling_interval == 60
    assert config.queues.visibility_timeout == 0
    assert config.queues.max_dequeue_count == 5
    assert config.queues.message_encoding == "base64"
    assert config.blobs.poison_blob_threshold == 5
    assert config.blobs.max_degree_of_parallelism == 8 * cores
    assert config.function_timeout == 30 * 60


def test_host_json_values_are_read():
    config = parse_host_json({"version": "2.0", "functionTimeout": "-1", "extensions": {
        "queues": {"batchSize": 32, "newBatchThreshold": 0, "maxPollingInterval": "00:00:02",
                   "visibilityTimeout": "00:00:30", "maxDequeueCount": 2, "messageEncoding": "None"},
        "blobs": {"poisonBlobThreshold": 1, "maxDegreeOfParallelism": 3}}})
    assert (config.queues.batch_size, config.queues.new_batch_threshold) == (32, 0)
    assert config.queues.max_polling_interval == 2 and config.queues.visibility_timeout == 30
    assert config.queues.message_encoding == "none"
    assert config.function_timeout is None
    assert (config.blobs.poison_blob_threshold, config.blobs.max_degree_of_parallelism) == (1, 3)


@pytest.mark.parametrize("doc, fragment", [
    ({"extensions": {"queues": {"batchSize": 33}}}, "extensions.queues.batchSize: 33 is out of range"),
    ({"extensions": {"queues": {"batchSize": "16"}}}, "expected an integer"),
    ({"extensions": {"queues": {"maxPollingInterval": 2000}}}, "maxPollingInterval: expected a TimeSpan"),
    ({"extensions": {"queues": {"maxPollingInterval": "00:00:00.050"}}}, "at least \"00:00:00.100\""),
    ({"extensions": {"queues": {"messageEncoding": "utf8"}}}, "use \"base64\" or \"none\""),
    ({"functionTimeout": "5 minutes"}, "functionTimeout: '5 minutes' is not a TimeSpan"),
    ({"version": "1.0"}, "set \"version\": \"2.0\""),
])
def test_invalid_host_json_names_the_setting(doc, fragment):
    with pytest.raises(ConfigError) as err:
        parse_host_json(doc)
    assert fragment in str(err.value)


def test_timespans():
    assert parse_timespan("00:00:00.250", "x") == 0.25
    assert parse_timespan("1.02:03:04", "x") == 86400 + 2 * 3600 + 3 * 60 + 4
    with pytest.raises(ConfigError):
        parse_timespan("00:61:00", "x")


def test_environment_wins_over_local_settings(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python", "A": "from-file", "B": "from-file", "FLAG": True, "N": 3}}))
    env = {"A": "from-env"}
    skipped = apply_settings(read_settings_file(path), env)
    assert skipped == ["A"]
    assert env == {"A": "from-env", "B": "from-file", "FUNCTIONS_WORKER_RUNTIME": "python", "FLAG": "true",
                   "N": "3"}


def test_other_worker_runtime_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="runs Python apps only"):
        apply_settings({"FUNCTIONS_WORKER_RUNTIME": "node"}, {})


def test_encrypted_settings_are_rejected(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(ConfigError, match="IsEncrypted=true is not supported"):
        read_settings_file(path)


def test_percent_settings_resolve_and_unknown_ones_fail():
    env = {"IN": "input", "SUB": "x"}
    assert resolve_percent_settings("%IN%/%SUB%/{name}", env) == "input/x/{name}"
    with pytest.raises(ConfigError, match="'MISSING' referenced as %MISSING% is not defined"):
        resolve_percent_settings("%MISSING%/{name}", env, where="function 'f' path")


def test_connection_prefers_azure_webjobs_prefix_then_plain_name():
    env = {"AzureWebJobsData": "DefaultEndpointsProtocol=http;AccountName=a1", "Data": "ignored",
           "Other": "UseDevelopmentStorage=true", "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=h"}
    assert resolve_connection("Data", "f", env).setting_name == "AzureWebJobsData"
    other = resolve_connection("Other", "f", env)
    assert (other.setting_name, other.connection_string) == ("Other", AZURITE_CONNECTION_STRING)
    assert resolve_connection("", "f", env).setting_name == "AzureWebJobsStorage"
    assert resolve_connection(None, "f", env).setting_name == "AzureWebJobsStorage"


def test_identity_based_connection_is_reported_unsupported_with_the_fix():
    env = {"Data__blobServiceUri": "https://acct.blob.core.windows.net", "Data__queueServiceUri": "https://q"}
    with pytest.raises(UnsupportedFeatureError) as err:
        resolve_connection("Data", "function 'intake'", env)
    assert "function 'intake'" in str(err.value) and "Data__blobServiceUri" in str(err.value)
    assert "UseDevelopmentStorage=true" in str(err.value)


def test_missing_connection_names_both_settings():
    with pytest.raises(ConfigError) as err:
        resolve_connection("Data", "function 'intake'", {})
    assert "AzureWebJobsData or Data" in str(err.value)


def test_log_levels_from_host_json():
    import logging

    config = parse_host_json({"logging": {"logLevel": {"default": "Warning", "Function.noisy": "None",
                                                       "Host.Results": "Error"}}})
    assert config.log_levels == {"default": logging.WARNING, "Function.noisy": logging.CRITICAL + 10,
                                 "Host.Results": logging.ERROR}
    with pytest.raises(ConfigError, match="logLevel.Function: 'Loud' is not a level"):
        parse_host_json({"logging": {"logLevel": {"Function": "Loud"}}})
