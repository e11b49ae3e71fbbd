"""The limits of the jobs the submitter creates: the account's active job quota, and each job's maxWallClockTime.

Active jobs. A Batch account holds at most BATCH_ACTIVE_JOB_QUOTA active jobs and job schedules (Azure's default is
100); past it a job add answers 409 ActiveJobAndScheduleQuotaReached. The app creates a job per pipeline and period,
so it counts the account's active jobs and job schedules (a listing of each, `$select=id`) before it creates one
and refuses, with
JobQuotaReached, once ACTIVE_JOB_QUOTA_SHARE of the quota is in use: the rest stays free for whatever else uses
the account. Batch's own refusal becomes the same error. The runs wait on the submit queue's back-off
(shared.submission) with the reason recorded, and the safety net deletes the jobs of past periods, which frees
the quota again.

Job wall clock. Every job gets `constraints.maxWallClockTime`, so a job whose tasks can never run (a pool that
never gets a node) ends; Batch then terminates it (MaxWallClockTimeExpiry) and the safety net fails its unfinished
runs with that reason. JOB_MAX_WALL_CLOCK sets it; by default (`auto`) it is sized for the job's pipeline: the
job's period (a job takes tasks for a day or an hour) plus the longest life of one of its tasks
(maxWallClockTime x (1 + retries)) plus an hour for a node to come up. A pipeline that retries without limit
(retries: -1) gets no job limit unless JOB_MAX_WALL_CLOCK sets one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from shared.durations import format_duration
from shared.pipelines import Pipeline

NODE_MARGIN = timedelta(hours=1)
QUOTA_CODE = "ActiveJobAndScheduleQuotaReached"


class JobQuotaReached(RuntimeError):
    """The app may not create another job now: the active job quota (its share of it) is in use."""


@dataclass(frozen=True)
class JobLimits:
    quota: int = 100  # BATCH_ACTIVE_JOB_QUOTA
    share: float = 0.8  # ACTIVE_JOB_QUOTA_SHARE
    wall_clock: timedelta | None = None  # JOB_MAX_WALL_CLOCK; None: sized per pipeline
    period: str = "day"  # JOB_PERIOD

    @classmethod
    def from_settings(cls, settings) -> JobLimits:
        return cls(settings.batch_active_job_quota, settings.active_job_quota_share, settings.job_max_wall_clock,
                   settings.job_period)

    @property
    def allowed(self) -> int:
        """How many active jobs the app lets the account have before it stops creating them."""
        return max(1, math.floor(self.quota * self.share))

    def job_wall_clock(self, pipeline: Pipeline) -> timedelta | None:
        if self.wall_clock is not None:
            return self.wall_clock
        if pipeline.retries < 0:
            return None
        period = timedelta(days=1) if self.period == "day" else timedelta(hours=1)
        longest = pipeline.max_wall_clock_time * (1 + pipeline.retries)
        if pipeline.merge is not None:
            longest *= 2  # the merge runs after its fan-out (same limits)
        return period + longest + NODE_MARGIN

    def constraints(self, pipeline: Pipeline) -> dict | None:
        limit = self.job_wall_clock(pipeline)
        return None if limit is None else {"maxWallClockTime": format_duration(limit)}

    def check(self, active: int, job_id: str) -> None:
        """Raise JobQuotaReached when creating `job_id` would pass the share of the quota."""
        if active >= self.allowed:
            raise JobQuotaReached(quota_message(job_id, f"{active} active jobs and job schedules in the account, the "
                                                        "app's share is "
                                                        f"{self.allowed} ({self.share:g} of {self.quota})"))


def quota_message(job_id: str, detail: str) -> str:
    return (f"active job quota reached: job {job_id} was not created ({detail}); the runs wait and are retried "
            "as finished jobs are deleted (JOB_RETENTION), or raise BATCH_ACTIVE_JOB_QUOTA / "
            "ACTIVE_JOB_QUOTA_SHARE after a quota increase")
