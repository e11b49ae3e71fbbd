"""Completion, on the task's own event: a finished Batch task becomes a manifest, a run record and one message.

Every task uploads a small completion marker as its last OutputFile (uploadCondition taskCompletion) to
`<MARKER_CONTAINER>/<job id>/<task id>`, a container no pipeline output can reach. The marker's blob-created event
triggers functions/task_marker.py, which reads the task once. Batch does not order uploads and marks the task
completed only once all of them are done, so the marker only says "look now": a task that still shows running is
looked at again through a delayed message on CHECK_QUEUE (functions/task_check.py), never by sleeping. A task that
completed is recorded by `Completer.finish` (shared with the safety net, shared.reconcile), then deleted (unless
TASK_RETENTION keeps it, or a merge still depends on it: the safety net takes those), and its marker removed.
A merge's manifest and record also say what it was given (shared.requests.merge_inputs): `partial`,
`inputsExpected`, `inputsFailed` and the failed inputs' names.

Recording is exactly-once per run: the move of the record to succeeded/failed is guarded by its ETag, and only the
worker that won it writes the message (shared.notify). Recording is also bounded: every failed attempt (from a
marker event, a delayed look or the safety net) is counted on the run's inbox entry (`recordAttempts`), and the
attempt that reaches MAX_RECORD_ATTEMPTS fails the run with code `NotRecorded`, the last error as the reason and a
failure message, so that one run that cannot be recorded never holds up its task's or its job's cleanup.
"""

from __future__ import annotations

import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from shared import ids, requests
from shared.app_context import AppContext
from shared.batch_client import call
from shared.manifest import (
    STDERR_TAIL_BYTES,
    build_manifest,
    completion_message,
    record_update,
    split_outputs,
    task_outcome,
)
from shared.messages import CheckMessage
from shared.notify import notify_completion
from shared.outcomes import fail_run
from shared.records import TERMINAL, now_iso
from shared.task_spec import marker_name

log = logging.getLogger("eventbatch.completion")
TASK_FIELDS = ["id", "state", "executionInfo", "stateTransitionTime", "dependsOn"]
ADVANCE_TRIES = 5  # moves of the record to its end state, each after reading it again (a concurrent update)
MAX_CHECKS = 12  # delayed looks at a task whose marker came before its state changed; then the safety net
MAX_RECORD_ATTEMPTS = 5  # failed attempts to record a completed task before its run is failed (NotRecorded)


def pipeline_of_job(ctx: AppContext, job_id: str) -> str | None:
    """The pipeline a job of ours belongs to (job ids are <prefix>-<pipeline>-<period>), None for other jobs."""
    prefix = ctx.settings.job_prefix + "-"
    if not job_id.startswith(prefix) or ids.job_period_start(job_id, ctx.settings.job_prefix) is None:
        return None
    return job_id[len(prefix):].rsplit("-", 1)[0] or None


def check_delay(attempt: int) -> int:
    """Seconds before look number `attempt + 1` at a task that is not completed yet: 1, 1, 2, 4, ... 30."""
    return int(min(30, max(1, 2 ** (attempt - 1))))


@dataclass(frozen=True)
class CheckOutcome:
    status: str  # recorded | known | pending | gone | foreign | invalid
    run_id: str | None = None


