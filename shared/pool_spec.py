"""Pool (from pipelines.yaml) -> the Batch pool create body (wire JSON). Pure.

Container-enabled (dockerCompatible) pools with the pipeline images prefetched, so a task starts without a pull;
registries by username/password (local registry) or the pool's identity (ACR on Azure). Autoscale uses
shared.autoscale_formula.default_formula unless the file gives a formula of its own.
"""

from __future__ import annotations

from shared.autoscale_formula import default_formula
from shared.durations import format_duration
from shared.pipeline_users import AutoUser
from shared.pipelines import Pool


def formula_of(pool: Pool) -> str:
    """The pool's autoscale formula: its own, or the default one for its node limits."""
    if pool.scale.formula and pool.scale.formula != "default":
        return pool.scale.formula
    return default_formula(pool.scale.max_dedicated_nodes, pool.scale.max_spot_nodes, pool.task_slots_per_node)


def build_pool(pool: Pool) -> dict:
    container = {"type": "dockerCompatible", "containerImageNames": list(pool.images)}
    if pool.registries:
        container["containerRegistries"] = [r.wire() for r in pool.registries]
    body = {
        "id": pool.id,
        "vmSize": pool.vm_size,
        "virtualMachineConfiguration": {
            "imageReference": dict(pool.image_reference),
            "nodeAgentSKUId": pool.node_agent_sku_id,
            "containerConfiguration": container,
        },
        "taskSlotsPerNode": pool.task_slots_per_node,
        "taskSchedulingPolicy": {"nodeFillType": "spread"},
    }
    if pool.start_task_command:
        body["startTask"] = {"commandLine": pool.start_task_command, "waitForSuccess": pool.start_task_wait,
                             "userIdentity": (pool.start_task_user or AutoUser()).wire()}
    if pool.scale.mode == "autoscale":
        body.update(enableAutoScale=True, autoScaleFormula=formula_of(pool),
                    autoScaleEvaluationInterval=format_duration(pool.scale.evaluation_interval))
    else:
        body.update(enableAutoScale=False, targetDedicatedNodes=pool.scale.dedicated_nodes,
                    targetLowPriorityNodes=pool.scale.spot_nodes)
    return body
