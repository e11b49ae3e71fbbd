"""Task file operations (``/jobs/{job}/tasks/{task}/files``...): list, get (streamed, with ocp-range), head and
delete. The task's folder on its node is read through layout.TaskFolder; this module only speaks HTTP."""

from __future__ import annotations

from email.utils import format_datetime
from urllib.parse import quote

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.layout import TaskFile, TaskFolder
from devstack.batch_emulator.protocol.messages import Request, Response, list_response


def _folder(req: Request) -> TaskFolder:
    return TaskFolder(req.model.task_paths(req.params["job"], req.params["task"]))


def _recursive(req: Request) -> bool:
    return (req.query.get("recursive") or "false").lower() == "true"


def _file_url(req: Request, name: str) -> str:
    return f"{req.base_url}/jobs/{req.params['job']}/tasks/{req.params['task']}/files/{quote(name)}"


def _properties(entry: TaskFile) -> dict:
    props = {"creationTime": timeutil.iso(entry.created), "lastModified": timeutil.iso(entry.modified),
             "contentLength": str(entry.size), "fileMode": entry.mode}
    if entry.is_file:
        props["contentType"] = entry.content_type
    return props


def list_task_files(req: Request) -> Response:
    entries = _folder(req).list(_recursive(req)) if req.model.task_paths(req.params["job"], req.params["task"]) \
        else []
    items = [{"name": e.name, "isDirectory": e.is_directory, "properties": _properties(e),
              "url": _file_url(req, e.name)} for e in entries]
    return list_response(req, items, lambda i: i["url"][len(req.base_url):], "files")


def _file_headers(req: Request, entry: TaskFile) -> dict:
    return {
        "ocp-creation-time": format_datetime(entry.created, usegmt=True),
        "Last-Modified": format_datetime(entry.modified, usegmt=True),
        "ocp-batch-file-isdirectory": "true" if entry.is_directory else "false",
        "ocp-batch-file-url": _file_url(req, entry.name),
        "ocp-batch-file-mode": entry.mode,
        "Content-Type": "application/octet-stream",
    }


def get_task_file(req: Request) -> Response:
    """The file is streamed (never read whole into memory), opened without following a final symlink."""
    folder = _folder(req)
    entry = folder.find(req.params["path"])
    headers = _file_headers(req, entry)
    if req.method == "HEAD":
        headers["Content-Length"] = str(entry.size)
        return Response(200, b"", headers)
    fh, size = folder.open(req.params["path"])
    try:
        start, length = _byte_range(req.header("ocp-range"), size)
        fh.seek(start)
    except BaseException:
        fh.close()
        raise
    headers["Content-Length"] = str(length)
    return Response(200, b"", headers, stream=fh, stream_length=length)


def _byte_range(value: str | None, size: int) -> tuple[int, int]:
    """(first byte, byte count) of an ocp-range `bytes=a-b`, `bytes=a-` or `bytes=-n`, clamped to the file."""
    if not value or not value.startswith("bytes="):
        return 0, size
    start_s, sep, end_s = value[6:].partition("-")
    try:
        if not sep or (not start_s and not end_s):
            raise ValueError
        if not start_s:
            count = int(end_s)
            start, end = max(size - count, 0), size - 1
        else:
            start = int(start_s)
            end = min(int(end_s), size - 1) if end_s else size - 1
        if start < 0 or (end_s and start_s and int(end_s) < start):
            raise ValueError
    except ValueError:
        raise errors.BatchError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the "
                                "correct format.", {"HeaderName": "ocp-range", "HeaderValue": value}) from None
    return min(start, size), max(end - start + 1, 0) if start < size else 0


def delete_task_file(req: Request) -> Response:
    _folder(req).delete(req.params["path"], _recursive(req))
    return Response(200)
