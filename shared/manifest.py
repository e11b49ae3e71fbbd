"""The result manifest (JSON written next to a run's outputs) and the completion/failure message. Pure.

Manifest, `<output prefix>/manifest.json` in the output container:
    {"schema": "eventbatch.manifest/1", "runId", "pipeline", "kind": "task"|"merge", "jobId", "taskId",
     "requestId", "input": {"container", "name", "etag", "size", "contentType"} | null,
     "state": "succeeded"|"failed", "result": "success"|"failure", "exitCode", "failureInfo": {...} | null,
     "startTime", "endTime", "durationSeconds", "retryCount", "requeueCount",
     "outputs": [{"container", "name", "size"}], "logs": {"stdout": {...}, "stderr": {...}},
     "stderrTail": "..." | null (failures), "recordedAt"}
"""

from __future__ import annotations

import json
from typing import Any

from shared.durations import parse_timestamp

SCHEMA = "eventbatch.manifest/1"
STDERR_TAIL_BYTES = 4096
# A queue message holds 64 KiB, and a client that base64-encodes (the SDKs' and the host's default) turns 3 bytes
# into 4: a message fits anywhere when its UTF-8 JSON stays under 48 KiB. 1 KiB is left for `messageId`.
MESSAGE_BUDGET_BYTES = 64 * 1024 * 3 // 4 - 1024
MAX_FAILURE_TEXT = 2000
MAX_CONTENT_TYPE = 256



def _iso(value: Any) -> str | None:
    t = parse_timestamp(value)
    return t.isoformat().replace("+00:00", "Z") if t else None


def task_outcome(task: dict) -> dict:
    """The facts of a completed task (from the Batch task JSON) in manifest/record vocabulary."""
    info = task.get("executionInfo") or {}
    failure = info.get("failureInfo")
    result = info.get("result") or ("failure" if failure or info.get("exitCode") not in (0, None) else "success")
    start, end = parse_timestamp(info.get("startTime")), parse_timestamp(info.get("endTime"))
    return {
        "result": result,
        "state": "succeeded" if result == "success" else "failed",
        "exitCode": info.get("exitCode"),
        "failureInfo": dict(failure) if failure else None,
        "startTime": _iso(start),
        "endTime": _iso(end),
        "durationSeconds": round((end - start).total_seconds(), 3) if start and end else None,
        "retryCount": info.get("retryCount", 0),
        "requeueCount": info.get("requeueCount", 0),
    }


def build_manifest(record: dict, job_id: str, task_id: str, outcome: dict, outputs: list[dict], logs: dict,
                   stderr_tail: str | None, recorded_at: str) -> dict:
    has_input = bool(record.get("inputName"))
    return {
        "schema": SCHEMA,
        "runId": record.get("RowKey", task_id),
        "pipeline": record.get("pipeline") or record.get("PartitionKey"),
        "kind": record.get("kind", "task"),
        "jobId": job_id,
        "taskId": task_id,
        "requestId": record.get("requestId"),
        "input": {"container": record.get("inputContainer"), "name": record.get("inputName"),
                  "etag": record.get("inputEtag"), "size": record.get("inputSize"),
                  "contentType": record.get("inputContentType")} if has_input else None,
        **{k: outcome[k] for k in ("state", "result", "exitCode", "failureInfo", "startTime", "endTime",
                                   "durationSeconds", "retryCount", "requeueCount")},
        "outputs": outputs,
        "logs": logs,
        "stderrTail": stderr_tail,
        "recordedAt": recorded_at,
    }


def completion_message(manifest: dict, manifest_container: str, manifest_name: str) -> dict:
    """The completion/failure message of a run, bounded by construction so that it always fits on a queue (64 KiB
    once base64-encoded): free-text fields are cut on their own, and when the output names would not fit the
    message carries the first ones with `outputsTruncated: true`; `outputCount` and the manifest blob always tell
    the whole list."""
    failure = manifest.get("failureInfo") or {}
    source = manifest.get("input")
    message = {
        "runId": manifest["runId"], "state": manifest["state"], "pipeline": manifest["pipeline"],
        "kind": manifest["kind"], "jobId": manifest["jobId"], "taskId": manifest["taskId"],
        "requestId": manifest.get("requestId"),
        "input": {**source, "contentType": _cut(source.get("contentType"), MAX_CONTENT_TYPE)} if source else None,
        "exitCode": manifest["exitCode"], "result": manifest["result"],
        "failure": {"code": _cut(failure.get("code"), 200), "message": _cut(failure.get("message"), MAX_FAILURE_TEXT)}
        if failure else None,
        "manifest": {"container": manifest_container, "name": manifest_name},
        "completedAt": manifest.get("endTime"),
    }
    names = [o["name"] for o in manifest.get("outputs", [])]
    kept = _fitting(names, message_bytes({**message, "outputs": [], "outputCount": len(names),
                                          "outputsTruncated": True}))
    message.update(outputs=names[:kept], outputCount=len(names))
    if kept < len(names):
        message["outputsTruncated"] = True
    return message


def message_bytes(message: dict) -> int:
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _fitting(names: list[str], base: int) -> int:
    """How many of `names` (in order) fit in the message budget on top of `base` bytes."""
    size = base
    for i, name in enumerate(names):
        size += len(json.dumps(name, ensure_ascii=False).encode("utf-8")) + 1
        if size > MESSAGE_BUDGET_BYTES:
            return i
    return len(names)


def _cut(value, limit: int):
    if not isinstance(value, str) or len(value) <= limit:
        return value
    return value[:limit - 1] + "\u2026"


def record_update(manifest: dict, manifest_name: str) -> dict:
    failure = manifest.get("failureInfo") or {}
    return {
        "exitCode": manifest.get("exitCode"), "result": manifest.get("result"),
        "failureCode": failure.get("code"), "failureMessage": failure.get("message"),
        "startedAt": manifest.get("startTime"), "endedAt": manifest.get("endTime"),
        "durationSeconds": manifest.get("durationSeconds"), "retryCount": manifest.get("retryCount"),
        "manifestBlob": manifest_name, "outputCount": len(manifest.get("outputs", [])),
        "stderrTail": (manifest.get("stderrTail") or "")[-2000:] or None, "notified": False,
    }


RUN_MARKERS = ("/logs/stdout.txt", "/logs/stderr.txt", "/manifest.json")


def split_outputs(container: str, prefix: str, blobs: list[tuple[str, int]]) -> tuple[list[dict], dict]:
    """(outputs, logs) of the run whose output folder is `prefix`, from a listing of everything under it.

    With a path template like `{pipeline}/{input}`, the folder of input `a` contains the folder of input `a/b`;
    blobs under a nested folder that has a run's own logs or manifest belong to that other run and are left out.
    """
    rels = [(name[len(prefix) + 1:], name, size) for name, size in blobs if name.startswith(prefix + "/")]
    nested = {rel[: -len(marker)] for rel, _, _ in rels for marker in RUN_MARKERS
              if rel.endswith(marker) and len(rel) > len(marker)}
    outputs, logs = [], {}
    for rel, name, size in rels:
        if any(rel.startswith(root + "/") for root in nested):
            continue
        entry = {"container": container, "name": name, "size": size}
        if rel in ("logs/stdout.txt", "logs/stderr.txt"):
            logs[rel[5:-4]] = entry
        elif rel != "manifest.json":
            outputs.append(entry)
    return outputs, logs
