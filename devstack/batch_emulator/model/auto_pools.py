"""Auto pools: a job's (or a job schedule's jobSpecification's) ``poolInfo.autoPoolSpecification``.

The pool is created with the job (``poolLifetimeOption: job``) or once for the schedule (``jobschedule``), with
an id made of ``autoPoolIdPrefix`` + ``_`` + a GUID (Batch assigns a unique id and puts the prefix in front of
it); the job shows it in ``executionInfo.poolId`` while ``poolInfo`` keeps the specification as given. When the
lifetime ends (the job completes or is deleted; the schedule completes or is deleted) the pool is deleted unless
``keepAlive`` is true.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from devstack.batch_emulator import errors, validation

LIFETIMES = ("job", "jobschedule")


def pool_key_of(job: dict) -> str:
    """The (lower-case) id of the pool a job runs on: poolInfo.poolId, or the auto pool made for it."""
    return ((job.get("poolInfo") or {}).get("poolId") or (job.get("executionInfo") or {}).get("poolId")
            or "").lower()


@contextmanager
def _prefixed(prefix: str):
    """Re-raise validation errors with the property path as the caller's body has it."""
    try:
        yield
    except errors.BatchError as exc:
        name = exc.values.get("PropertyName")
        if name is not None:
            exc.values["PropertyName"] = prefix + name
        raise


def check_pool_info(info: dict, path: str = "poolInfo", schedule: bool = False) -> None:
    """poolInfo: exactly one of poolId and autoPoolSpecification (a clear 400 naming the property)."""
    validation.check_object(info, path)
    spec = info.get("autoPoolSpecification")
    if info.get("poolId") and spec is not None:
        raise errors.invalid_property(f"{path}.autoPoolSpecification", "...", "Specify either poolId or "
                                      "autoPoolSpecification, not both")
    if info.get("poolId"):
        return
    if spec is None:
        raise errors.missing_property(f"{path}.poolId")
    p = f"{path}.autoPoolSpecification"
    validation.check_object(spec, p)
    if not spec.get("poolLifetimeOption"):
        raise errors.missing_property(f"{p}.poolLifetimeOption")
    lifetime = str(spec["poolLifetimeOption"]).lower()
    if lifetime not in LIFETIMES:
        raise errors.invalid_property(f"{p}.poolLifetimeOption", spec["poolLifetimeOption"],
                                      "Allowed values: job, jobschedule")
    if lifetime == "jobschedule" and not schedule:
        raise errors.invalid_property(f"{p}.poolLifetimeOption", spec["poolLifetimeOption"], "jobschedule is "
                                      "only valid in a job schedule's jobSpecification; use job")
    prefix = spec.get("autoPoolIdPrefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 20
                               or not all(c.isalnum() or c in "-_" for c in prefix)):
        raise errors.invalid_property(f"{p}.autoPoolIdPrefix", prefix, "Up to 20 letters, digits, hyphens and "
                                      "underscores")
    if spec.get("keepAlive") is not None and not isinstance(spec["keepAlive"], bool):
        raise errors.invalid_property(f"{p}.keepAlive", spec["keepAlive"], "Expected true or false")
    pool = spec.get("pool")
    if pool is None:
        raise errors.missing_property(f"{p}.pool")
    validation.check_object(pool, f"{p}.pool")
    if pool.get("id") is not None:
        raise errors.invalid_property(f"{p}.pool.id", pool["id"], "A pool specification has no id; Batch "
                                      "assigns the auto pool's id")
    with _prefixed(f"{p}.pool."):
        validation.check_pool({**pool, "id": "autopool"})


def new_pool_id(spec: dict) -> str:
    prefix = spec.get("autoPoolIdPrefix") or ""
    return f"{prefix}_{uuid.uuid4()}" if prefix else str(uuid.uuid4())


def lifetime(spec: dict) -> str:
    return str(spec.get("poolLifetimeOption") or "job").lower()


class AutoPoolOps:
    """Mixin for the model: create and retire auto pools (the caller holds ``self.lock``)."""

    def create_auto_pool(self, spec: dict, owner: str) -> str:
        pool_id = new_pool_id(spec)
        self.create_pool({**spec["pool"], "id": pool_id})
        return pool_id

    def retire_auto_pool(self, pool_id: str | None, spec: dict | None) -> None:
        """End of the auto pool's lifetime: delete it unless keepAlive."""
        if not pool_id or not spec or spec.get("keepAlive"):
            return
        if pool_id.lower() in self.pools:
            self.delete_pool(pool_id)

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
