"""Auto pools: a job's (or a job schedule's jobSpecification's) ``poolInfo.autoPoolSpecification``.

The pool is created with the job (``poolLifetimeOption: job``) or once for the schedule (``jobschedule``), with
an id made of ``autoPoolIdPrefix`` + ``_`` + a GUID (Batch assigns a unique id and puts the prefix in front of
it); the job shows it in ``executionInfo.poolId`` while ``poolInfo`` keeps the specification as given. When the
lifetime ends (the job completes or is deleted; the schedule completes or is deleted) the pool is deleted unless
``keepAlive`` is true.
"""

from __future__ import annotations

import uuid

from devstack.batch_emulator.model.pools import Pools
from devstack.batch_emulator.model.state import State


def new_pool_id(spec: dict) -> str:
    prefix = spec.get("autoPoolIdPrefix") or ""
    return f"{prefix}_{uuid.uuid4()}" if prefix else str(uuid.uuid4())


def lifetime(spec: dict) -> str:
    return str(spec.get("poolLifetimeOption") or "job").lower()


class AutoPools:
    """Create and retire auto pools through the Pools group (the caller holds the lock)."""

    def __init__(self, state: State, pools: Pools):
        self.state = state
        self.pools = pools

    def create_auto_pool(self, spec: dict, owner: str) -> str:
        pool_id = new_pool_id(spec)
        self.pools.create_pool({**spec["pool"], "id": pool_id})
        return pool_id

    def retire_auto_pool(self, pool_id: str | None, spec: dict | None) -> None:
        """End of the auto pool's lifetime: delete it unless keepAlive."""
        if not pool_id or not spec or spec.get("keepAlive"):
            return
        if pool_id.lower() in self.state.pools:
            self.pools.delete_pool(pool_id)

    def job_pool_ready(self, job: dict, schedule_pool: str | None = None) -> None:
        """Creating a job: for an auto pool make (or, for a schedule's pool, reuse) the pool and record its id."""
        spec = (job.get("poolInfo") or {}).get("autoPoolSpecification")
        if not spec or (job.get("poolInfo") or {}).get("poolId"):
            return
        pool_id = schedule_pool if lifetime(spec) == "jobschedule" and schedule_pool else \
            self.create_auto_pool(spec, job["id"])
        job["executionInfo"] = {**job.get("executionInfo", {}), "poolId": pool_id}

    def job_ended(self, job: dict) -> None:
        """A job completed or is being deleted: a job-lifetime auto pool goes with it."""
        spec = (job.get("poolInfo") or {}).get("autoPoolSpecification")
        if spec and lifetime(spec) == "job" and not job.get("_autoPoolRetired"):
            job["_autoPoolRetired"] = True
            self.retire_auto_pool((job.get("executionInfo") or {}).get("poolId"), spec)
