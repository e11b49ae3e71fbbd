"""Uploading a task's outputFiles to blob containers after its process exits, as the Batch node agent does.

Input is the wire JSON (filePattern, destination.container{containerUrl, path, identityReference,
uploadHeaders}, uploadOptions.uploadCondition). Every output file is attempted even after a failure; the first
failure is returned as Batch's failureInfo (the caller sets result=failure). A pattern that matches nothing is
not an error (it is logged). Like Batch, the agent writes fileuploadout.txt / fileuploaderr.txt into the task
directory (URLs in them carry no SAS).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from .blob_urls import container_client, parse_storage_url
from .credentials import CredentialResolver, IdentityUnavailable
from .errors import failure_info, redact_url
from .paths import SymlinkRefused, open_file_under
from .patterns import destination_blob_name, expand_vars, has_wildcard, match_files


def should_upload(condition: str | None, task_succeeded: bool) -> bool:
    cond = (condition or "taskcompletion").lower()
    if cond == "tasksuccess":
        return task_succeeded
    if cond == "taskfailure":
        return not task_succeeded
    return True


def upload_output_files(
    output_files: list[dict],
    task_dir: Path,
    working_dir: Path,
    task_succeeded: bool,
    resolver: CredentialResolver,
    *,
    env: dict[str, str] | None = None,
    allowed_root: Path | None = None,
    timeout: float = 300,
    uploaded: list[dict] | None = None,
) -> dict | None:
    """Upload what applies; None when all uploads succeeded, else the first failure's failureInfo.

    `uploaded`, when given, receives one entry per stored blob (url without SAS, container, name, etag, size):
    what a storage account's BlobCreated events would report.

    `env` is the task environment for $var expansion in patterns. `allowed_root` (default: task_dir) bounds
    what may be uploaded: a file (or symlink target) outside it is skipped, so a task cannot publish host
    files through a symlink or an absolute pattern. Pass the node root directory to allow node-wide paths.
    """
    task_dir, working_dir = Path(task_dir), Path(working_dir)
    root = Path(allowed_root or task_dir).resolve()
    applicable = [of for of in output_files or []
                  if should_upload((of.get("uploadOptions") or {}).get("uploadCondition"), task_succeeded)]
    if not applicable:
        return None
    log = _Log(task_dir)
    first_failure: dict | None = None
    try:
        for of in applicable:
            failure = _upload_one(of, working_dir, root, resolver, env or {}, timeout, log, uploaded)
            first_failure = first_failure or failure
    finally:
        log.close()
    return first_failure


def _upload_one(of: dict, working_dir: Path, root: Path, resolver: CredentialResolver, env: dict[str, str],
                timeout: float, log: _Log, uploaded: list[dict] | None = None) -> dict | None:
    pattern = expand_vars(of.get("filePattern") or "", env)
    container = (of.get("destination") or {}).get("container") or {}
    url = container.get("containerUrl") or ""
    details = {"FilePattern": of.get("filePattern"), "ContainerUrl": redact_url(url)}
    loc = parse_storage_url(url, resolver, assume_storage=True)
    if loc is None or loc.blob:
        log.err(f"containerUrl {redact_url(url)} is not a blob container URL")
        return failure_info("FileUploadMiscError", "containerUrl is not a blob container URL", **details)
    matches = match_files(pattern, working_dir)
    if not matches:
        log.out(f"no files match pattern {pattern!r}; nothing uploaded")
        return None
    try:
        client = container_client(url, loc, bool(container.get("identityReference")), resolver, timeout)
    except IdentityUnavailable as exc:
        log.err(str(exc))
        return failure_info("FileUploadAccessDenied", str(exc), **details)
    headers = {h["name"]: str(h.get("value", "")) for h in container.get("uploadHeaders") or [] if h.get("name")}
    wildcard = has_wildcard(pattern)
    failure = None
    for match in matches:
        real = match.path.resolve()
        if real != root and root not in real.parents:
            log.err(f"skipped {match.path}: outside {root}")
            continue
        # The check above and the open below are separated in time: a task (or a sibling container with the node
        # root mounted) could swap a path segment for a symlink in between. Opening the resolved path one
        # segment at a time with O_NOFOLLOW from the allowed root refuses such a swap instead of following it.
        try:
            fd = open_file_under(root, real)
        except OSError as exc:
            log.err(f"skipped {match.path}: {exc.strerror if not isinstance(exc, SymlinkRefused) else exc}")
            continue
        blob_name = destination_blob_name(container.get("path"), match, wildcard)
        try:
            blob = client.get_blob_client(blob_name)
            with os.fdopen(fd, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                stored = blob.upload_blob(fh, overwrite=True, headers=dict(headers), timeout=timeout, length=size)
            log.out(f"uploaded {match.path} -> {redact_url(url)}/{blob_name}")
            if uploaded is not None:
                uploaded.append({"url": blob.url.split("?", 1)[0], "container": blob.container_name,
                                 "name": blob_name, "etag": str(stored.get("etag") or ""), "size": size})
        except Exception as exc:  # noqa: BLE001 - any failed upload becomes the task's failureInfo
            code, reason = _upload_error(exc)
            log.err(f"upload of {match.path} -> {redact_url(url)}/{blob_name} failed: {code} {reason}")
            failure = failure or failure_info(code, reason, **details, BlobName=blob_name)
    return failure


def _upload_error(exc: Exception) -> tuple[str, str]:
    status = getattr(exc, "status_code", None)
    error_code = str(getattr(exc, "error_code", "") or "")
    reason = f"HTTP {status} {error_code}".strip() if status else (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, ResourceNotFoundError) or error_code.endswith("ContainerNotFound") or "containernotfound" in error_code.lower():
        return "FileUploadContainerNotFound", reason
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return "FileUploadAccessDenied", reason
    if isinstance(exc, ServiceResponseError) and "timed out" in str(exc).lower():
        return "FileUploadTimedOut", reason
    if isinstance(exc, (HttpResponseError, ServiceRequestError, ServiceResponseError, OSError)):
        return "FileUploadMiscError", reason
    return "FileUploadMiscError", reason


class _Log:
    """fileuploadout.txt / fileuploaderr.txt in the task directory, as the Batch agent writes them."""

    def __init__(self, task_dir: Path):
        task_dir.mkdir(parents=True, exist_ok=True)
        self._out = open(task_dir / "fileuploadout.txt", "a", encoding="utf-8")  # noqa: SIM115
        self._err = open(task_dir / "fileuploaderr.txt", "a", encoding="utf-8")  # noqa: SIM115

    @staticmethod
    def _stamp() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def out(self, line: str) -> None:
        self._out.write(f"{self._stamp()} {line}\n")

    def err(self, line: str) -> None:
        self._err.write(f"{self._stamp()} {line}\n")

    def close(self) -> None:
        self._out.close()
        self._err.close()
