"""Job schedules: the entities, their state machine and the recurrence that creates their jobs.

Batch's rules, as its job schedule docs give them:

- A job is created at ``doNotRunUntil`` (or at once), then every ``recurrenceInterval``; with no interval, once.
- At most one active job per schedule: when the next run is due while the previous job is still active, no new job
  is made until it ends; with a ``startWindow``, a run that cannot start within the window of its due time is
  skipped (the next one is due one interval later).
- Jobs are named ``<scheduleId>:job-<n>`` and take the ``jobSpecification``; ``executionInfo`` shows
  ``nextRunTime`` and ``recentJob``. Past ``doNotRunAfter``, or once a run-once schedule's job has ended, the schedule
  is ``completed`` (``executionInfo.endTime``).
- Disable stops new jobs (the current one runs on); enable resumes. Terminate ends the active job and completes the
  schedule; delete removes the schedule and all its jobs.

The recurrence is driven by ``tick(now)``, called by the account's scheduler loop about once a second; the clock is
a parameter so the unit tests step through days of recurrences at once. ``recurrenceInterval`` must be at least one
minute, as on Azure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model import auto_pools, validation
from devstack.batch_emulator.model.fields import (
    check_duration,
    check_id,
    check_metadata,
    check_object,
    check_str,
    require,
)
from devstack.batch_emulator.model.state import set_state, touch, wire

KIND = "jobschedule"
MIN_RECURRENCE = 60.0
_SPEC_KEYS = ("priority", "allowTaskPreemption", "maxParallelTasks", "displayName", "usesTaskDependencies",
              "onAllTasksComplete", "onTaskFailure", "networkConfiguration", "constraints", "jobManagerTask",
              "jobPreparationTask", "jobReleaseTask", "commonEnvironmentSettings", "poolInfo", "metadata")


def parse_time(text: str) -> datetime:
    """A client's ISO 8601 date-time (`Z` or an offset, any fraction) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no time zone")
    return value.astimezone(UTC)


def not_found() -> errors.BatchError:
    return errors.BatchError(404, "JobScheduleNotFound", "The specified job schedule does not exist.")


def check_schedule_config(schedule: dict, path: str = "schedule.") -> None:
    check_object(schedule, path.rstrip("."))
    for name in ("doNotRunUntil", "doNotRunAfter"):
        value = schedule.get(name)
        if value is not None:
            try:
                parse_time(value)
            except (TypeError, ValueError):
                raise errors.invalid_property(f"{path}{name}", value, "Expected an ISO 8601 date-time") from None
    check_duration(schedule, "startWindow", path, minimum=MIN_RECURRENCE)
    check_duration(schedule, "recurrenceInterval", path, minimum=MIN_RECURRENCE)


def check_job_specification(spec: dict) -> None:
    """The job rules of POST /jobs, minus the id (the schedule names its jobs)."""
    check_object(spec, "jobSpecification")
    validation.check_job({**spec, "id": "placeholder", "_schedule": True})


def check_add(body: dict) -> None:
    check_object(body, "jobSchedule")
    check_id(body)
    check_str(body, "displayName", max_len=1024)
    check_schedule_config(require(body, "schedule"))
    check_job_specification(require(body, "jobSpecification"))
    check_metadata(body)


