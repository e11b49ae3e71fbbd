"""Staging and upload stay inside the task folder even when its contents are changed under them (issue 17,
items 10 and 11): a symlinked directory left in the working dir is never written through, an output swapped
for a symlink between the check and the open is not uploaded, and only http(s) URLs are fetched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.batch_emulator.staging import StagingError, download_resource_files, upload_output_files

from .test_staging import http_server, inputs, names, outputs, resolver, service, spec  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("link_at", ["in", "in/deeper"])
def test_a_symlinked_directory_in_the_working_dir_is_not_followed(http_server, resolver, tmp_path, link_at):  # noqa: F811
    """A sibling container (the node root is mounted in every task) can plant `in -> /etc` in a task's working
    dir before that task is staged; staging must fail rather than write the blob into the host folder."""
    host = tmp_path / "host-etc"
    host.mkdir()
    wd = tmp_path / "wd"
    link = wd / link_at
    link.parent.mkdir(parents=True)
    link.symlink_to(host)
    with pytest.raises(StagingError) as err:
        download_resource_files([{"httpUrl": f"{http_server}/hello.txt", "filePath": f"{link_at}/passwd"}], wd,
                                resolver)
    assert err.value.failure_info["code"] == "ResourceDirectoryCreateFailed"
    assert "symbolic link" in err.value.failure_info["message"]
    assert list(host.iterdir()) == []


def test_a_symlink_at_the_file_itself_is_replaced_not_written_through(http_server, resolver, tmp_path):  # noqa: F811
    host_file = tmp_path / "host-passwd"
    host_file.write_text("root:x:0:0\n")
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "passwd").symlink_to(host_file)
    mode_before = host_file.stat().st_mode
    download_resource_files([{"httpUrl": f"{http_server}/hello.txt", "filePath": "passwd", "fileMode": "0751"}],
                            wd, resolver)
    assert host_file.read_text() == "root:x:0:0\n" and host_file.stat().st_mode == mode_before
    assert not (wd / "passwd").is_symlink() and (wd / "passwd").read_text() == "plain http"


def test_container_blobs_are_not_written_through_a_planted_link(inputs, resolver, tmp_path):  # noqa: F811
    _, url = inputs
    host = tmp_path / "host"
    host.mkdir()
    wd = tmp_path / "wd"
    (wd / "data" / "inputs").mkdir(parents=True)
    (wd / "data" / "inputs" / "sub").symlink_to(host)
    with pytest.raises(StagingError):
        download_resource_files([{"storageContainerUrl": url, "blobPrefix": "inputs/", "filePath": "data"}], wd,
                                resolver)
    assert list(host.iterdir()) == []


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/x", "data:text/plain,hi", "/etc/hostname"])
def test_only_http_and_https_urls_are_fetched(resolver, tmp_path, url):  # noqa: F811
    wd = tmp_path / "wd"
    with pytest.raises(StagingError) as err:
        download_resource_files([{"httpUrl": url, "filePath": "stolen"}], wd, resolver)
    info = err.value.failure_info
    assert info["code"] == "BlobDownloadMiscError" and info["category"] == "usererror"
    assert "only http and https" in info["message"]
    assert not (wd / "stolen").exists()


def test_a_redirect_to_a_file_url_is_not_followed(resolver, tmp_path):  # noqa: F811
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "file:///etc/hostname")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(StagingError):
            download_resource_files([{"httpUrl": f"http://127.0.0.1:{server.server_port}/r", "filePath": "stolen"}],
                                    tmp_path / "wd", resolver)
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "wd" / "stolen").exists()


def test_an_output_swapped_for_a_symlink_after_the_check_is_not_uploaded(outputs, resolver, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    """The time-of-check/time-of-use gap: the upload resolves the path, checks it is inside the task, then
    opens it. A sibling swaps the file for a link to a host file right after the check (simulated here by
    doing the swap inside resolve())."""
    container, url = outputs
    task_dir = tmp_path / "task"
    wd = task_dir / "wd"
    (wd / "out").mkdir(parents=True)
    target = wd / "out" / "result.txt"
    target.write_text("the task's own output")
    secret = tmp_path / "host-secret.txt"
    secret.write_text("SECRET FROM THE HOST")
    original = Path.resolve
    swapped = []

    def resolve_then_swap(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if self == target and not swapped:
            swapped.append(True)
            os.unlink(target)
            os.symlink(secret, target)
        return result

    monkeypatch.setattr(Path, "resolve", resolve_then_swap)
    upload_output_files([spec("out/*.txt", url)], task_dir, wd, True, resolver)
    monkeypatch.setattr(Path, "resolve", original)
    assert swapped, "the simulated swap did not happen"
    uploaded = {n: container.download_blob(n).readall() for n in names(container)}
    assert b"SECRET FROM THE HOST" not in uploaded.values()
    assert "symbolic link" in (task_dir / "fileuploaderr.txt").read_text()


def test_the_identity_credential_signs_only_for_the_configured_storage_endpoint(resolver, storage, tmp_path):  # noqa: F811
    """A storageContainerUrl/httpUrl with an identityReference on another host must not receive requests signed
    with the emulator's storage key (before: any host with the right account name in its path did)."""
    import http.server
    import threading

    seen = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    other = f"http://127.0.0.1:{server.server_port}/{storage.account}/inputs"
    identity = {"resourceId": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
                              "userAssignedIdentities/pool-identity"}
    try:
        for rf in ({"storageContainerUrl": other, "identityReference": identity},
                   {"httpUrl": f"{other}/a.txt", "filePath": "a.txt", "identityReference": identity}):
            with pytest.raises(StagingError) as err:
                download_resource_files([rf], tmp_path / "wd", resolver)
            assert "configured storage endpoint" in err.value.failure_info["message"]
    finally:
        server.shutdown()
        server.server_close()
    assert [a for a in seen if a] == []