class Completer:
    """Records completed tasks: manifest blob, record moved to succeeded/failed, one message."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def finish(self, job_id: str, pipeline: str, task: dict, record: dict | None = None) -> tuple[str, dict | None]:
        """Record one completed task: ('recorded' now | 'known' earlier or by another worker | 'foreign' no
        record, the record). `record`: the run record if the caller has just read it. Raises when this attempt
        failed, unless it was the last one allowed: then the run is failed (NotRecorded) and counts as recorded."""
        task_id = task["id"]
        record = record if record is not None else self.ctx.runs.get(pipeline, task_id)
        if record is None:
            return "foreign", None
        if record.get("state") in TERMINAL:
            return "known", record
        try:
            return self._record(job_id, pipeline, task, record)
        except Exception as exc:
            failed = self._attempt_failed(job_id, pipeline, task_id, exc)
            if failed is None:
                raise
            return "recorded", failed

    def _attempt_failed(self, job_id: str, pipeline: str, task_id: str, exc: Exception) -> dict | None:
        """Count a failed recording attempt; at the last one, fail the run and return its record."""
        entry = self.ctx.runs.inbox_entry(pipeline, task_id) or {}
        attempts = int(entry.get("recordAttempts") or 0) + 1
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()[:400]
        if attempts < MAX_RECORD_ATTEMPTS:
            self.ctx.runs.touch_inbox(pipeline, task_id, {"recordAttempts": attempts, "lastError": error})
            log.warning("recording task %s/%s failed (attempt %d of %d): %s", job_id, task_id, attempts,
                        MAX_RECORD_ATTEMPTS, error)
            return None
        reason = (f"its task {job_id}/{task_id} completed but could not be recorded after {attempts} attempts; "
                  f"last error: {error}")
        if not fail_run(self.ctx, pipeline, task_id, reason, "NotRecorded", job_id=job_id):
            return None  # recorded meanwhile by another worker
        return self.ctx.runs.get(pipeline, task_id)

    def _record(self, job_id: str, pipeline: str, task: dict, record: dict) -> tuple[str, dict | None]:
        task_id = task["id"]
        outcome = task_outcome(task)
        container = record.get("outputContainer")
        prefix = record.get("outputPrefix")
        outputs, logs = self._outputs(container, prefix)
        tail = self._stderr_tail(container, prefix) if outcome["state"] == "failed" else None
        manifest = build_manifest(record, job_id, task_id, outcome, outputs, logs, tail, now_iso())
        merged = requests.merge_inputs(self.ctx, record) if record.get("kind") == "merge" else {}
        manifest.update(merged)  # a merge says what it was given: partial, inputsExpected, inputsFailed, failedInputs
        manifest_name = f"{prefix}/manifest.json"
        self._write_manifest(container, manifest_name, manifest)
        fields = {**record_update(manifest, manifest_name), "jobId": job_id,
                  **{k: v for k, v in merged.items() if k != "failedInputs"}}
        for _ in range(ADVANCE_TRIES):
            moved = self.ctx.runs.advance(pipeline, task_id, outcome["state"], fields, record=record)
            if moved is not None:
                message = completion_message(manifest, container, manifest_name)
                if merged:
                    message.update(partial=merged["partial"], inputsFailed=merged["inputsFailed"])
                notify_completion(self.ctx, moved, message)
                return "recorded", moved
            # The record changed since it was read. Another worker recorded the run (and sends its message), or
            # it only moved forward meanwhile (the safety net's move to `running`): that must not keep the result
            # out, or the task is deleted as recorded and the run later fails TaskGone.
            record = self.ctx.runs.get(pipeline, task_id)
            if record is None or record.get("state") in TERMINAL:
                return "known", record
        raise RuntimeError(f"run {task_id} kept changing while its result was recorded; the next look retries")

    def _write_manifest(self, container: str, name: str, manifest: dict) -> None:
        data = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
        settings = ContentSettings(content_type="application/json")
        client = self.ctx.storage.blob.get_blob_client(container, name)
        try:
            client.upload_blob(data, overwrite=True, content_settings=settings)
        except ResourceNotFoundError:
            log.warning("output container %s is missing; creating it to record the result", container)
            with contextlib.suppress(ResourceExistsError):
                self.ctx.storage.blob.create_container(container)
            client.upload_blob(data, overwrite=True, content_settings=settings)

    def _outputs(self, container: str, prefix: str) -> tuple[list[dict], dict]:
        cc = self.ctx.storage.blob.get_container_client(container)
        try:
            listing = [(b.name, b.size) for b in cc.list_blobs(name_starts_with=prefix + "/")]
        except ResourceNotFoundError:
            # The output container is gone (Batch then failed the upload too): record the run without outputs
            # rather than failing this task on every attempt.
            listing = []
        return split_outputs(container, prefix, listing)

    def _stderr_tail(self, container: str, prefix: str) -> str | None:
        client = self.ctx.storage.blob.get_blob_client(container, f"{prefix}/logs/stderr.txt")
        try:
            size = client.get_blob_properties().size
            offset = max(0, size - STDERR_TAIL_BYTES)
            data = client.download_blob(offset=offset, length=size - offset).readall() if size else b""
        except ResourceNotFoundError:
            return None
        return data.decode("utf-8", "replace")


def check_task(ctx: AppContext, job_id: str, task_id: str, attempt: int = 1) -> CheckOutcome:
    """Look at one task because its marker appeared (attempt 1) or a delayed look came due (attempt > 1)."""
    pipeline = pipeline_of_job(ctx, job_id)
    if pipeline is None or ctx.config.pipeline(pipeline) is None:
        log.warning("marker for %s/%s names no job of this app; ignoring it", job_id, task_id)
        return CheckOutcome("foreign")
    completer = Completer(ctx)
    # The task is read beside its record. The outputs are listed only once the task shows completed: Batch
    # uploads in no particular order and flips the state when every upload is done.
    with ThreadPoolExecutor(max_workers=1) as pool:
        task_read = pool.submit(lambda: call(lambda: ctx.batch.get_task(job_id, task_id, select=TASK_FIELDS)
                                             .as_dict(), f"get task {job_id}/{task_id}"))
        record = ctx.runs.get(pipeline, task_id)
        try:
            task = task_read.result()
        except ResourceNotFoundError:
            # Deleted already: recorded by an earlier look (a repeated event) or by the safety net.
            delete_marker(ctx, job_id, task_id)
            return CheckOutcome("gone", task_id)
    if task.get("state") != "completed":
        if attempt >= MAX_CHECKS:
            log.warning("task %s/%s still %s after %d looks; the safety net will record it", job_id, task_id,
                        task.get("state"), attempt)
            return CheckOutcome("pending", task_id)
        ctx.messenger.check(CheckMessage(job_id, task_id, attempt + 1).to_message(), delay=check_delay(attempt))
        return CheckOutcome("pending", task_id)
    status, record = completer.finish(job_id, pipeline, task, record=record)
    if status in ("recorded", "known") and _deletable(ctx, task, record):
        with contextlib.suppress(ResourceNotFoundError):
            call(lambda: ctx.batch.delete_task(job_id, task_id), f"delete task {task_id}")
    delete_marker(ctx, job_id, task_id)
    return CheckOutcome(status, task_id)


def _deletable(ctx: AppContext, task: dict, record: dict | None) -> bool:
    """Delete right away what nothing else needs: no retention, no merge waiting for it, nothing it waited for
    (merge and barrier tasks take their dependencies along; the safety net does that)."""
    if ctx.settings.task_retention > timedelta(0):
        return False
    if (task.get("dependsOn") or {}).get("taskIds"):
        return False
    return not (record or {}).get("mergeTaskId")


def parse_marker_name(name: str) -> tuple[str, str] | None:
    job_id, sep, task_id = name.partition("/")
    if not sep or not job_id or not task_id or "/" in task_id:
        return None
    return job_id, task_id


def delete_marker(ctx: AppContext, job_id: str, task_id: str) -> None:
    client = ctx.storage.blob.get_blob_client(ctx.settings.marker_container, marker_name(job_id, task_id))
    with contextlib.suppress(ResourceNotFoundError):
        client.delete_blob()
