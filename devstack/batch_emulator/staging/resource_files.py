"""Downloading a task's resourceFiles into its working directory before the command runs.

Input is the wire JSON the SDKs send (camelCase: httpUrl | storageContainerUrl | autoStorageContainerName,
blobPrefix, filePath, fileMode, identityReference). The first failure stops staging and raises StagingError
with Batch's failureInfo, so the caller fails the task without running its command, as Batch does.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from .blob_urls import StorageLocation, blob_client, container_client, parse_storage_url
from .credentials import CredentialResolver, IdentityUnavailable
from .errors import StagingError, failure_info, redact_url
from .paths import SymlinkRefused, open_dir, parse_file_mode, relative_parts

DEFAULT_FILE_MODE = 0o770  # Batch: "If this property is not specified for a Linux Compute Node, ... 0770"


def download_resource_files(
    resource_files: list[dict], working_dir: Path, resolver: CredentialResolver, timeout: float = 300
) -> None:
    working_dir = Path(working_dir)
    working_dir.mkdir(parents=True, exist_ok=True)
    for rf in resource_files or []:
        _download_one(rf, working_dir, resolver, timeout)


def _download_one(rf: dict, working_dir: Path, resolver: CredentialResolver, timeout: float) -> None:
    file_path = rf.get("filePath") or ""
    try:
        mode = parse_file_mode(rf.get("fileMode"))
        mode = DEFAULT_FILE_MODE if mode is None else mode
        relative_parts(file_path, "filePath")
    except ValueError as exc:
        # A filePath the node cannot create (Batch reports ResourceDirectoryCreateFailed, "The resource
        # directory path could not be created", for such paths: Azure-Samples/batch-dotnet-quickstart#9).
        code = "ResourceDirectoryCreateFailed" if "filePath" in str(exc) else "ResourceFileCreateFailed"
        raise StagingError(failure_info(code, str(exc), category="usererror", FilePath=file_path)) from None
    identity = bool(rf.get("identityReference"))
    if rf.get("autoStorageContainerName"):
        raise StagingError(failure_info(
            "BlobDownloadMiscError",
            "autoStorageContainerName is not supported by the Batch emulator (it has no auto-storage account); "
            "use storageContainerUrl with a SAS or an identityReference",
            FilePath=file_path or None,
        ))
    if rf.get("httpUrl"):
        if not file_path:
            raise StagingError(failure_info("ResourceDirectoryCreateFailed", "filePath is required with httpUrl",
                                            category="usererror",
                                            ResourceUrl=redact_url(rf["httpUrl"])))
        _check_scheme(rf["httpUrl"], "httpUrl", {"FilePath": file_path})
        _fetch_http(rf["httpUrl"], working_dir, relative_parts(file_path, "filePath"), identity, resolver, timeout,
                    file_path, mode)
        return
    if rf.get("storageContainerUrl"):
        _check_scheme(rf["storageContainerUrl"], "storageContainerUrl", {"FilePath": file_path or None})
        _fetch_container(rf, working_dir, identity, resolver, timeout, mode)
        return
    raise StagingError(failure_info("BlobDownloadMiscError", "the resource file names no source "
                                    "(httpUrl, storageContainerUrl or autoStorageContainerName)"))


def _check_scheme(url: str, prop: str, details: dict) -> None:
    """Batch downloads resource files over http(s) only. urllib would also open file://, ftp:// and data:
    URLs, which would copy files of the emulator's host into the task."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"'{scheme}'" if scheme else "no scheme"
        raise StagingError(failure_info(
            "BlobDownloadMiscError", f"{prop} has {shown}: only http and https URLs can be downloaded",
            category="usererror", **details, ResourceUrl=redact_url(url)))


