"""Staging rules: paths, file modes, spec validation, upload conditions, storage URLs, credentials."""

from __future__ import annotations

import json

import pytest

from devstack.batch_emulator.errors import BatchError, ConfigError
from devstack.batch_emulator.model.validation import check_output_files, check_resource_files
from devstack.batch_emulator.runtimes import RegistryAuth
from devstack.batch_emulator.staging import CredentialResolver, IdentityUnavailable
from devstack.batch_emulator.staging.blob_urls import parse_storage_url
from devstack.batch_emulator.staging.errors import redact_url
from devstack.batch_emulator.staging.output_files import should_upload
from devstack.batch_emulator.staging.paths import parse_file_mode, under

KEY = "a2V5"  # any base64 text; never used against a service here


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "a/..", "/etc/passwd"])
def test_file_path_may_not_escape_the_working_dir(bad, tmp_path):
    with pytest.raises(ValueError):
        under(tmp_path, bad, "filePath")


def test_file_path_segments_are_joined_under_the_working_dir(tmp_path):
    assert under(tmp_path, "in/./data//x.csv", "filePath") == tmp_path / "in" / "data" / "x.csv"
    assert under(tmp_path, "", "filePath") == tmp_path
    assert under(tmp_path, "..a/b..", "filePath") == tmp_path / "..a" / "b.."


def test_file_mode_is_octal():
    assert parse_file_mode("0755") == 0o755
    assert parse_file_mode("644") == 0o644
    assert parse_file_mode(None) is None
    for bad in ("rwx", "0999", "77777"):
        with pytest.raises(ValueError):
            parse_file_mode(bad)


def test_resource_file_validation_names_the_property():
    check_resource_files([{"httpUrl": "http://x/y", "filePath": "y"},
                          {"storageContainerUrl": "http://x/a/c", "blobPrefix": "p/", "fileMode": "0600"}],
                         "resourceFiles")
    cases = [
        ({"filePath": "x"}, "resourceFiles[0].httpUrl"),
        ({"httpUrl": "http://x/y", "storageContainerUrl": "http://x/a/c"}, "resourceFiles[0].httpUrl"),
        ({"httpUrl": "http://x/y"}, "resourceFiles[0].filePath"),
        ({"httpUrl": "http://x/y", "filePath": "../y"}, "resourceFiles[0].filePath"),
        ({"storageContainerUrl": "http://x/a/c", "fileMode": "abc"}, "resourceFiles[0].fileMode"),
        ({"httpUrl": "http://x/y", "filePath": "y", "blobPrefix": "p"}, "resourceFiles[0].blobPrefix"),
    ]
    for spec, prop in cases:
        with pytest.raises(BatchError) as err:
            check_resource_files([spec], "resourceFiles")
        assert err.value.values["PropertyName"] == prop


def test_output_file_validation_names_the_property():
    good = {"filePattern": "*.txt", "destination": {"container": {"containerUrl": "http://x/a/c"}},
            "uploadOptions": {"uploadCondition": "TaskCompletion"}}
    check_output_files([good], "outputFiles")
    bad = json.loads(json.dumps(good))
    bad["uploadOptions"]["uploadCondition"] = "always"
    with pytest.raises(BatchError) as err:
        check_output_files([good, bad], "outputFiles")
    assert err.value.values["PropertyName"] == "outputFiles[1].uploadOptions.uploadCondition"


@pytest.mark.parametrize(("condition", "succeeded", "expected"), [
    ("tasksuccess", True, True), ("tasksuccess", False, False),
    ("taskfailure", True, False), ("TaskFailure", False, True),
    ("taskcompletion", True, True), ("taskcompletion", False, True),
])
def test_upload_condition(condition, succeeded, expected):
    assert should_upload(condition, succeeded) is expected


def test_storage_urls_both_styles():
    loc = parse_storage_url("http://127.0.0.1:10000/devstoreaccount1/inputs/a/b.csv?sv=1&sig=x")
    assert (loc.account, loc.container, loc.blob, loc.has_sas) == ("devstoreaccount1", "inputs", "a/b.csv", True)
    loc = parse_storage_url("https://acct.blob.core.windows.net/out")
    assert (loc.account, loc.container, loc.blob, loc.has_sas) == ("acct", "out", "", False)
    assert parse_storage_url("https://example.com/file.txt") is None
    assert redact_url("https://acct.blob.core.windows.net/out/x?sv=1&sig=secret") == \
        "https://acct.blob.core.windows.net/out/x"


def test_credential_resolver_from_env():
    env = {
        "BATCH_EMULATOR_STORAGE_CONNECTION_STRING":
            f"DefaultEndpointsProtocol=http;AccountName=acct1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/acct1;",
        "BATCH_EMULATOR_REGISTRY_CREDENTIALS": json.dumps({"127.0.0.1:5055": {"username": "u", "password": "p"}}),
    }
    r = CredentialResolver.from_env(env)
    assert r.storage_credential("acct1").named_key == ("acct1", KEY)
    with pytest.raises(IdentityUnavailable):
        r.storage_credential("otheraccount")
    ident = {"resourceId": "/subscriptions/x/.../userAssignedIdentities/id"}
    assert r.registry_auth("http://127.0.0.1:5055/", ident, None, None) == RegistryAuth("http://127.0.0.1:5055/", "u", "p")
    assert r.registry_auth("127.0.0.1:5055", None, "me", "pw") == RegistryAuth("127.0.0.1:5055", "me", "pw")
    assert r.registry_auth("127.0.0.1:5055", None, None, None) is None
    assert r.registry_auth("other:5000", ident, None, None) is None
    assert "p" not in repr(r.registry_auth("127.0.0.1:5055", ident, None, None)).split("username='u'")[1]
    with pytest.raises(IdentityUnavailable):
        CredentialResolver.from_env({}).storage_credential("acct1")


@pytest.mark.parametrize(("setting", "value"), [
    ("BATCH_EMULATOR_REGISTRY_CREDENTIALS", "{not json"),
    ("BATCH_EMULATOR_REGISTRY_CREDENTIALS", '{"reg": {"username": "u"}}'),
    ("BATCH_EMULATOR_STORAGE_CONNECTION_STRING", "AccountName=a"),
])
def test_bad_settings_name_the_setting(setting, value):
    with pytest.raises(ConfigError, match=setting):
        CredentialResolver.from_env({setting: value})
