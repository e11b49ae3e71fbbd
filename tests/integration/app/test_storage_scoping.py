"""Per-run storage access with SAS (the local stack; Azure without a pool identity): the URLs a real task carries
let it do its own step and nothing else. Azurite checks a SAS's signature, resource and permissions as Storage does,
so every refusal below is the service's, not the test's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, ContainerClient

from shared import ids

pytestmark = pytest.mark.integration


def _refused(action) -> int:
    with pytest.raises(HttpResponseError) as info:
        action()
    return info.value.status_code


def _other_container(url: str, container: str) -> str:
    """The same SAS query on another container's URL (what a task that kept its URL could try)."""
    parts = urlsplit(url)
    account = parts.path.strip("/").split("/")[0]
    return f"{parts.scheme}://{parts.netloc}/{account}/{container}?{parts.query}"


def test_a_tasks_sas_urls_reach_only_its_own_input_and_output(app):
    name = "transform/scoped.txt"
    other = "transform/someone else.txt"
    app.upload(name, b"mine\n")
    app.upload(other, b"secret\n")
    app.blob_event(name)
    app.settle()
    etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
    run_id = ids.blob_task_id("transform", app.input_container, name, etag)
    job_id = app.record("transform", run_id)["jobId"]
    task = app.ctx.batch.get_task(job_id, run_id).as_dict()
    read_url = task["resourceFiles"][0]["httpUrl"]
    write_url = next(f["destination"]["container"]["containerUrl"] for f in task["outputFiles"]
                     if f["filePattern"] == "out/**")
    marker_url = task["outputFiles"][-1]["destination"]["container"]["containerUrl"]  # the marker comes last
    assert f"/{app.ctx.settings.marker_container}?" in marker_url

    # Every URL expires soon after the task's own limits (PT10M, one retry: 2 x 10 min + 1 h; quarter hours),
    # not after SAS_VALIDITY (12 h): a URL copied out of the task is worth little for long.
    latest = datetime.now(UTC) + timedelta(minutes=80 + 15)
    for url in (read_url, write_url, marker_url):
        expiry = datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))
        assert expiry <= latest, url

    # The run itself works with exactly these rights: input read, outputs and marker written.
    rec = app.wait_terminal("transform", [run_id])[run_id]
    assert rec["state"] == "succeeded", rec
    assert app.read_text(app.output_container, f"{name}/result.txt") == "MINE\n"

    # The input SAS reads its one blob, not its neighbour, and cannot write it.
    assert BlobClient.from_blob_url(read_url).download_blob().readall() == b"mine\n"
    sibling = read_url.replace("scoped.txt", "someone%20else.txt")
    assert _refused(lambda: BlobClient.from_blob_url(sibling).download_blob().readall()) == 403
    assert _refused(lambda: BlobClient.from_blob_url(read_url).upload_blob(b"x", overwrite=True)) == 403

    # The output SAS writes (create and overwrite) in the output container, and does nothing else there:
    # no reading other runs' outputs or manifests, no listing, no deleting.
    out = ContainerClient.from_container_url(write_url)
    out.upload_blob(f"{name}/out/extra.txt", b"ok", overwrite=True)
    result = out.get_blob_client(f"{name}/result.txt")
    assert _refused(lambda: result.download_blob().readall()) == 403
    assert _refused(lambda: list(out.list_blobs())) == 403
    assert _refused(lambda: result.delete_blob()) == 403
    assert app.read_text(app.output_container, f"{name}/result.txt") == "MINE\n"

    # Neither write SAS opens another container: not the input, not the markers, not the other way round.
    for url, container in ((write_url, app.input_container), (write_url, app.ctx.settings.marker_container),
                           (marker_url, app.output_container), (marker_url, app.input_container)):
        elsewhere = ContainerClient.from_container_url(_other_container(url, container))
        assert _refused(lambda c=elsewhere: c.upload_blob("planted.txt", b"x", overwrite=True)) == 403
    assert not app.ctx.storage.blob.get_blob_client(app.input_container, "planted.txt").exists()
    assert not app.ctx.storage.blob.get_blob_client(app.output_container, "planted.txt").exists()