# Only http(s): no file://, ftp:// or data: handler, and no environment proxies; redirects to another scheme
# fail as an unknown URL type.
_HTTP_OPENER = urllib.request.OpenerDirector()
for _handler in (urllib.request.HTTPHandler, urllib.request.HTTPSHandler, urllib.request.HTTPRedirectHandler,
                 urllib.request.HTTPDefaultErrorHandler, urllib.request.HTTPErrorProcessor):
    _HTTP_OPENER.add_handler(_handler())


# -- one URL ------------------------------------------------------------------------------------------------


def _is_storage_blob(url: str, loc: StorageLocation | None, identity: bool, resolver: CredentialResolver) -> bool:
    if loc is None or not loc.blob:
        return False
    host = urlsplit(url).netloc.lower()
    endpoint_host = urlsplit(resolver.blob_endpoint).netloc.lower() if resolver.blob_endpoint else None
    return identity or loc.has_sas or ".blob." in host or host == endpoint_host


def _fetch_http(url: str, working_dir: Path, parts: list[str], identity: bool, resolver: CredentialResolver,
                timeout: float, file_path: str, mode: int) -> None:
    loc = parse_storage_url(url, resolver)
    safe_url = redact_url(url)
    details = {"FilePath": file_path, "ResourceUrl": safe_url}
    if _is_storage_blob(url, loc, identity, resolver):
        assert loc is not None
        try:
            client = blob_client(url, loc, identity, resolver, timeout)
        except IdentityUnavailable as exc:
            raise StagingError(failure_info("BlobAccessDenied", str(exc), **details)) from None

        def write(fh) -> None:
            client.download_blob(timeout=timeout).readinto(fh)

        _write_atomically(working_dir, parts, write, details, _blob_error, mode)
        return

    def write_http(fh) -> None:
        with _HTTP_OPENER.open(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, fh, 1024 * 1024)

    _write_atomically(working_dir, parts, write_http, details, _http_error, mode)


def _fetch_container(rf: dict, working_dir: Path, identity: bool, resolver: CredentialResolver,
                     timeout: float, mode: int) -> list[Path]:
    url = rf["storageContainerUrl"]
    file_path = rf.get("filePath") or ""
    details = {"FilePath": file_path or None, "ContainerUrl": redact_url(url)}
    loc = parse_storage_url(url, resolver, assume_storage=True)
    if loc is None:
        raise StagingError(failure_info("ResourceContainerListMiscError",
                                        "storageContainerUrl is not a blob container URL", **details))
    try:
        client = container_client(url, loc, identity, resolver, timeout)
        names = [b.name for b in client.list_blobs(name_starts_with=rf.get("blobPrefix") or None, timeout=timeout)]
    except IdentityUnavailable as exc:
        raise StagingError(failure_info("ResourceContainerAccessDenied", str(exc), **details)) from None
    except (ClientAuthenticationError, HttpResponseError) as exc:
        status = getattr(exc, "status_code", None)
        code = "ResourceContainerAccessDenied" if status in (401, 403) else "ResourceContainerListMiscError"
        raise StagingError(failure_info(code, _storage_reason(exc), **details)) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StagingError(failure_info("ResourceContainerListMiscError", str(exc).splitlines()[0], **details)) from None
    base = relative_parts(file_path, "filePath")
    targets = []
    for name in names:
        if name.endswith("/"):
            continue  # a directory marker, not a file
        try:
            parts = base + relative_parts(name, "blob name")
        except ValueError as exc:
            raise StagingError(failure_info("ResourceDirectoryCreateFailed", str(exc), category="usererror",
                                            **details)) from None
        if not parts:
            continue
        blob = client.get_blob_client(name)
        blob_details = {**details, "BlobName": name}

        def write(fh, blob=blob) -> None:
            blob.download_blob(timeout=timeout).readinto(fh)

        targets.append(_write_atomically(working_dir, parts, write, blob_details, _blob_error, mode))
    return targets


# -- writing and error mapping ------------------------------------------------------------------------------


