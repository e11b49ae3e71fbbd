"""Pools: create/get/list/update/delete, resize, the autoscale hooks, and nodes joining and leaving a pool.

Node lifecycle is nodes.py's; taking a node out of its pool first requeues or ends the tasks on it, through the
Scheduling group (scheduling.py).
"""

from __future__ import annotations

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model import validation
from devstack.batch_emulator.model.fields import check_duration, check_metadata, check_object
from devstack.batch_emulator.model.nodes import Nodes
from devstack.batch_emulator.model.scheduling import Scheduling
from devstack.batch_emulator.model.state import State, pool_key_of, run_kills, set_state, touch, wire


class Pools:
    def __init__(self, state: State, nodes: Nodes, scheduling: Scheduling):
        self.state = state
        self.nodes = nodes
        self.scheduling = scheduling

    # ---- pools ---------------------------------------------------------------------------------------------
    def create_pool(self, body: dict) -> dict:
        validation.check_pool(body, self.state.allow_host_access)
        now = timeutil.now_iso()
        pool = {k: v for k, v in body.items() if k[0] != "_"}
        key = pool["id"].lower()
        with self.state.lock:
            if key in self.state.pools:
                raise errors.exists("pool")
            pool.setdefault("resizeTimeout", "PT15M")
            pool.setdefault("taskSlotsPerNode", 1)
            pool.setdefault("enableAutoScale", False)
            pool.setdefault("enableInterNodeCommunication", False)
            pool.setdefault("taskSchedulingPolicy", {"nodeFillType": "spread"})
            if not pool["enableAutoScale"]:
                pool.setdefault("targetDedicatedNodes", 0)
                pool.setdefault("targetLowPriorityNodes", 0)
            else:
                pool.setdefault("autoScaleEvaluationInterval", "PT15M")
                pool["targetDedicatedNodes"] = 0
                pool["targetLowPriorityNodes"] = 0
            pool.update({"creationTime": now, "state": "active", "stateTransitionTime": now,
                         "allocationState": "steady", "allocationStateTransitionTime": now,
                         "currentDedicatedNodes": 0, "currentLowPriorityNodes": 0})
            touch(pool)
            pool["lastModified"] = now
            self.state.pools[key] = pool
            self.state.nodes[key] = {}
            self.reconcile_nodes(key)
            self.state.save_pool(pool)
            result = wire(pool)
        self.state.store.flush()
        return result

    def get_pool(self, pool_id: str) -> dict:
        with self.state.lock:
            return wire(self.state.pool(pool_id))

    def list_pools(self) -> list[dict]:
        with self.state.lock:
            return [wire(p) for p in self.state.pools.values()]

    def delete_pool(self, pool_id: str) -> None:
        with self.state.lock:
            pool = self.state.pool(pool_id)
            key = pool["id"].lower()
            set_state(pool, "deleting")
            kills = []
            for node in list(self.state.nodes.get(key, {}).values()):
                kills += self.remove_node(key, node, "requeue")
            del self.state.pools[key]
            self.state.nodes.pop(key, None)
            self.state.store.stage("pool", key, None)
            self.state.wake()
        run_kills(kills)
        self.state.store.flush()

    def update_pool(self, pool_id: str, body: dict, replace: bool) -> dict:
        check_object(body, "pool")
        with self.state.lock:
            pool = self.state.pool(pool_id)
            if body.get("startTask") is not None:
                validation.check_start_task(body["startTask"], "startTask", self.state.allow_host_access)
            check_metadata(body)
            for key in ("startTask", "metadata", "applicationPackageReferences", "targetNodeCommunicationMode"):
                if key in body or replace:
                    if body.get(key) is None:
                        pool.pop(key, None)
                    else:
                        pool[key] = body[key]
            touch(pool)
            self.state.save_pool(pool)
            result = wire(pool)
        self.state.store.flush()
        return result

    def resize_pool(self, pool_id: str, body: dict) -> None:
        validation.check_resize(body)
        with self.state.lock:
            pool = self.state.pool(pool_id)
            if pool.get("enableAutoScale"):
                raise errors.conflict("AutoScalingEnabled", "The specified pool has automatic scaling enabled: "
                                      "disable it before resizing manually.")
            if pool.get("state") == "deleting":
                raise errors.conflict("PoolBeingDeleted", "The specified pool is being deleted.")
            pool["targetDedicatedNodes"] = body.get("targetDedicatedNodes", pool.get("targetDedicatedNodes", 0))
            pool["targetLowPriorityNodes"] = body.get("targetLowPriorityNodes",
                                                      pool.get("targetLowPriorityNodes", 0))
            if body.get("resizeTimeout"):
                pool["resizeTimeout"] = body["resizeTimeout"]
            touch(pool)
            kills = self.reconcile_nodes(pool["id"].lower(), body.get("nodeDeallocationOption"))
            self.state.save_pool(pool)
        run_kills(kills)
        self.state.store.flush()

    def stop_resize(self, pool_id: str) -> None:
        with self.state.lock:
            pool = self.state.pool(pool_id)
            touch(pool)
            self.state.save_pool(pool)

    def enable_autoscale(self, pool_id: str, formula: str | None, interval: str | None) -> dict:
        with self.state.lock:
            pool = self.state.pool(pool_id)
            if not formula and not pool.get("autoScaleFormula"):
                raise errors.missing_property("autoScaleFormula")
            if interval is not None:
                check_duration({"autoScaleEvaluationInterval": interval}, "autoScaleEvaluationInterval",
                                          "", 300, 168 * 3600)
            pool["enableAutoScale"] = True
            if formula:
                pool["autoScaleFormula"] = formula
            pool["autoScaleEvaluationInterval"] = interval or pool.get("autoScaleEvaluationInterval") or "PT15M"
            pool["_autoscaleEnabledAt"] = timeutil.now_iso()
            touch(pool)
            self.state.save_pool(pool)
            result = wire(pool)
        self.state.store.flush()
        return result

    def disable_autoscale(self, pool_id: str) -> None:
        with self.state.lock:
            pool = self.state.pool(pool_id)
            pool["enableAutoScale"] = False
            for key in ("autoScaleFormula", "autoScaleEvaluationInterval", "autoScaleRun", "_autoscaleEnabledAt"):
                pool.pop(key, None)
            touch(pool)
            self.state.save_pool(pool)
        self.state.store.flush()

    # ---- autoscale interface (used by devstack.batch_emulator.autoscaler) ----------------------------------
    def list_autoscale_pools(self) -> list[dict]:
        """Wire dicts of the pools with enableAutoScale true (thread-safe snapshot)."""
        with self.state.lock:
            return [wire(p) for p in self.state.pools.values() if p.get("enableAutoScale")]

    def pool_metrics(self, pool_id: str) -> dict[str, float]:
        """Current figures an autoscale formula samples for one pool (thread-safe).

        Keys: PendingTasks (active + running), ActiveTasks, RunningTasks, SucceededTasks, FailedTasks over the
        jobs bound to the pool; CurrentDedicatedNodes, CurrentLowPriorityNodes (preempted ones included, as on Batch); PreemptedNodeCount;
        UsableNodeCount (idle + running);
        CPUPercent (busy slots / all slots x 100, an approximation); TaskSlotsPerNode.
        """
        with self.state.lock:
            pool = self.state.pool(pool_id)
            key = pool["id"].lower()
            totals = {"active": 0, "running": 0, "succeeded": 0, "failed": 0}
            for job_key, job in self.state.jobs.items():
                if pool_key_of(job) != key:
                    continue
                if job.get("state") in ("completed", "deleting"):
                    continue
                counts = self.state.counts.get(job_key, {})
                for name in totals:
                    totals[name] += counts.get(name, 0)
            nodes = list(self.state.nodes.get(key, {}).values())
            slots = pool.get("taskSlotsPerNode", 1)
            usable = [n for n in nodes if n.get("state") in ("idle", "running")]
            used = sum(n.get("_used", 0) for n in usable)
            return {
                "PendingTasks": float(totals["active"] + totals["running"]),
                "ActiveTasks": float(totals["active"]),
                "RunningTasks": float(totals["running"]),
                "SucceededTasks": float(totals["succeeded"]),
                "FailedTasks": float(totals["failed"]),
                "CurrentDedicatedNodes": float(sum(1 for n in nodes if n.get("isDedicated"))),
                "CurrentLowPriorityNodes": float(sum(1 for n in nodes if not n.get("isDedicated"))),
                "PreemptedNodeCount": float(sum(1 for n in nodes if n.get("state") == "preempted")),
                "UsableNodeCount": float(len(usable)),
                "CPUPercent": (100.0 * used / (len(usable) * slots)) if usable else 0.0,
                "TaskSlotsPerNode": float(slots),
            }

    def apply_autoscale(self, pool_id: str, target_dedicated: int, target_low_priority: int,
                        node_deallocation_option: str | None, run: dict) -> None:
        """Set the pool's targets from a formula result, record ``run`` as autoScaleRun, add/remove nodes.

        Nodes are removed honouring ``node_deallocation_option`` (requeue, the default; terminate;
        taskcompletion; retaineddata). Thread-safe.
        """
        with self.state.lock:
            pool = self.state.pool(pool_id)
            pool["targetDedicatedNodes"] = max(0, int(target_dedicated))
            pool["targetLowPriorityNodes"] = max(0, int(target_low_priority))
            pool["autoScaleRun"] = run
            touch(pool)
            kills = self.reconcile_nodes(pool["id"].lower(), node_deallocation_option)
            self.state.save_pool(pool)
        run_kills(kills)
        self.state.store.flush()

    def set_autoscale_run(self, pool_id: str, run: dict) -> None:
        """Record the result of an evaluation (e.g. one that failed) without changing the targets."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            pool["autoScaleRun"] = run
            self.state.save_pool(pool)

    # ---- nodes joining and leaving ------------------------------------------------------------------------
    def reconcile_nodes(self, pool_key: str, deallocation: str | None = None) -> list:
        """Add or remove nodes until the pool matches its targets; returns kill callbacks to run unlocked."""
        pool = self.state.pools[pool_key]
        nodes = self.state.nodes[pool_key]
        kills = []
        for dedicated, target in ((True, pool.get("targetDedicatedNodes", 0)),
                                  (False, pool.get("targetLowPriorityNodes", 0))):
            current = [n for n in nodes.values() if n["isDedicated"] == dedicated and not n.get("_leaving")]
            for _ in range(target - len(current)):
                self.nodes.add_node(pool_key, pool, dedicated)
            if len(current) > target:
                order = {"idle": 0, "starting": 1, "waitingforstarttask": 1, "starttaskfailed": 0,
                         "unusable": 0, "preempted": -1, "running": 2}
                victims = sorted(current, key=lambda n: (order.get(n["state"], 1), n.get("_used", 0)))
                for node in victims[: len(current) - target]:
                    kills += self.remove_node(pool_key, node, deallocation or "requeue")
        self.nodes.update_pool_counts(pool_key)
        self.state.wake()
        return kills

    def remove_node(self, pool_key: str, node: dict, option: str) -> list:
        """Take a node out of the pool (caller holds the lock); running tasks per the deallocation option."""
        option = (option or "requeue").lower()
        kills = []
        running = list(node.get("_running", []))
        if running and option in ("taskcompletion", "retaineddata"):
            self.nodes.leave_later(pool_key, node, option)
            return kills
        for job_key, task_key in running:
            task = self.state.tasks.get(job_key, {}).get(task_key)
            if task is None:
                continue
            if option == "terminate":
                kills += self.scheduling.end_task(job_key, task, "TaskEnded", "The task was terminated because its "
                                                  "compute node was removed from the pool.")
            else:
                kills += self.scheduling.requeue_task(job_key, task)
        self.nodes.leave(pool_key, node)
        return kills

    def remove_nodes(self, pool_id: str, node_ids: list[str], option: str | None) -> None:
        with self.state.lock:
            pool = self.state.pool(pool_id)
            key = pool["id"].lower()
            kills = []
            for node_id in node_ids:
                node = self.state.nodes[key].get(node_id)
                if node is None:
                    raise errors.not_found("node")
            for node_id in node_ids:
                node = self.state.nodes[key][node_id]
                if node["isDedicated"]:
                    pool["targetDedicatedNodes"] = max(0, pool.get("targetDedicatedNodes", 0) - 1)
                else:
                    pool["targetLowPriorityNodes"] = max(0, pool.get("targetLowPriorityNodes", 0) - 1)
                kills += self.remove_node(key, node, option or "requeue")
            self.nodes.update_pool_counts(key)
            touch(pool)
            self.state.save_pool(pool)
        run_kills(kills)
        self.state.store.flush()
