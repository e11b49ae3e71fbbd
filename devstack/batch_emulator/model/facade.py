"""BatchModel: the facade the HTTP handlers, the agent, the scheduler loop and the autoscaler call.

It builds the operation groups around one :class:`State` (the azure-batch SDK's shape: operation groups composed
around one shared client), each given the groups it uses, and exposes their public methods under the names the
callers know. Nothing here touches HTTP or containers.

    Nodes(state)                                    nodes.py: node lifecycle, slots, pool node counts
    JobPrep(state, nodes)                           job_prep.py: preparation/release state per node
    Scheduling(state, nodes, job_prep) + .jobs      scheduling.py: assignments, outcomes, requeue, end
    Pools(state, nodes, scheduling)                 pools.py: pools, resize, autoscale, nodes joining/leaving
    AutoPools(state, pools)                         auto_pools.py
    Jobs(state, scheduling, job_prep, auto_pools)   jobs.py: jobs and the rules that end them
    Tasks(state, scheduling)                        tasks.py
    NodePreemption(state, scheduling)               preemption.py

The one dependency that runs back up is Scheduling -> Jobs (a task's outcome can end its job), bound below.
"""

from __future__ import annotations

from pathlib import Path

from devstack.batch_emulator.model.auto_pools import AutoPools
from devstack.batch_emulator.model.job_prep import JobPrep
from devstack.batch_emulator.model.jobs import Jobs
from devstack.batch_emulator.model.nodes import Nodes
from devstack.batch_emulator.model.pools import Pools
from devstack.batch_emulator.model.preemption import NodePreemption
from devstack.batch_emulator.model.scheduling import Scheduling
from devstack.batch_emulator.model.state import State
from devstack.batch_emulator.model.tasks import Tasks
from devstack.batch_emulator.store import Store


class _Shared:
    """A facade attribute that is the State's attribute of the same name (read and written through)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, model, owner=None):
        return self if model is None else getattr(model.state, self.name)

    def __set__(self, model, value) -> None:
        setattr(model.state, self.name, value)


class BatchModel:
    """One account's pools, nodes, jobs and tasks and all their state transitions (see the module docstring).

    The agent reports through ``node_transition`` / ``register_kill`` / ``task_finished`` and the ``prep_*``
    calls; the scheduler loop calls ``claim_assignments``; the autoscaler ``list_autoscale_pools``,
    ``pool_metrics``, ``apply_autoscale`` and ``set_autoscale_run``. All are thread-safe.
    """

    account = _Shared()
    data_dir = _Shared()
    nodes_dir = _Shared()
    store = _Shared()
    lock = _Shared()
    changed = _Shared()
    schedule_needed = _Shared()
    allow_host_access = _Shared()
    active_job_quota = _Shared()
    account_url = _Shared()
    pools = _Shared()
    nodes = _Shared()
    jobs = _Shared()
    tasks = _Shared()
    on_node_created = _Shared()
    on_node_removed = _Shared()
    on_job_release = _Shared()

    def __init__(self, account: str, data_dir: Path, store: Store | None = None):
        self.state = state = State(account, data_dir, store)
        self.job_schedules = None  # JobSchedules (job_schedules.py), set by the service
        nodes = Nodes(state)
        job_prep = JobPrep(state, nodes)
        scheduling = Scheduling(state, nodes, job_prep)
        pools = Pools(state, nodes, scheduling)
        auto_pools = AutoPools(state, pools)
        jobs = Jobs(state, scheduling, job_prep, auto_pools)
        scheduling.jobs = jobs
        tasks = Tasks(state, scheduling)
        preemption = NodePreemption(state, scheduling)
        self._nodes, self._pools = nodes, pools
        self.layout, self.save_job = state.layout, state.save_job
        # pools and autoscale
        self.create_pool, self.get_pool, self.list_pools = pools.create_pool, pools.get_pool, pools.list_pools
        self.delete_pool, self.update_pool, self.resize_pool = pools.delete_pool, pools.update_pool, pools.resize_pool
        self.stop_resize, self.remove_nodes = pools.stop_resize, pools.remove_nodes
        self.enable_autoscale, self.disable_autoscale = pools.enable_autoscale, pools.disable_autoscale
        self.list_autoscale_pools, self.pool_metrics = pools.list_autoscale_pools, pools.pool_metrics
        self.apply_autoscale, self.set_autoscale_run = pools.apply_autoscale, pools.set_autoscale_run
        self.create_auto_pool, self.retire_auto_pool = auto_pools.create_auto_pool, auto_pools.retire_auto_pool
        # nodes
        self.list_nodes, self.get_node, self.node_internal = nodes.list_nodes, nodes.get_node, nodes.node_internal
        self.node_transition, self.set_node_scheduling = nodes.node_transition, nodes.set_node_scheduling
        self.preempt_node, self.preemptible_nodes = preemption.preempt_node, preemption.preemptible_nodes
        self.preempt_if_possible, self.recover_preempted = preemption.preempt_if_possible, preemption.recover_preempted
        # jobs
        self.create_job, self.get_job, self.list_jobs = jobs.create_job, jobs.get_job, jobs.list_jobs
        self.update_job, self.disable_job, self.enable_job = jobs.update_job, jobs.disable_job, jobs.enable_job
        self.terminate_job, self.delete_job, self.task_counts = jobs.terminate_job, jobs.delete_job, jobs.task_counts
        self.check_job_deadlines = jobs.check_job_deadlines
        self.job_prep_status = job_prep.job_prep_status
        # tasks
        self.create_task, self.add_task_collection = tasks.create_task, tasks.add_task_collection
        self.get_task, self.list_tasks, self.task_paths = tasks.get_task, tasks.list_tasks, tasks.task_paths
        self.update_task, self.terminate_task = tasks.update_task, tasks.terminate_task
        self.reactivate_task, self.delete_task = tasks.reactivate_task, tasks.delete_task
        # the scheduler loop and the agent
        self.claim_assignments, self.attempt_current = scheduling.claim_assignments, scheduling.attempt_current
        self.register_kill, self.record_container = scheduling.register_kill, scheduling.record_container
        self.task_finished = scheduling.task_finished
        self.prep_update, self.prep_info, self.prep_task_go = job_prep.prep_update, job_prep.prep_info, \
            job_prep.prep_task_go

    def recover(self) -> list[str]:
        """Start-up: rebuild the state from the store (running tasks requeued, as on a lost node), load the job
        schedules, drop the nodes that were leaving, hand the others to ``on_node_created`` to boot again and
        bring every pool back to its targets. Returns the containers of the lost attempts, for the agent to
        remove."""
        containers = self.state.load()
        if self.job_schedules is not None:
            self.job_schedules.load()
        with self.state.lock:
            for pool_key in self.state.nodes:
                self._nodes.recover_pool(pool_key)
                if pool_key in self.state.pools:
                    self._pools.reconcile_nodes(pool_key)
        self.state.store.flush()
        return containers
