"""The service model's shared state: entities, the lock, persistence and the rebuild from the store at start-up.

One re-entrant lock guards all pools, nodes, jobs and tasks: every operation is a few dict updates, so a single
lock keeps transitions atomic and is far cheaper than the HTTP round trip. Nested wire objects
(``executionInfo``, ``startTaskInfo``...) are replaced, never mutated in place, so shallow copies handed to the
HTTP layer stay consistent after the lock is released. The operation groups (pools.py, nodes.py, scheduling.py,
jobs.py, tasks.py, job_prep.py, auto_pools.py, preemption.py) are all given this one object.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.layout import NodeLayout
from devstack.batch_emulator.store import Store


def wire(entity: dict) -> dict:
    """The client-visible part of an entity (internal bookkeeping keys start with ``_``)."""
    return {k: v for k, v in entity.items() if k[0] != "_"}


def set_state(entity: dict, state: str, when: str | None = None) -> None:
    when = when or timeutil.now_iso()
    if entity.get("state") != state:
        if "state" in entity:
            entity["previousState"] = entity["state"]
            entity["previousStateTransitionTime"] = entity.get("stateTransitionTime", when)
        entity["state"] = state
        entity["stateTransitionTime"] = when


def touch(entity: dict) -> None:
    entity["eTag"] = timeutil.new_etag()
    entity["lastModified"] = timeutil.now_iso()


def pool_key_of(job: dict) -> str:
    """The (lower-case) id of the pool a job runs on: poolInfo.poolId, or the auto pool made for it."""
    return ((job.get("poolInfo") or {}).get("poolId") or (job.get("executionInfo") or {}).get("poolId")
            or "").lower()


def run_kills(kills: list) -> None:
    """Stop the attempts a transition cut short (called without the lock held)."""
    for kill in kills:
        try:
            kill()
        except Exception:  # noqa: BLE001 - a container that is already gone is fine
            pass


def _requeue_lost(task: dict, now: str) -> None:
    """A task that was running when the emulator stopped: back to active, requeueCount + 1 (the node was lost)."""
    info = dict(task.get("executionInfo") or {})
    info["requeueCount"] = info.get("requeueCount", 0) + 1
    info["lastRequeueTime"] = now
    for k in ("startTime", "containerInfo"):
        info.pop(k, None)
    task["executionInfo"] = info
    task.pop("_node", None)
    task.pop("_container", None)
    task["_attempt"] = task.get("_attempt", 0) + 1
    set_state(task, "active", now)
    touch(task)


class State:
    """Pools, nodes, jobs and tasks of one account, with the lock that guards them and their store."""

    def __init__(self, account: str, data_dir: Path, store: Store | None = None):
        self.account = account
        self.data_dir = Path(data_dir)
        self.nodes_dir = self.data_dir / "nodes"
        self.store = store or Store(self.data_dir / "state.sqlite")
        self.allow_host_access = False  # --allow-host-access: containerRunOptions may reach into the host
        self.active_job_quota: int | None = None  # --active-job-quota: the account's active job limit
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.pools: dict[str, dict] = {}
        self.nodes: dict[str, dict[str, dict]] = {}
        self.jobs: dict[str, dict] = {}
        self.tasks: dict[str, dict[str, dict]] = {}
        self.active: dict[str, dict[str, None]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.kill_callbacks: dict[tuple[str, str], tuple[int, Callable[[], None]]] = {}
        self.schedule_needed = True
        self.seq = 0
        self.account_url = ""
        # Set by the service: called with (pool_key, node_id) when a node must be (re)started by the agent.
        self.on_node_created: Callable[[str, str], None] = lambda pool_key, node_id: None
        self.on_node_removed: Callable[[str, dict], None] = lambda pool_key, node: None
        # Set by the agent: (job wire dict, [(pool_key, node_id)]) -> None, runs the job release tasks.
        self.on_job_release: Callable[[dict, list], None] | None = None

    # ---- lookups (404 when missing; the caller holds the lock) ----------------------------------------------
    def pool(self, pool_id: str) -> dict:
        pool = self.pools.get(pool_id.lower())
        if pool is None:
            raise errors.not_found("pool")
        return pool

    def job(self, job_id: str) -> dict:
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise errors.not_found("job")
        return job

    def task(self, job_id: str, task_id: str) -> tuple[str, dict]:
        """(job key, task) of a task."""
        job = self.job(job_id)
        key = job["id"].lower()
        task = self.tasks[key].get(task_id.lower())
        if task is None:
            raise errors.not_found("task")
        return key, task

    # ---- persistence -------------------------------------------------------------------------------------
    def save_pool(self, pool: dict) -> None:
        self.store.stage("pool", pool["id"].lower(), pool)

    def save_node(self, pool_key: str, node: dict) -> None:
        self.store.stage("node", f"{pool_key}/{node['id']}", {**node, "_pool": pool_key})

    def forget_node(self, pool_key: str, node_id: str) -> None:
        self.store.stage("node", f"{pool_key}/{node_id}", None)

    def save_job(self, job: dict) -> None:
        self.store.stage("job", job["id"].lower(), job)

    def save_task(self, job_key: str, task: dict) -> None:
        self.store.stage("task", f"{job_key}/{task['id'].lower()}", {**task, "_job": job_key})

    def wake(self) -> None:
        """Tell the scheduler something changed (caller holds the lock)."""
        self.schedule_needed = True
        self.changed.notify_all()

    @staticmethod
    def remove_dirs_later(paths) -> None:
        """Delete task/job folders in the background (a stopped container may still be letting go of them)."""
        paths = sorted({str(p) for p in paths})
        if not paths:
            return

        def work():
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
        threading.Thread(target=work, name="remove-dirs", daemon=True).start()

    def layout(self, pool_key: str, node_id: str) -> NodeLayout:
        return NodeLayout(self.nodes_dir / pool_key / node_id)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # ---- counts ------------------------------------------------------------------------------------------
    def count_move(self, job_key: str, task: dict, old: str | None, new: str | None) -> None:
        c = self.counts.setdefault(job_key, {"active": 0, "running": 0, "completed": 0, "succeeded": 0,
                                             "failed": 0})
        if old:
            c["running" if old == "preparing" else old] -= 1
            if old == "completed":
                c["succeeded" if task.get("executionInfo", {}).get("result") == "success" else "failed"] -= 1
        if new:
            c["running" if new == "preparing" else new] += 1
            if new == "completed":
                c["succeeded" if task.get("executionInfo", {}).get("result") == "success" else "failed"] += 1

    def set_task_state(self, job_key: str, task: dict, state: str, when: str | None = None) -> None:
        old = task.get("state")
        if old == state:
            return
        if old == "completed":
            self.count_move(job_key, task, "completed", None)
            old = None
        self.count_move(job_key, task, old, state)
        set_state(task, state, when)
        active = self.active.setdefault(job_key, {})
        if state == "active":
            active[task["id"].lower()] = None
        else:
            active.pop(task["id"].lower(), None)

    # ---- start-up ----------------------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Rebuild the state from the store; tasks that were running are requeued (the node was lost) and every
        node is starting again. Returns the containers of those lost attempts."""
        now = timeutil.now_iso()
        with self.lock:
            for pool in self.store.load("pool"):
                self.pools[pool["id"].lower()] = pool
                self.nodes[pool["id"].lower()] = {}
            for node in self.store.load("node"):
                pool_key = node.pop("_pool")
                if pool_key in self.nodes:
                    self.nodes[pool_key][node["id"]] = node
            for job in self.store.load("job"):
                key = job["id"].lower()
                self.jobs[key] = job
                self.tasks[key] = {}
                self.active[key] = {}
            containers = self._load_tasks(now)
            for pool_key, nodes in self.nodes.items():
                for node in nodes.values():
                    node["_used"] = 0
                    node["_running"] = []
                    node["runningTasksCount"] = 0
                    node["runningTaskSlotsCount"] = 0
                    if node.get("_leaving"):
                        continue
                    set_state(node, "starting", now)
                    self.save_node(pool_key, node)
        self.store.flush()
        return containers

    def _load_tasks(self, now: str) -> list[str]:
        containers = []
        rows = self.store.load("task")
        rows.sort(key=lambda t: t.get("_seq", 0))
        for task in rows:
            job_key = task.pop("_job")
            if job_key not in self.jobs:
                continue
            self.seq = max(self.seq, task.get("_seq", 0))
            state = task.get("state", "active")
            if state in ("running", "preparing"):
                if task.get("_container"):
                    containers.append(task["_container"])
                _requeue_lost(task, now)
                self.save_task(job_key, task)
                state = "active"
            self.tasks[job_key][task["id"].lower()] = task
            self.count_move(job_key, task, None, state)
            if state == "active":
                self.active[job_key][task["id"].lower()] = None
        return containers
