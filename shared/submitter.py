"""Bulk, idempotent submission to Batch: pools and jobs on demand, tasks through addTaskCollection.

- Up to 100 tasks and under 1 MB per addTaskCollection (the service limits); a 413 splits the chunk.
- TaskExists counts as success: task IDs are deterministic, so a resubmission after a crash or a duplicate event
  is harmless.
- Per-task server errors are resubmitted alone with back-off; whole-call throttling/5xx is retried by
  batch_client.call (Retry-After honoured).
- Client errors become rejections of exactly the tasks that caused them (a 400 for the whole call is bisected
  until the offending task is alone).
- A job per pipeline and period (ids.job_id) and the pool are created when missing; JobExists/PoolExists are
  success, and what exists is remembered per process so steady state costs no extra calls.
- A new job carries its pipeline's priority and a maxWallClockTime, and is created only while the account's
  active jobs stay under the app's share of the quota (shared.job_limits); Batch's
  ActiveJobAndScheduleQuotaReached (a 409, like JobExists) is that same JobQuotaReached, never taken for success.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from azure.batch import models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from shared.batch_client import backoff, call, error_code
from shared.job_limits import QUOTA_CODE, JobLimits, JobQuotaReached, quota_message
from shared.pipeline_preparation import job_preparation_task
from shared.pipelines import PipelineConfig
from shared.pool_spec import build_pool
from shared.redaction import redacted
from shared.task_spec import TaskSpec

log = logging.getLogger("eventbatch.submit")
MAX_TASKS_PER_CALL = 100
MAX_BYTES_PER_CALL = 900_000  # the service limit is 1 MB for the whole request body; keep a margin
SERVER_ERROR_ROUNDS = 6


@dataclass
class SubmitOutcome:
    accepted: dict[str, str] = field(default_factory=dict)  # task id -> "added" | "exists"
    rejected: dict[str, str] = field(default_factory=dict)  # task id -> reason
    unsubmitted: dict[str, str] = field(default_factory=dict)  # task id -> last server error (try again later)
    calls: int = 0


def chunk_specs(specs: Sequence[TaskSpec], max_tasks: int = MAX_TASKS_PER_CALL,
                max_bytes: int = MAX_BYTES_PER_CALL) -> list[list[TaskSpec]]:
    chunks: list[list[TaskSpec]] = []
    current: list[TaskSpec] = []
    size = 0
    for spec in specs:
        n = spec.size + 1
        if current and (len(current) >= max_tasks or size + n > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(spec)
        size += n
    if current:
        chunks.append(current)
    return chunks


def _details(values: list) -> str:
    """Batch's error details for a person; a PropertyValue is the refused value itself (an environment value, a
    URL with its SAS), so only its size is told."""
    shown = []
    for v in values:
        if isinstance(v, dict):
            value = redacted(v.get("value") or "") if v.get("key") == "PropertyValue" else v.get("value")
            shown.append(f"{v.get('key')}: {value}")
    return "; ".join(shown)


def _message(exc: HttpResponseError) -> str:
    err = getattr(exc, "error", None)
    text = getattr(err, "message", None) or str(exc)
    return text.splitlines()[0][:500]


class Submitter:
    def __init__(self, client, config: PipelineConfig, *, create_missing_pools: bool = True, sleep=time.sleep,
                 retry_budget: float = 120.0, limits: JobLimits | None = None):
        self.client = client
        self.limits = limits or JobLimits()
        self.retry_budget = retry_budget
        self.config = config
        self.create_missing_pools = create_missing_pools
        self.sleep = sleep
        self._pools: set[str] = set()
        self._jobs: set[str] = set()
        self._lock = threading.Lock()

    def _call(self, fn, what: str):
        """A pool or job call, retried within the same budget as the task adds (an outage then costs one budget
        per attempt, not two minutes per call)."""
        return call(fn, what, budget=self.retry_budget, sleep=self.sleep)

    # ---- pools and jobs ----------------------------------------------------------------------------------
    def ensure_pool(self, pool_id: str) -> None:
        if pool_id in self._pools:
            return
        if not self._pool_exists(pool_id):
            if not self.config.pools[pool_id].enabled:
                raise RuntimeError(f"pool {pool_id} has enabled: false in pipelines.yaml: it is not created")
            if not self.create_missing_pools:
                raise RuntimeError(f"pool {pool_id} does not exist and CREATE_MISSING_POOLS is false; create it "
                                   "(azd up) or set CREATE_MISSING_POOLS=true")
            body = build_pool(self.config.pools[pool_id])
            try:
                self._call(lambda: self.client.create_pool(models.BatchPoolCreateOptions(body)), "create pool")
                log.info("created pool %s", pool_id)
            except ResourceExistsError:
                pass
        with self._lock:
            self._pools.add(pool_id)

    def _pool_exists(self, pool_id: str) -> bool:
        try:  # GET with $select rather than HEAD: a 404 then carries a Batch error body the SDK can read
            self._call(lambda: self.client.get_pool(pool_id, select=["id", "state"]), "get pool")
            return True
        except ResourceNotFoundError:
            return False

    def ensure_job(self, job_id: str, pipeline_name: str) -> None:
        if job_id in self._jobs:
            return
        pipeline = self.config.pipelines[pipeline_name]
        self.ensure_pool(pipeline.pool)
        body = {"id": job_id, "poolInfo": {"poolId": pipeline.pool}, "usesTaskDependencies": pipeline.merge is not None,
                "onAllTasksComplete": "noaction", "priority": pipeline.priority,
                "metadata": [{"name": "eventbatch-pipeline", "value": pipeline_name}]}
        if pipeline.max_concurrent_tasks is not None:  # Batch's own cap too: instances that admit at once never
            body["maxParallelTasks"] = pipeline.max_concurrent_tasks  # run more (the extra wait `active`)
        constraints = self.limits.constraints(pipeline)
        if constraints is not None:
            body["constraints"] = constraints
        if pipeline.preparation is not None:  # once per node before the pipeline's tasks (pipeline_preparation)
            body["jobPreparationTask"] = job_preparation_task(pipeline.preparation, pipeline)
        active = self.active_jobs()
        if job_id.lower() not in active:  # another worker may have made this period's job: then no quota matters
            self.limits.check(len(active) + self.active_schedules(), job_id)
            try:
                self._call(lambda: self.client.create_job(models.BatchJobCreateOptions(body)), "create job")
                log.info("created job %s (priority %d)", job_id, pipeline.priority)
            except ResourceExistsError as exc:
                if error_code(exc) == QUOTA_CODE:
                    raise JobQuotaReached(quota_message(job_id, f"Batch answered {QUOTA_CODE}")) from None
        with self._lock:
            self._jobs.add(job_id)

    def active_jobs(self) -> set[str]:
        """The ids (lower case) of the account's active jobs: one listing. Called only when this process meets a job
        it has not seen (once per pipeline and period)."""
        jobs = self._call(lambda: list(self.client.list_jobs(filter="state eq 'active'", select=["id"])),
                          "list active jobs")
        return {(j["id"] if isinstance(j, dict) else j.id).lower() for j in jobs}

    def active_schedules(self) -> int:
        """The account's active job schedules, which the quota counts with the jobs (the app makes none)."""
        return len(self._call(lambda: list(self.client.list_job_schedules(filter="state eq 'active'",
                                                                          select=["id"])), "list job schedules"))

    def forget_job(self, job_id: str) -> None:
        with self._lock:
            self._jobs.discard(job_id)

    # ---- tasks -------------------------------------------------------------------------------------------
    def submit(self, job_id: str, specs: Sequence[TaskSpec]) -> SubmitOutcome:
        """Add `specs` to the job in as few calls as the limits allow; never raises for per-task problems."""
        outcome = SubmitOutcome()
        unique = list({s.task_id: s for s in specs}.values())
        pending = unique
        for round_ in range(SERVER_ERROR_ROUNDS):
            retry: list[TaskSpec] = []
            chunks = chunk_specs(pending)
            for i, chunk in enumerate(chunks):
                before = len(outcome.unsubmitted)
                retry.extend(self._submit_chunk(job_id, chunk, outcome))
                if len(outcome.unsubmitted) - before == len(chunk):
                    # Batch is unavailable (its retry budget is spent): do not wait that long for every chunk.
                    for rest in chunks[i + 1:]:
                        for spec in rest:
                            outcome.unsubmitted[spec.task_id] = "not tried: Batch unavailable"
                    retry = []
                    break
            if not retry:
                break
            pending = retry
            self.sleep(backoff(round_))
        else:
            for spec in pending:
                outcome.unsubmitted.setdefault(spec.task_id, "server error")
        for task_id in outcome.accepted:
            outcome.unsubmitted.pop(task_id, None)
        return outcome

    def _add(self, job_id: str, chunk: Sequence[TaskSpec], outcome: SubmitOutcome):
        # The wire JSON as a plain mapping: the SDK serializes it with json.dumps as it would the model, and
        # building BatchTaskGroup from it first costs about 0.4 ms of CPU per task (80 % of the whole add).
        group = {"value": [s.body for s in chunk]}

        def once():
            outcome.calls += 1
            return self.client.create_task_collection(job_id, group)

        return call(once, f"add {len(chunk)} tasks to {job_id}", budget=self.retry_budget, sleep=self.sleep)

    def _submit_chunk(self, job_id: str, chunk: list[TaskSpec], outcome: SubmitOutcome) -> list[TaskSpec]:
        """Submit one chunk; returns the tasks to resubmit after a per-task server error."""
        try:
            result = self._add(job_id, chunk, outcome)
        except ResourceNotFoundError:
            self.forget_job(job_id)  # deleted under us (cleanup raced a late submission): create it again
            self.ensure_job(job_id, chunk[0].pipeline)
            result = self._add(job_id, chunk, outcome)
        except HttpResponseError as exc:
            if exc.status_code == 413 or error_code(exc) == "RequestBodyTooLarge":
                if len(chunk) == 1:
                    outcome.rejected[chunk[0].task_id] = "the task is larger than Batch accepts in one request"
                    return []
            elif exc.status_code is None or exc.status_code >= 500 or exc.status_code in (408, 429):
                for spec in chunk:
                    outcome.unsubmitted[spec.task_id] = f"{exc.status_code} {error_code(exc) or ''}".strip()
                return []
            elif len(chunk) == 1:
                outcome.rejected[chunk[0].task_id] = f"Batch refused the task: {error_code(exc)}: {_message(exc)}"
                return []
            half = len(chunk) // 2
            return (self._submit_chunk(job_id, chunk[:half], outcome)
                    + self._submit_chunk(job_id, chunk[half:], outcome))
        by_id = {s.task_id: s for s in chunk}
        retry = []
        for item in result.get("value") or []:
            task_id = item.get("taskId")
            status = (item.get("status") or "").lower()
            error = item.get("error") or {}
            code = error.get("code")
            if status == "success":
                outcome.accepted[task_id] = "added"
            elif code == "TaskExists":
                outcome.accepted[task_id] = "exists"
            elif status == "servererror" and task_id in by_id:
                retry.append(by_id[task_id])
            else:
                text = (error.get("message") or {}).get("value") or ""
                details = _details(error.get("values") or [])
                outcome.rejected[task_id] = f"Batch refused the task: {code}: {text} {details}".strip()
        answered = {item.get("taskId") for item in result.get("value") or []}
        retry.extend(s for s in chunk if s.task_id not in answered)  # the service must answer every task
        return retry