class JobSchedules:
    """The account's job schedules, beside the model (same lock, same store)."""

    def __init__(self, model):
        self.model = model
        self.items: dict[str, dict] = {}

    # ---- persistence -----------------------------------------------------------------------------------
    def load(self) -> None:
        with self.model.lock:
            for item in self.model.store.load(KIND):
                self.items[item["id"].lower()] = item

    def _save(self, item: dict) -> None:
        touch(item)
        self.model.store.stage(KIND, item["id"].lower(), item)

    def _get(self, schedule_id: str) -> dict:
        item = self.items.get(schedule_id.lower())
        if item is None:
            raise not_found()
        return item

    # ---- operations ------------------------------------------------------------------------------------
    def add(self, body: dict, now: datetime | None = None) -> dict:
        check_add(body)
        now = now or timeutil.now()
        item = {k: v for k, v in body.items() if k[0] != "_"}
        with self.model.lock:
            if item["id"].lower() in self.items:
                raise errors.BatchError(409, "JobScheduleExists", "The specified job schedule already exists.")
            stamp = timeutil.iso(now)
            item.update({"creationTime": stamp, "state": "active", "stateTransitionTime": stamp, "_runs": 0,
                         "executionInfo": {"nextRunTime": timeutil.iso(self._first_run(item, now))}})
            self._auto_pool(item)
            self._save(item)
            self.items[item["id"].lower()] = item
            self._tick_one(item, now)
            result = wire(item)
        self.model.store.flush()
        return result

    def get(self, schedule_id: str) -> dict:
        with self.model.lock:
            return wire(self._get(schedule_id))

    def list(self) -> list[dict]:
        with self.model.lock:
            return [wire(i) for i in self.items.values()]

    def update(self, schedule_id: str, body: dict, replace: bool, now: datetime | None = None) -> dict:
        """PATCH changes what it names; PUT replaces schedule, jobSpecification and metadata (the absent ones
        are reset). Either applies to jobs created from now on."""
        check_object(body, "jobSchedule")
        if replace:
            check_schedule_config(require(body, "schedule"))
            check_job_specification(require(body, "jobSpecification"))
        else:
            if body.get("schedule") is not None:
                check_schedule_config(body["schedule"])
            if body.get("jobSpecification") is not None:
                check_job_specification(body["jobSpecification"])
        check_metadata(body)
        now = now or timeutil.now()
        with self.model.lock:
            item = self._get(schedule_id)
            self._check_changeable(item)
            for key in ("schedule", "jobSpecification", "metadata"):
                if key in body or replace:
                    item[key] = body.get(key) if body.get(key) is not None else ([] if key == "metadata" else {})
            if "schedule" in body or replace:
                item["executionInfo"] = {**item.get("executionInfo", {}),
                                         "nextRunTime": timeutil.iso(self._first_run(item, now))}
            self._save(item)
            self._tick_one(item, now)
            result = wire(item)
        self.model.store.flush()
        return result

    def disable(self, schedule_id: str) -> None:
        with self.model.lock:
            item = self._get(schedule_id)
            self._check_changeable(item)
            set_state(item, "disabled")
            self._save(item)
        self.model.store.flush()

    def enable(self, schedule_id: str, now: datetime | None = None) -> None:
        with self.model.lock:
            item = self._get(schedule_id)
            self._check_changeable(item)
            set_state(item, "active")
            self._save(item)
            self._tick_one(item, now or timeutil.now())
        self.model.store.flush()

    def terminate(self, schedule_id: str, now: datetime | None = None) -> None:
        with self.model.lock:
            item = self._get(schedule_id)
            self._check_changeable(item)
            set_state(item, "terminating")
            job = self._recent_job(item)
            job_id = job["id"] if job is not None and job["state"] not in ("completed", "deleting") else None
        if job_id:  # outside the lock: ending its tasks may stop containers
            try:
                self.model.terminate_job(job_id, "JobScheduleTerminated")
            except errors.BatchError:
                pass  # it ended meanwhile
        with self.model.lock:
            self._complete(item, now or timeutil.now())
        self.model.store.flush()

    def delete(self, schedule_id: str) -> None:
        with self.model.lock:
            item = self._get(schedule_id)
            set_state(item, "deleting")
            jobs = [j["id"] for j in self.model.jobs.values() if j.get("_schedule") == item["id"].lower()]
        for job_id in jobs:
            try:
                self.model.delete_job(job_id)
            except errors.BatchError:
                pass  # already gone
        with self.model.lock:
            self._retire_auto_pool(item)
            self.items.pop(item["id"].lower(), None)
            self.model.store.stage(KIND, item["id"].lower(), None)
        self.model.store.flush()

    def jobs(self, schedule_id: str) -> list[dict]:
        with self.model.lock:
            key = self._get(schedule_id)["id"].lower()
            return [wire(j) for j in self.model.jobs.values() if j.get("_schedule") == key]

    # ---- recurrence ------------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> None:
        """Create the jobs that are due and complete the schedules that are over."""
        now = now or timeutil.now()
        with self.model.lock:
            for item in list(self.items.values()):
                self._tick_one(item, now)
        self.model.store.flush()

    def _tick_one(self, item: dict, now: datetime) -> None:
        if item["state"] != "active":
            return
        schedule = item.get("schedule") or {}
        info = dict(item.get("executionInfo") or {})
        after = schedule.get("doNotRunAfter")
        job = self._recent_job(item)
        job_active = job is not None and job["state"] not in ("completed", "deleting")
        if info.get("nextRunTime") is None or (after and now >= parse_time(after)):
            if not job_active:
                self._complete(item, now)
            return
        due = parse_time(info["nextRunTime"])
        if now < due or job_active and not schedule.get("startWindow"):
            return
        interval = timeutil.parse_duration(schedule.get("recurrenceInterval") or "")
        window = timeutil.parse_duration(schedule.get("startWindow") or "")
        if window is not None and now > due + timedelta(seconds=window):
            # Batch skips a run that could not start within its window; the next one is due an interval later.
            info["nextRunTime"] = self._next(due, interval, now)
            item["executionInfo"] = info
            self._save(item)
            return self._tick_one(item, now)
        if job_active:
            return
        item["_runs"] = item.get("_runs", 0) + 1
        job_id = f"{item['id']}:job-{item['_runs']}"
        spec = {k: v for k, v in (item.get("jobSpecification") or {}).items() if k in _SPEC_KEYS}
        self.model.create_job({**spec, "id": job_id}, id_checked=True, schedule_pool=item.get("_autoPool"))
        created = self.model.jobs[job_id.lower()]
        created["_schedule"] = item["id"].lower()
        self.model.save_job(created)
        info["recentJob"] = {"id": job_id, "url": f"{self.model.account_url}/jobs/{job_id}"}
        info["nextRunTime"] = self._next(due, interval, now)
        item["executionInfo"] = info
        self._save(item)

    @staticmethod
    def _first_run(item: dict, now: datetime) -> datetime:
        until = (item.get("schedule") or {}).get("doNotRunUntil")
        return max(now, parse_time(until)) if until else now

    @staticmethod
    def _next(due: datetime, interval: float | None, now: datetime) -> str | None:
        """The first run after `now` on the grid due + k * interval; None for a run-once schedule."""
        if not interval:
            return None
        steps = int((now - due).total_seconds() // interval) + 1
        return timeutil.iso(due + timedelta(seconds=steps * interval))

    def _recent_job(self, item: dict) -> dict | None:
        recent = (item.get("executionInfo") or {}).get("recentJob")
        return self.model.jobs.get(recent["id"].lower()) if recent else None

    def _complete(self, item: dict, now: datetime) -> None:
        set_state(item, "completed", timeutil.iso(now))
        info = {k: v for k, v in (item.get("executionInfo") or {}).items() if k != "nextRunTime"}
        item["executionInfo"] = {**info, "endTime": timeutil.iso(now)}
        self._retire_auto_pool(item)
        self._save(item)

    def _auto_pool(self, item: dict) -> None:
        """poolLifetimeOption jobschedule: one auto pool for the schedule, shared by its jobs (auto_pools.py)."""
        spec = ((item.get("jobSpecification") or {}).get("poolInfo") or {}).get("autoPoolSpecification")
        if spec and auto_pools.lifetime(spec) == "jobschedule" and not item.get("_autoPool"):
            item["_autoPool"] = self.model.create_auto_pool(spec, item["id"])

    def _retire_auto_pool(self, item: dict) -> None:
        if item.get("_autoPool") and not item.get("_autoPoolRetired"):
            item["_autoPoolRetired"] = True
            spec = ((item.get("jobSpecification") or {}).get("poolInfo") or {}).get("autoPoolSpecification")
            self.model.retire_auto_pool(item["_autoPool"], spec or {})

    @staticmethod
    def _check_changeable(item: dict) -> None:
        if item["state"] in ("completed", "terminating", "deleting"):
            code = "JobScheduleCompleted" if item["state"] == "completed" else "JobScheduleBeingDeleted" \
                if item["state"] == "deleting" else "JobScheduleBeingTerminated"
            raise errors.conflict(code, f"The specified job schedule is {item['state']}.")
