"""Giving the app work from outside: upload files where a pipeline's blob trigger watches, or send a queue request.

Run ids are the app's own (shared.ids), computed from what the upload returned (ETag) and, for requests, from the
queue message id, so the caller can follow exactly the runs it caused.
Files for a request are staged in a container the blob trigger does not watch (default `uploads`): putting them in
the input container would also start them as blob-triggered runs, or get them rejected as outside every policy.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContentSettings

from devstack.common import paths
from devstack.func_host.events import publish_blob_created
from devstack.tools.access import AppAccess
from shared import ids
from shared.errors import Rejection
from shared.names import check_blob_name
from shared.pipelines import Pipeline
from shared.work_items import IDEMPOTENCY_KEY, BlobRef, parse_input


class SubmitError(Exception):
    """The submission cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Uploaded:
    container: str
    name: str
    etag: str
    size: int
    run_id: str | None = None


@dataclass
class SentRequest:
    message_id: str
    request_id: str
    inputs: list[BlobRef]
    uploaded: list[Uploaded] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, container/name); merge last
    merge_run: str | None = None


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def upload(access: AppAccess, container: str, name: str, path: Path) -> Uploaded:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubmitError(f"cannot read {path}: {exc.strerror}") from None
    try:
        check_blob_name(name)
    except Rejection as exc:
        raise SubmitError(f"{name!r} cannot be used as a blob name: {exc.reason}") from None
    cc = access.storage.blob.get_container_client(container)
    try:
        cc.create_container()
    except ResourceExistsError:
        pass
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    blob = cc.get_blob_client(name)
    result = blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_type=content_type))
    # The local stand-in for Event Grid: the host's blob trigger gets the event now, not at its next scan. Only
    # for the local stack: an upload to Azure is announced by Event Grid itself, never to a local host.
    if access.local_stack:
        publish_blob_created(paths.state_dir() / "func_host", blob.url, container, name,
                             etag=str(result["etag"]), size=len(data), content_type=content_type)
    return Uploaded(container, name, str(result["etag"]), len(data))


def upload_inputs(access: AppAccess, pipeline: Pipeline, files: Sequence[Path], sub: str = "",
                  on_upload: Callable[[Uploaded], None] | None = None) -> list[Uploaded]:
    """Upload `files` under the pipeline's blob input (container/prefix[/sub]/basename): one run per file.
    `on_upload` is called after each file (a progress bar)."""
    policy = pipeline.blob_input
    if policy is None:
        raise SubmitError(f"pipeline {pipeline.name} takes no blob uploads (inputs.blob is not set); send a request: "
                          f"eventbatch submit {pipeline.name} --request FILE...")
    out = []
    for path in files:
        name = policy.prefix + _join(sub, path.name)
        u = upload(access, policy.container, name, path)
        out.append(Uploaded(u.container, u.name, u.etag, u.size,
                            ids.blob_task_id(pipeline.name, u.container, u.name, u.etag)))
        if on_upload:
            on_upload(out[-1])
    return out


def send_request(access: AppAccess, pipeline: Pipeline, files: Sequence[Path], inputs: Sequence[str],
                 idempotency_key: str | None, sub: str = "", staging_container: str = "uploads",
                 on_upload: Callable[[Uploaded], None] | None = None) -> SentRequest:
    """Stage `files` (if any), then put one request naming them and `inputs` on the requests queue.
    `on_upload` is called after each staged file (a progress bar)."""
    if not pipeline.queue_input:
        raise SubmitError(f"pipeline {pipeline.name} takes no queue requests (inputs.queue is false); upload the files "
                          f"instead: eventbatch submit {pipeline.name} FILE...")
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise SubmitError("--idempotency-key must be 1-128 letters, digits or ._:@-")
    if files and pipeline.blob_input:
        raise SubmitError(f"pipeline {pipeline.name} watches {pipeline.blob_input.container}/"
                          f"{pipeline.blob_input.prefix}: upload the files without --request (one run each), or name "
                          "blobs already there with --inputs")
    watched = {p.blob_input.container for p in access.config.pipelines.values() if p.blob_input}
    if files and staging_container in watched:
        raise SubmitError(f"--staging-container {staging_container} is watched by the blob trigger; pick another one")
    if not files and not inputs:
        raise SubmitError("a request needs inputs: FILEs to upload and/or --inputs CONTAINER/NAME ...")
    uploaded = []
    for p in files:
        uploaded.append(upload(access, staging_container, _join(pipeline.name, sub, p.name), p))
        if on_upload:
            on_upload(uploaded[-1])
    refs = [BlobRef(u.container, u.name) for u in uploaded]
    for i, text in enumerate(inputs):
        try:
            refs.append(parse_input(text, i, access.storage.blob_endpoint))
        except Rejection as exc:
            raise SubmitError(f"--inputs {text!r}: {exc.reason}") from None
    etags = {(u.container, u.name): u.etag for u in uploaded}
    for ref in refs[len(uploaded):]:
        try:
            etags[(ref.container, ref.name)] = str(access.storage.blob.get_blob_client(ref.container, ref.name)
                                                   .get_blob_properties().etag)
        except Exception as exc:  # noqa: BLE001 - say which input, not a stack trace
            raise SubmitError(f"--inputs {ref.container}/{ref.name}: cannot read it ({type(exc).__name__}); upload "
                              "it first") from None
    body = {"pipeline": pipeline.name, "inputs": [f"{r.container}/{r.name}" for r in refs]}
    if idempotency_key:
        body["idempotencyKey"] = idempotency_key
    text = json.dumps(body, ensure_ascii=False)
    queue = access.storage.queue.get_queue_client(access.settings.queues.requests)
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass
    message = queue.send_message(text)
    request_id = ids.request_id(idempotency_key, message.id, text)
    sent = SentRequest(message_id=message.id, request_id=request_id, inputs=refs, uploaded=uploaded)
    for ref in refs:
        sent.runs.append((ids.request_task_id(pipeline.name, request_id, ref.container, ref.name,
                                              etags[(ref.container, ref.name)]), f"{ref.container}/{ref.name}"))
    if pipeline.merge is not None:
        sent.merge_run = ids.merge_task_id(pipeline.name, request_id)
        sent.runs.append((sent.merge_run, "(merge)"))
    return sent
