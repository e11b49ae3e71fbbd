"""Pools and nodes: create/get/list/delete, resize, autoscale hooks, node lifecycle transitions."""

from __future__ import annotations

import hashlib
import itertools

from devstack.batch_emulator import errors, timeutil, validation
from devstack.batch_emulator.auto_pools import pool_key_of
from devstack.batch_emulator.model_base import set_state, touch, wire

_node_counter = itertools.count(1)


class PoolOps:
    # ---- pools ---------------------------------------------------------------------------------------------
    def create_pool(self, body: dict) -> dict:
        validation.check_pool(body, self.allow_host_access)
        now = timeutil.now_iso()
        pool = {k: v for k, v in body.items() if k[0] != "_"}
        key = pool["id"].lower()
        with self.lock:
            if key in self.pools:
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
            self.pools[key] = pool
            self.nodes[key] = {}
            self._reconcile_nodes(key)
            self.save_pool(pool)
            result = wire(pool)
        self.store.flush()
        return result

    def _pool(self, pool_id: str) -> dict:
        pool = self.pools.get(pool_id.lower())
        if pool is None:
            raise errors.not_found("pool")
        return pool

    def get_pool(self, pool_id: str) -> dict:
        with self.lock:
            return wire(self._pool(pool_id))

    def list_pools(self) -> list[dict]:
        with self.lock:
            return [wire(p) for p in self.pools.values()]

    def delete_pool(self, pool_id: str) -> None:
        with self.lock:
            pool = self._pool(pool_id)
            key = pool["id"].lower()
            set_state(pool, "deleting")
            kills = []
            for node in list(self.nodes.get(key, {}).values()):
                kills += self._remove_node(key, node, "requeue")
            del self.pools[key]
            self.nodes.pop(key, None)
            self.store.stage("pool", key, None)
            self.wake()
        self._run_kills(kills)
        self.store.flush()

    def update_pool(self, pool_id: str, body: dict, replace: bool) -> dict:
        validation.check_object(body, "pool")
        with self.lock:
            pool = self._pool(pool_id)
            if body.get("startTask") is not None:
                validation.check_start_task(body["startTask"], "startTask", self.allow_host_access)
            validation.check_metadata(body)
            for key in ("startTask", "metadata", "applicationPackageReferences", "targetNodeCommunicationMode"):
                if key in body or replace:
                    if body.get(key) is None:
                        pool.pop(key, None)
                    else:
                        pool[key] = body[key]
            touch(pool)
            self.save_pool(pool)
            result = wire(pool)
        self.store.flush()
        return result

    def resize_pool(self, pool_id: str, body: dict) -> None:
        validation.check_resize(body)
        with self.lock:
            pool = self._pool(pool_id)
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
            kills = self._reconcile_nodes(pool["id"].lower(), body.get("nodeDeallocationOption"))
            self.save_pool(pool)
        self._run_kills(kills)
        self.store.flush()

    def stop_resize(self, pool_id: str) -> None:
        with self.lock:
            pool = self._pool(pool_id)
            touch(pool)
            self.save_pool(pool)

    def enable_autoscale(self, pool_id: str, formula: str | None, interval: str | None) -> dict:
        with self.lock:
            pool = self._pool(pool_id)
            if not formula and not pool.get("autoScaleFormula"):
                raise errors.missing_property("autoScaleFormula")
            if interval is not None:
                validation.check_duration({"autoScaleEvaluationInterval": interval}, "autoScaleEvaluationInterval",
                                          "", 300, 168 * 3600)
            pool["enableAutoScale"] = True
            if formula:
                pool["autoScaleFormula"] = formula
            pool["autoScaleEvaluationInterval"] = interval or pool.get("autoScaleEvaluationInterval") or "PT15M"
            pool["_autoscaleEnabledAt"] = timeutil.now_iso()
            touch(pool)
            self.save_pool(pool)
            result = wire(pool)
        self.store.flush()
        return result

    def disable_autoscale(self, pool_id: str) -> None:
        with self.lock:
            pool = self._pool(pool_id)
            pool["enableAutoScale"] = False
            for key in ("autoScaleFormula", "autoScaleEvaluationInterval", "autoScaleRun", "_autoscaleEnabledAt"):
                pool.pop(key, None)
            touch(pool)
            self.save_pool(pool)
        self.store.flush()

    # ---- autoscale interface (used by devstack.batch_emulator.autoscaler) ----------------------------------
    def list_autoscale_pools(self) -> list[dict]:
        """Wire dicts of the pools with enableAutoScale true (thread-safe snapshot)."""
        with self.lock:
            return [wire(p) for p in self.pools.values() if p.get("enableAutoScale")]

    def pool_metrics(self, pool_id: str) -> dict[str, float]:
        """Current figures an autoscale formula samples for one pool (thread-safe).

        Keys: PendingTasks (active + running), ActiveTasks, RunningTasks, SucceededTasks, FailedTasks over the
        jobs bound to the pool; CurrentDedicatedNodes, CurrentLowPriorityNodes (preempted ones included, as on Batch); PreemptedNodeCount;
        UsableNodeCount (idle + running);
        CPUPercent (busy slots / all slots x 100, an approximation); TaskSlotsPerNode.
        """
        with self.lock:
            pool = self._pool(pool_id)
            key = pool["id"].lower()
            totals = {"active": 0, "running": 0, "succeeded": 0, "failed": 0}
            for job_key, job in self.jobs.items():
                if pool_key_of(job) != key:
                    continue
                if job.get("state") in ("completed", "deleting"):
                    continue
                counts = self.counts.get(job_key, {})
                for name in totals:
                    totals[name] += counts.get(name, 0)
            nodes = list(self.nodes.get(key, {}).values())
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
        with self.lock:
            pool = self._pool(pool_id)
            pool["targetDedicatedNodes"] = max(0, int(target_dedicated))
            pool["targetLowPriorityNodes"] = max(0, int(target_low_priority))
            pool["autoScaleRun"] = run
            touch(pool)
            kills = self._reconcile_nodes(pool["id"].lower(), node_deallocation_option)
            self.save_pool(pool)
        self._run_kills(kills)
        self.store.flush()

    def set_autoscale_run(self, pool_id: str, run: dict) -> None:
        """Record the result of an evaluation (e.g. one that failed) without changing the targets."""
        with self.lock:
            pool = self._pool(pool_id)
            pool["autoScaleRun"] = run
            self.save_pool(pool)

    # ---- nodes ---------------------------------------------------------------------------------------------
    def list_nodes(self, pool_id: str) -> list[dict]:
        with self.lock:
            pool = self._pool(pool_id)
            return [wire(n) for n in self.nodes[pool["id"].lower()].values()]

    def get_node(self, pool_id: str, node_id: str) -> dict:
        with self.lock:
            pool = self._pool(pool_id)
            node = self.nodes[pool["id"].lower()].get(node_id)
            if node is None:
                raise errors.not_found("node")
            return wire(node)

    def node_internal(self, pool_key: str, node_id: str) -> dict | None:
        """A copy of a node including bookkeeping (for the agent)."""
        with self.lock:
            node = self.nodes.get(pool_key, {}).get(node_id)
            pool = self.pools.get(pool_key)
            if node is None or pool is None:
                return None
            return {"node": dict(node), "pool": dict(pool)}

    def _new_node(self, pool: dict, dedicated: bool) -> dict:
        now = timeutil.now_iso()
        stamp = timeutil.now().strftime("%Y%m%dt%H%M%Sz")
        digest = int(hashlib.sha1(f"{self.data_dir}/{pool['id']}".encode()).hexdigest()[:8], 16) % 10**10
        existing = self.nodes.get(pool["id"].lower(), {})
        node_id = f"tvm-{digest}_{next(_node_counter)}-{stamp}"
        while node_id in existing:  # the counter restarts with the process; ids must stay unique in a pool
            node_id = f"tvm-{digest}_{next(_node_counter)}-{stamp}"
        node = {
            "id": node_id, "state": "starting", "schedulingState": "enabled", "stateTransitionTime": now,
            "allocationTime": now, "lastBootTime": now, "ipAddress": "127.0.0.1",
            "affinityId": f"TVM:{node_id}", "vmSize": pool.get("vmSize"), "totalTasksRun": 0,
            "totalTasksSucceeded": 0, "runningTasksCount": 0, "runningTaskSlotsCount": 0,
            "isDedicated": dedicated, "nodeAgentInfo": {"version": "1.12.0.0-emulator", "lastUpdateTime": now},
            "virtualMachineInfo": {"imageReference": (pool.get("virtualMachineConfiguration") or {})
                                   .get("imageReference", {})},
            "_used": 0, "_running": [],
        }
        if pool.get("startTask"):
            node["startTask"] = pool["startTask"]
        return node

    def _reconcile_nodes(self, pool_key: str, deallocation: str | None = None) -> list:
        """Add or remove nodes until the pool matches its targets; returns kill callbacks to run unlocked."""
        pool = self.pools[pool_key]
        nodes = self.nodes[pool_key]
        kills = []
        for dedicated, target in ((True, pool.get("targetDedicatedNodes", 0)),
                                  (False, pool.get("targetLowPriorityNodes", 0))):
            current = [n for n in nodes.values() if n["isDedicated"] == dedicated and not n.get("_leaving")]
            for _ in range(target - len(current)):
                node = self._new_node(pool, dedicated)
                nodes[node["id"]] = node
                self.save_node(pool_key, node)
                self.on_node_created(pool_key, node["id"])
            if len(current) > target:
                order = {"idle": 0, "starting": 1, "waitingforstarttask": 1, "starttaskfailed": 0,
                         "unusable": 0, "preempted": -1, "running": 2}
                victims = sorted(current, key=lambda n: (order.get(n["state"], 1), n.get("_used", 0)))
                for node in victims[: len(current) - target]:
                    kills += self._remove_node(pool_key, node, deallocation or "requeue")
        self._update_pool_counts(pool_key)
        self.wake()
        return kills

    def _update_pool_counts(self, pool_key: str) -> None:
        pool = self.pools[pool_key]
        nodes = [n for n in self.nodes[pool_key].values() if not n.get("_leaving")]
        pool["currentDedicatedNodes"] = sum(1 for n in nodes if n["isDedicated"])
        pool["currentLowPriorityNodes"] = sum(1 for n in nodes if not n["isDedicated"])
        alloc = "steady"
        if pool["currentDedicatedNodes"] != pool.get("targetDedicatedNodes", 0) or (
                pool["currentLowPriorityNodes"] != pool.get("targetLowPriorityNodes", 0)):
            alloc = "resizing"
        if any(n.get("_leaving") for n in self.nodes[pool_key].values()):
            alloc = "resizing"
        if pool.get("allocationState") != alloc:
            pool["allocationState"] = alloc
            pool["allocationStateTransitionTime"] = timeutil.now_iso()
        self.save_pool(pool)

    def _remove_node(self, pool_key: str, node: dict, option: str) -> list:
        """Take a node out of the pool (caller holds the lock); running tasks per the deallocation option."""
        option = (option or "requeue").lower()
        kills = []
        running = list(node.get("_running", []))
        if running and option in ("taskcompletion", "retaineddata"):
            node["_leaving"] = option
            set_state(node, "leavingpool")
            self.save_node(pool_key, node)
            return kills
        for job_key, task_key in running:
            task = self.tasks.get(job_key, {}).get(task_key)
            if task is None:
                continue
            if option == "terminate":
                kills += self._end_task(job_key, task, "TaskEnded", "The task was terminated because its compute "
                                        "node was removed from the pool.")
            else:
                kills += self._requeue_task(job_key, task)
        set_state(node, "leavingpool")
        self.nodes[pool_key].pop(node["id"], None)
        self.store.stage("node", f"{pool_key}/{node['id']}", None)
        self.on_node_removed(pool_key, dict(node))
        return kills

    def node_transition(self, pool_key: str, node_id: str, state: str, **fields) -> bool:
        """Move a node to ``state`` (agent callback); False when the node is gone."""
        with self.lock:
            node = self.nodes.get(pool_key, {}).get(node_id)
            if node is None:
                return False
            if node.get("_leaving") and state not in ("leavingpool",):
                return True
            if node.get("state") == "preempted":  # a boot that was under way when the node was preempted
                return True
            for key, value in fields.items():
                if value is None:
                    node.pop(key, None)
                else:
                    node[key] = value
            if state == "idle" and node.get("_used"):
                state = "running"
            set_state(node, state)
            self.save_node(pool_key, node)
            self.wake()
            return True

    def set_node_scheduling(self, pool_id: str, node_id: str, enabled: bool) -> None:
        with self.lock:
            pool = self._pool(pool_id)
            node = self.nodes[pool["id"].lower()].get(node_id)
            if node is None:
                raise errors.not_found("node")
            node["schedulingState"] = "enabled" if enabled else "disabled"
            self.save_node(pool["id"].lower(), node)
            self.wake()

    def remove_nodes(self, pool_id: str, node_ids: list[str], option: str | None) -> None:
        with self.lock:
            pool = self._pool(pool_id)
            key = pool["id"].lower()
            kills = []
            for node_id in node_ids:
                node = self.nodes[key].get(node_id)
                if node is None:
                    raise errors.not_found("node")
            for node_id in node_ids:
                node = self.nodes[key][node_id]
                if node["isDedicated"]:
                    pool["targetDedicatedNodes"] = max(0, pool.get("targetDedicatedNodes", 0) - 1)
                else:
                    pool["targetLowPriorityNodes"] = max(0, pool.get("targetLowPriorityNodes", 0) - 1)
                kills += self._remove_node(key, node, option or "requeue")
            self._update_pool_counts(key)
            touch(pool)
            self.save_pool(pool)
        self._run_kills(kills)
        self.store.flush()

    def _release_slot(self, task: dict, job_key: str) -> None:
        """Free the node slots a task held (caller holds the lock)."""
        where = task.pop("_node", None)
        if not where:
            return
        pool_key, node_id = where
        node = self.nodes.get(pool_key, {}).get(node_id)
        if node is None:
            return
        ref = [job_key, task["id"].lower()]
        if ref in node["_running"]:
            node["_running"].remove(ref)
            node["_used"] = max(0, node["_used"] - task.get("requiredSlots", 1))
        node["runningTasksCount"] = len(node["_running"])
        node["runningTaskSlotsCount"] = node["_used"]
        if node.get("_leaving") and not node["_running"]:
            self.nodes[pool_key].pop(node_id, None)
            self.store.stage("node", f"{pool_key}/{node_id}", None)
            self.on_node_removed(pool_key, dict(node))
            if pool_key in self.pools:
                self._update_pool_counts(pool_key)
            return
        if node["state"] == "running" and not node["_running"]:
            set_state(node, "idle")
        self.save_node(pool_key, node)
