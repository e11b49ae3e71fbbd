"""Where `eventbatch status/submit/logs` and the demo take the app's settings from."""

from __future__ import annotations

import json

import pytest

from devstack.tools.access import AccessError, resolve_environ


def write_settings(path, values: dict) -> None:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))


def test_a_settings_file_is_read_and_the_environment_wins_for_its_keys(tmp_path):
    f = tmp_path / "local.settings.json"
    write_settings(f, {"RUNS_TABLE": "runs", "BATCH_ACCOUNT_URL": "http://127.0.0.1:8095"})
    env = {"BATCH_ACCOUNT_URL": "http://127.0.0.1:9999", "UNRELATED": "x"}
    values = resolve_environ(f, environ=env)
    assert values == {"RUNS_TABLE": "runs", "BATCH_ACCOUNT_URL": "http://127.0.0.1:9999"}


def test_env_mode_uses_only_the_environment(tmp_path):
    env = {"EVENTBATCH_STORAGE__accountName": "prodaccount", "BATCH_ACCOUNT_URL": "https://b.westeurope.batch.azure.com"}
    assert resolve_environ(None, use_env=True, environ=env) == env


def test_missing_local_stack_settings_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTBATCH_STATE_DIR", str(tmp_path / "nothing-here"))
    with pytest.raises(AccessError, match="make up"):
        resolve_environ(None, environ={})


def test_a_file_that_is_not_the_local_settings_layout_is_named(tmp_path):
    f = tmp_path / "settings.json"
    f.write_text(json.dumps({"RUNS_TABLE": "runs"}))
    with pytest.raises(AccessError, match="Values"):
        resolve_environ(f, environ={})
    f.write_text("{not json")
    with pytest.raises(AccessError, match="not JSON"):
        resolve_environ(f, environ={})


def test_azure_identity_settings_give_identity_clients_without_any_key():
    from devstack.tools.access import AppAccess

    env = {"EVENTBATCH_STORAGE__accountName": "prodaccount", "BATCH_ACCOUNT_URL": "https://b.westeurope.batch.azure.com",
           "WORKER_IMAGE": "acr.azurecr.io/worker:1", "REGISTRY_SERVER": "acr.azurecr.io"}
    access = AppAccess.open(use_env=True, environ=env)
    assert access.storage.settings.uses_identity and access.settings.batch.uses_identity
    assert access.storage.blob_endpoint == "https://prodaccount.blob.core.windows.net"
    assert access.storage.account_key is None
    assert "prodaccount" in access.describe() and "batch.azure.com" in access.describe()
