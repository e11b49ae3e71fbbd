"""Resource-file downloads and output-file uploads against real Azurite (and a plain HTTP server)."""

from __future__ import annotations

import functools
import http.server
import os
import stat
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from devstack.batch_emulator.staging import (
    CredentialResolver,
    StagingError,
    download_resource_files,
    upload_output_files,
)

pytestmark = pytest.mark.integration

IDENTITY = {"resourceId": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
                          "userAssignedIdentities/pool-identity"}


@pytest.fixture(scope="module")
def service(storage) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(storage.connection_string)


@pytest.fixture(scope="module")
def resolver(storage) -> CredentialResolver:
    return CredentialResolver.from_env({"BATCH_EMULATOR_STORAGE_CONNECTION_STRING": storage.connection_string})


def _expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture(scope="module")
def inputs(service, storage):
    """A container with inputs/a.txt, inputs/sub/b.txt and other.txt; yields (container name, read SAS URL)."""
    name = f"rs-in-{uuid.uuid4().hex[:8]}"
    container = service.create_container(name)
    for blob, data in {"inputs/a.txt": b"alpha", "inputs/sub/b.txt": b"beta", "other.txt": b"other"}.items():
        container.upload_blob(blob, data)
    sas = generate_container_sas(storage.account, name, account_key=storage.key, expiry=_expiry(),
                                 permission=ContainerSasPermissions(read=True, list=True))
    yield name, f"{storage.blob_endpoint}/{name}?{sas}"
    container.delete_container()


@pytest.fixture()
def outputs(service, storage):
    """An empty container; yields (container client, write SAS URL)."""
    name = f"rs-out-{uuid.uuid4().hex[:8]}"
    container = service.create_container(name)
    sas = generate_container_sas(storage.account, name, account_key=storage.key, expiry=_expiry(),
                                 permission=ContainerSasPermissions(write=True, create=True))
    yield container, f"{storage.blob_endpoint}/{name}?{sas}"
    container.delete_container()


def blob_sas_url(storage, container: str, blob: str) -> str:
    sas = generate_blob_sas(storage.account, container, blob, account_key=storage.key, expiry=_expiry(),
                            permission=BlobSasPermissions(read=True))
    return f"{storage.blob_endpoint}/{container}/{blob}?{sas}"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- resource files -----------------------------------------------------------------------------------------


def test_http_url_with_sas_lands_at_file_path_with_file_mode(inputs, storage, resolver, tmp_path):
    name, _ = inputs
    download_resource_files([
        {"httpUrl": blob_sas_url(storage, name, "inputs/a.txt"), "filePath": "in/a.txt", "fileMode": "0640"},
        {"httpUrl": blob_sas_url(storage, name, "other.txt"), "filePath": "other.txt"},
    ], tmp_path, resolver)
    assert (tmp_path / "in" / "a.txt").read_bytes() == b"alpha"
    assert mode_of(tmp_path / "in" / "a.txt") == 0o640
    assert mode_of(tmp_path / "other.txt") == 0o770  # Batch's default
    assert [p.name for p in (tmp_path / "in").iterdir()] == ["a.txt"]  # no temp files left behind


def test_container_url_with_prefix_keeps_blob_structure(inputs, resolver, tmp_path):
    _, url = inputs
    download_resource_files([{"storageContainerUrl": url, "blobPrefix": "inputs/", "filePath": "data"}],
                            tmp_path, resolver)
    got = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert got == ["data/inputs/a.txt", "data/inputs/sub/b.txt"]
    assert (tmp_path / "data/inputs/sub/b.txt").read_bytes() == b"beta"


def test_container_url_with_identity_reference_uses_the_configured_credential(inputs, storage, resolver, tmp_path):
    name, _ = inputs
    plain_url = f"{storage.blob_endpoint}/{name}"
    download_resource_files([{"storageContainerUrl": plain_url, "identityReference": IDENTITY}], tmp_path, resolver)
    assert (tmp_path / "other.txt").read_bytes() == b"other"
    with pytest.raises(StagingError) as err:
        download_resource_files([{"storageContainerUrl": plain_url, "identityReference": IDENTITY}],
                                tmp_path / "x", CredentialResolver.from_env({}))
    assert err.value.failure_info["code"] == "ResourceContainerAccessDenied"
    assert "BATCH_EMULATOR_STORAGE_CONNECTION_STRING" in err.value.failure_info["message"]