def _write_atomically(working_dir: Path, parts: list[str], write, details: dict, classify, mode: int) -> Path:
    """Download into a temp file next to the target, then rename: a failed download leaves no partial file.

    Every directory from the working dir down is opened (or made) without following symlinks, and the temp
    file is created, chmod-ed and renamed relative to that directory's descriptor: a link left in a reused or
    shared folder makes staging fail instead of writing through it."""
    if not parts:
        raise StagingError(failure_info("ResourceFileCreateFailed", "the file path names the working directory "
                                        "itself, not a file in it", category="usererror", **details))
    target = working_dir.joinpath(*parts)
    try:
        dir_cm = open_dir(working_dir, parts[:-1], create=True)
        dir_fd = dir_cm.__enter__()
    except SymlinkRefused as exc:
        raise StagingError(failure_info("ResourceDirectoryCreateFailed", str(exc), category="usererror",
                                        **details)) from None
    except OSError as exc:
        raise StagingError(failure_info(_disk_code(exc, "ResourceDirectoryCreateFailed"), exc.strerror,
                                        **details)) from None
    try:
        tmp = f".download-{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
        except OSError as exc:
            raise StagingError(failure_info(_disk_code(exc, "ResourceFileCreateFailed"), exc.strerror,
                                            **details)) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                try:
                    write(fh)
                except OSError as exc:
                    if isinstance(exc, (socket.timeout, TimeoutError, urllib.error.URLError)) or exc.errno is None:
                        raise
                    raise StagingError(failure_info(_disk_code(exc, "ResourceFileWriteFailed"), exc.strerror,
                                                    **details)) from None
                try:
                    os.fchmod(fh.fileno(), mode)
                except OSError as exc:
                    raise StagingError(failure_info("ResourceFileWriteFailed", f"chmod failed: {exc.strerror}",
                                                    **details)) from None
            try:
                # rename() replaces a symlink at the target name itself; it never writes through it
                os.replace(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                raise StagingError(failure_info("ResourceFileCreateFailed", f"{target}: {exc.strerror}",
                                                **details)) from None
        except StagingError:
            _unlink(tmp, dir_fd)
            raise
        except Exception as exc:  # noqa: BLE001 - every download failure becomes the task's failureInfo
            _unlink(tmp, dir_fd)
            code, reason = classify(exc)
            raise StagingError(failure_info(code, reason, **details)) from None
    finally:
        dir_cm.__exit__(None, None, None)
    return target


def _blob_error(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ResourceNotFoundError):
        return "BlobNotFound", _storage_reason(exc)
    if isinstance(exc, ClientAuthenticationError) or getattr(exc, "status_code", None) in (401, 403):
        return "BlobAccessDenied", _storage_reason(exc)
    if isinstance(exc, (ServiceResponseError, TimeoutError, socket.timeout)) and "timed out" in str(exc).lower():
        return "BlobDownloadTimedOut", str(exc).splitlines()[0]
    if isinstance(exc, HttpResponseError):
        return "BlobDownloadMiscError", _storage_reason(exc)
    return "BlobDownloadMiscError", (str(exc).splitlines() or [type(exc).__name__])[0]


def _http_error(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return "BlobNotFound", f"HTTP 404 {exc.reason}"
        if exc.code in (401, 403):
            return "BlobAccessDenied", f"HTTP {exc.code} {exc.reason}"
        return "BlobDownloadMiscError", f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, (TimeoutError, socket.timeout)) or isinstance(reason, (TimeoutError, socket.timeout)):
        return "BlobDownloadTimedOut", "the download timed out"
    return "BlobDownloadMiscError", str(reason)


def _storage_reason(exc: Exception) -> str:
    code = getattr(exc, "error_code", None)
    status = getattr(exc, "status_code", None)
    return f"HTTP {status} {code}" if code else f"HTTP {status}" if status else type(exc).__name__


def _disk_code(exc: OSError, default: str) -> str:
    return "DiskFull" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else default


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
