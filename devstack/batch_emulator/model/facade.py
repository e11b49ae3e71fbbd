"""The Batch service model: one account's pools, nodes, jobs and tasks and all their state transitions.

The HTTP layer calls the public methods here and gets wire dicts back; the agent (node start-up and task runs)
reports through ``node_transition``/``register_kill``/``task_finished``; the scheduler calls
``claim_assignments``. Nothing here touches HTTP or containers.

Autoscale interface (thread-safe, used by ``devstack.batch_emulator.autoscaler.Autoscaler``):
``list_autoscale_pools()``, ``pool_metrics(pool_id)``, ``apply_autoscale(pool_id, target_dedicated,
target_low_priority, node_deallocation_option, run)``, ``set_autoscale_run(pool_id, run)``.
"""

from __future__ import annotations

from devstack.batch_emulator.auto_pools import AutoPoolOps
from devstack.batch_emulator.job_ops import JobOps
from devstack.batch_emulator.job_prep import JobPrepOps
from devstack.batch_emulator.model_base import ModelBase
from devstack.batch_emulator.pool_ops import PoolOps
from devstack.batch_emulator.preemption import PreemptionOps
from devstack.batch_emulator.schedule_ops import Assignment, Outcome, ScheduleOps
from devstack.batch_emulator.task_ops import TaskOps

__all__ = ["BatchModel", "Assignment", "Outcome"]


class BatchModel(AutoPoolOps, PoolOps, JobOps, JobPrepOps, TaskOps, ScheduleOps, PreemptionOps, ModelBase):
    """See the module docstring; state lives in :class:`ModelBase`, operations in the mixins."""