def test_http_url_with_identity_reference(inputs, storage, resolver, tmp_path):
    name, _ = inputs
    download_resource_files([{"httpUrl": f"{storage.blob_endpoint}/{name}/inputs/a.txt", "filePath": "a.txt",
                              "identityReference": IDENTITY}], tmp_path, resolver)
    assert (tmp_path / "a.txt").read_bytes() == b"alpha"


def test_missing_blob_fails_with_batch_failure_info_and_no_sas(inputs, storage, resolver, tmp_path):
    name, _ = inputs
    url = blob_sas_url(storage, name, "inputs/missing.txt")
    with pytest.raises(StagingError) as err:
        download_resource_files([{"httpUrl": url, "filePath": "m.txt"}], tmp_path, resolver)
    info = err.value.failure_info
    assert (info["category"], info["code"]) == ("usererror", "BlobNotFound")
    assert {"name": "FilePath", "value": "m.txt"} in info["details"]
    assert "sig=" not in str(info)
    assert not (tmp_path / "m.txt").exists()


def test_wrong_signature_is_access_denied(inputs, storage, resolver, tmp_path):
    name, _ = inputs
    url = blob_sas_url(storage, name, "inputs/a.txt").replace("sig=", "sig=AAAA")
    with pytest.raises(StagingError) as err:
        download_resource_files([{"httpUrl": url, "filePath": "a.txt"}], tmp_path, resolver)
    assert err.value.failure_info["code"] == "BlobAccessDenied"
    bad_container = inputs[1].replace("sig=", "sig=AAAA")
    with pytest.raises(StagingError) as err:
        download_resource_files([{"storageContainerUrl": bad_container}], tmp_path, resolver)
    assert err.value.failure_info["code"] == "ResourceContainerAccessDenied"


def test_unsupported_and_escaping_specs_fail_clearly(resolver, tmp_path):
    with pytest.raises(StagingError) as err:
        download_resource_files([{"autoStorageContainerName": "inputs"}], tmp_path, resolver)
    assert "autoStorageContainerName is not supported" in err.value.failure_info["message"]
    with pytest.raises(StagingError) as err:
        download_resource_files([{"httpUrl": "http://127.0.0.1:1/x", "filePath": "../escape.txt"}], tmp_path, resolver)
    info = err.value.failure_info
    assert (info["category"], info["code"]) == ("usererror", "ResourceDirectoryCreateFailed")
    assert "cannot break out" in info["message"]
    assert not (tmp_path.parent / "escape.txt").exists()


@pytest.fixture()
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("plain http")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_plain_http_url(http_server, resolver, tmp_path):
    wd = tmp_path / "wd"
    download_resource_files([{"httpUrl": f"{http_server}/hello.txt", "filePath": "dir/hello.txt"}], wd, resolver)
    assert (wd / "dir" / "hello.txt").read_text() == "plain http"
    with pytest.raises(StagingError) as err:
        download_resource_files([{"httpUrl": f"{http_server}/nope.txt", "filePath": "n.txt"}], wd, resolver)
    assert err.value.failure_info["code"] == "BlobNotFound"


# -- output files -------------------------------------------------------------------------------------------


@pytest.fixture()
def finished_task(tmp_path):
    task_dir = tmp_path / "task"
    wd = task_dir / "wd"
    (wd / "results" / "deep").mkdir(parents=True)
    (task_dir / "stdout.txt").write_text("out")
    (task_dir / "stderr.txt").write_text("err")
    (wd / "results" / "r1.json").write_text("{}")
    (wd / "results" / "deep" / "r2.json").write_text("[]")
    (wd / "results" / ".partial.json").write_text("x")
    (wd / "summary.csv").write_text("a,b")
    return task_dir, wd


def spec(pattern: str, url: str, path: str | None = None, condition: str = "taskcompletion", **container) -> dict:
    dest = {"containerUrl": url, **container}
    if path is not None:
        dest["path"] = path
    return {"filePattern": pattern, "destination": {"container": dest},
            "uploadOptions": {"uploadCondition": condition}}


