"""The reconciler: completed Batch tasks -> manifest, run record, completion/failure message; then cleanup.

One tick costs one jobs listing plus one filtered, $select-ed task listing per active job (paged at 1000), however
many tasks there are. Each completed task is finished exactly once: the run record's move to succeeded/failed is
guarded by its ETag (the winner writes the message) and `notified` records that the message went out, so a crash
between the two is repaired on the next tick. Recorded tasks are deleted (TASK_RETENTION=PT0S) or kept for the
retention; jobs of past periods with nothing left are deleted, so listings stay short and the active-job quota is
never reached.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from shared import ids
from shared.batch_client import call
from shared.context import AppContext
from shared.manifest import (
    STDERR_TAIL_BYTES,
    build_manifest,
    completion_message,
    record_update,
    split_outputs,
    task_outcome,
)
from shared.records import TERMINAL, now_iso

log = logging.getLogger("eventbatch.reconcile")
TASK_FIELDS = ["id", "state", "executionInfo", "stateTransitionTime", "dependsOn"]
WORKERS = 8


@dataclass
class ReconcileResult:
    recorded: list[str] = field(default_factory=list)
    running: int = 0
    deleted_tasks: int = 0
    deleted_jobs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    batch_calls: int = 0


class Reconciler:
    def __init__(self, ctx: AppContext, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.ctx = ctx
        self.clock = clock
        self._running_seen: set[str] = set()
        # Tasks recorded and announced but still in Batch (retention, or fan-out tasks waiting for their merge):
        # remembered so that each tick does not read their records again.
        self._known: dict[str, dict] = {}

    @property
    def batch(self):
        return self.ctx.batch

    def _pipeline_of(self, job_id: str) -> str | None:
        prefix = self.ctx.settings.job_prefix + "-"
        if not job_id.startswith(prefix) or ids.job_period_start(job_id, self.ctx.settings.job_prefix) is None:
            return None
        return job_id[len(prefix):].rsplit("-", 1)[0]

    def tick(self) -> ReconcileResult:
        result = ReconcileResult()
        prefix = self.ctx.settings.job_prefix + "-"
        jobs = call(lambda: list(self.batch.list_jobs(filter=f"startswith(id,'{prefix}')", select=["id", "state"])),
                    "list jobs")
        result.batch_calls += 1
        for job in jobs:
            job_id = job["id"]
            pipeline = self._pipeline_of(job_id)
            if pipeline is None:
                continue
            clean = True
            if job.get("state") in ("active", "terminating", "completed", "disabled"):
                clean = self._reconcile_job(job_id, pipeline, result)
            if clean:
                self._cleanup_job(job_id, job.get("state"), result)
        return result

    # ---- one job -----------------------------------------------------------------------------------------
    def _reconcile_job(self, job_id: str, pipeline: str, result: ReconcileResult) -> bool:
        try:
            tasks = call(lambda: [t.as_dict() for t in self.batch.list_tasks(
                job_id, filter="state eq 'running' or state eq 'completed'", select=TASK_FIELDS,
                max_results=1000)], f"list tasks of {job_id}")
        except ResourceNotFoundError:
            return False
        result.batch_calls += 1
        completed = [t for t in tasks if t.get("state") == "completed"]
        for t in tasks:
            if t.get("state") == "running" and t["id"] not in self._running_seen:
                self._mark_running(pipeline, t)
                result.running += 1
        ok = True
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            outcomes = list(pool.map(lambda t: self._safe_finish(job_id, pipeline, t), completed))
            deletions = []
            finished = {t["id"] for t, (status, _) in zip(completed, outcomes, strict=True)
                        if status in ("recorded", "known")}
            for task, (status, record) in zip(completed, outcomes, strict=True):
                if status == "error":
                    ok = False
                    result.errors.append(task["id"])
                    continue
                if status == "recorded":
                    result.recorded.append(task["id"])
                if status not in ("recorded", "known"):
                    continue
                # A task that something waits for (mergeTaskId: a merge or barrier task) stays until that one is
                # recorded, which then takes it along; a merge whose dependencies vanished would wait forever.
                deps = (task.get("dependsOn") or {}).get("taskIds") or []
                if deps and not all(d in finished or d in self._known for d in deps):
                    continue  # a dependency is not recorded yet: next tick
                keep_self = bool((record or {}).get("mergeTaskId"))
                if deps or not keep_self:
                    deletions.append((task, deps, keep_self))
            for count in pool.map(lambda d: self._delete_if_due(job_id, *d), deletions):
                result.deleted_tasks += count
                result.batch_calls += count
        return ok

    def _mark_running(self, pipeline: str, task: dict) -> None:
        started = (task.get("executionInfo") or {}).get("startTime")
        if self.ctx.runs.advance(pipeline, task["id"], "running", {"startedAt": str(started) if started else None}):
            log.info("run %s is running", task["id"])
        self._running_seen.add(task["id"])

    def _safe_finish(self, job_id: str, pipeline: str, task: dict) -> tuple[str, dict | None]:
        try:
            return self.finish(job_id, pipeline, task)
        except Exception:  # noqa: BLE001 - one bad task must not stop the others; retried next tick
            log.exception("recording task %s/%s failed", job_id, task.get("id"))
            return "error", None

    def finish(self, job_id: str, pipeline: str, task: dict) -> tuple[str, dict | None]:
        """Record one completed task: ('recorded' now | 'known' earlier | 'foreign' no record, the record)."""
        task_id = task["id"]
        self._running_seen.discard(task_id)
        if task_id in self._known:
            return "known", self._known[task_id]
        record = self.ctx.runs.get(pipeline, task_id)
        if record is None:
            return "foreign", None
        if record.get("state") in TERMINAL:
            if not record.get("notified") and record.get("state") != "rejected":
                self._notify(pipeline, task_id, record)
            self._known[task_id] = {"mergeTaskId": record.get("mergeTaskId")}
            return "known", record
        outcome = task_outcome(task)
        container = record.get("outputContainer")
        prefix = record.get("outputPrefix")
        outputs, logs = self._outputs(container, prefix)
        tail = self._stderr_tail(container, prefix) if outcome["state"] == "failed" else None
        manifest = build_manifest(record, job_id, task_id, outcome, outputs, logs, tail, now_iso())
        manifest_name = f"{prefix}/manifest.json"
        self._write_manifest(container, manifest_name, manifest)
        fields = {**record_update(manifest, manifest_name), "jobId": job_id,
                  "manifest": json.dumps(completion_message(manifest, container, manifest_name),
                                         ensure_ascii=False)[:30000]}
        moved = self.ctx.runs.advance(pipeline, task_id, outcome["state"], fields, record=record)
        if moved is None:
            return "known", record  # another reconciler recorded it first
        self._notify(pipeline, task_id, moved)
        self._known[task_id] = {"mergeTaskId": moved.get("mergeTaskId")}
        return "recorded", moved

    def _notify(self, pipeline: str, task_id: str, record: dict) -> None:
        message = json.loads(record["manifest"]) if record.get("manifest") else {
            "runId": task_id, "state": record.get("state"), "pipeline": pipeline}
        self.ctx.messenger.completed(message)
        self.ctx.runs.merge(pipeline, task_id, {"notified": True})

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
            # rather than failing this task on every tick.
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

    # ---- cleanup -----------------------------------------------------------------------------------------
    def _delete_if_due(self, job_id: str, task: dict, also: list[str], keep_self: bool = False) -> int:
        """Delete a recorded task (unless keep_self) and the recorded tasks it waited for, once the retention has
        passed; returns the number of delete calls."""
        retention = self.ctx.settings.task_retention
        if retention > timedelta(0):
            end = (task.get("executionInfo") or {}).get("endTime")
            try:
                ended = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
            except ValueError:
                return 0
            if self.clock() - ended < retention:
                return 0
        calls = 0
        for task_id in [*also, *([] if keep_self else [task["id"]])]:
            try:
                calls += 1
                call(lambda tid=task_id: self.batch.delete_task(job_id, tid), f"delete task {task_id}")
            except ResourceNotFoundError:
                pass
            self._known.pop(task_id, None)
        return calls

    def _cleanup_job(self, job_id: str, state: str | None, result: ReconcileResult) -> None:
        start = ids.job_period_start(job_id, self.ctx.settings.job_prefix)
        length = timedelta(hours=1) if "t" in job_id.rsplit("-", 1)[-1] else timedelta(days=1)
        if start is None or self.clock() < start + length + self.ctx.settings.job_retention:
            return
        try:
            counts = call(lambda: self.batch.get_job_task_counts(job_id), f"task counts of {job_id}")
            result.batch_calls += 1
            c = counts["taskCounts"]
            if c["active"] or c["running"]:
                return
            if c["completed"] and self.clock() < start + length + self.ctx.settings.job_retention + \
                    self.ctx.settings.task_retention:
                return
            call(lambda: self.batch.begin_delete_job(job_id), f"delete job {job_id}")
            result.batch_calls += 1
            self.ctx.submitter.forget_job(job_id)
            result.deleted_jobs.append(job_id)
            log.info("deleted finished job %s (state %s)", job_id, state)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            log.warning("cleanup of job %s: %s", job_id, exc)


_reconciler: Reconciler | None = None


def reconcile(ctx: AppContext) -> ReconcileResult:
    global _reconciler
    if _reconciler is None or _reconciler.ctx is not ctx:
        _reconciler = Reconciler(ctx)
    return _reconciler.tick()