def names(container) -> list[str]:
    return sorted(b.name for b in container.list_blobs())


def test_patterns_single_files_headers_and_conditions(finished_task, outputs, resolver):
    task_dir, wd = finished_task
    container, url = outputs
    result = upload_output_files([
        spec("results/**/*.json", url, "task-1/results"),
        spec("../std*.txt", url, "task-1"),
        spec("summary.csv", url, "task-1/final/summary.csv",
             uploadHeaders=[{"name": "x-ms-blob-content-type", "value": "text/csv"},
                            {"name": "x-ms-meta-pipeline", "value": "wordcount"}]),
        spec("summary.csv", url, "only-on-failure.csv", condition="taskfailure"),
        spec("nothing-*.bin", url, "none"),
    ], task_dir, wd, True, resolver)
    assert result is None
    assert names(container) == [
        "task-1/final/summary.csv", "task-1/results/deep/r2.json", "task-1/results/r1.json",
        "task-1/stderr.txt", "task-1/stdout.txt",
    ]
    props = container.get_blob_client("task-1/final/summary.csv").get_blob_properties()
    assert props.content_settings.content_type == "text/csv"
    assert props.metadata == {"pipeline": "wordcount"}
    assert container.download_blob("task-1/stdout.txt").readall() == b"out"
    assert "summary.csv" in (task_dir / "fileuploadout.txt").read_text()
    assert "sig=" not in (task_dir / "fileuploadout.txt").read_text()


def test_failure_condition_uploads_only_when_the_task_failed(finished_task, outputs, resolver):
    task_dir, wd = finished_task
    container, url = outputs
    assert upload_output_files([spec("../stderr.txt", url, condition="TaskFailure"),
                                spec("../stdout.txt", url, condition="TaskSuccess")],
                               task_dir, wd, False, resolver) is None
    assert names(container) == ["stderr.txt"]


def test_identity_reference_upload(finished_task, service, storage, resolver):
    task_dir, wd = finished_task
    name = f"rs-id-{uuid.uuid4().hex[:8]}"
    container = service.create_container(name)
    try:
        result = upload_output_files([spec("summary.csv", f"{storage.blob_endpoint}/{name}", "s.csv",
                                           identityReference=IDENTITY)], task_dir, wd, True, resolver)
        assert result is None
        assert names(container) == ["s.csv"]
    finally:
        container.delete_container()


def test_missing_container_and_denied_access_give_batch_codes(finished_task, outputs, storage, resolver):
    task_dir, wd = finished_task
    container, url = outputs
    missing = f"rs-missing-{uuid.uuid4().hex[:8]}"
    sas = generate_container_sas(storage.account, missing, account_key=storage.key, expiry=_expiry(),
                                 permission=ContainerSasPermissions(write=True, create=True))
    info = upload_output_files([spec("summary.csv", f"{storage.blob_endpoint}/{missing}?{sas}")],
                               task_dir, wd, True, resolver)
    assert (info["category"], info["code"]) == ("usererror", "FileUploadContainerNotFound")
    assert "sig=" not in str(info)

    read_only = generate_container_sas(storage.account, container.container_name, account_key=storage.key,
                                       expiry=_expiry(), permission=ContainerSasPermissions(read=True))
    ro_url = f"{storage.blob_endpoint}/{container.container_name}?{read_only}"
    info = upload_output_files([spec("summary.csv", ro_url), spec("../stdout.txt", url)], task_dir, wd, True, resolver)
    assert info["code"] == "FileUploadAccessDenied"
    assert names(container) == ["stdout.txt"]  # the other upload was still attempted
    assert "FileUploadAccessDenied" in (task_dir / "fileuploaderr.txt").read_text()


def test_symlink_out_of_the_task_is_not_uploaded(finished_task, outputs, resolver, tmp_path):
    task_dir, wd = finished_task
    container, url = outputs
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host file")
    os.symlink(secret, wd / "results" / "leak.json")
    assert upload_output_files([spec("results/*.json", url)], task_dir, wd, True, resolver) is None
    assert names(container) == ["r1.json"]
