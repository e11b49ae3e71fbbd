"""The app's default Batch pool autoscale formula: nodes for the tasks queued or running, zero when idle.

Pure text generation, no imports from devstack: this module is deployed with the function app and its output is
set as the pool's autoScaleFormula (infra and the local emulator alike). It was chosen with the local simulator
(``eventbatch autoscale simulate``, figures in docs/autoscale.md):

- It sizes the pool to ``ceil(pending / slots_per_node)`` where pending = $PendingTasks (active + running), read
  from the newest sample, so a burst is answered at the next evaluation and an idle pool goes to zero nodes.
  Averaging over minutes (as the Azure docs' example does) only delays both directions and costs node-minutes.
- ``GetSample(1)`` is guarded by ``max(0, ...)`` so a pool without samples yet evaluates to 0 instead of failing,
  and ``recent_minutes`` > 0 adds ``max`` over that window for workloads whose queue drains and refills quickly.
- Spot (low-priority) nodes are used first, up to ``max_spot``; dedicated nodes take the rest up to
  ``max_dedicated`` and stand in for preempted spot nodes. A pipeline that must not run on spot passes
  ``max_spot=0``.
- ``taskcompletion``: a node leaving the pool finishes its running tasks first; nothing is re-run.
"""

from __future__ import annotations

DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")


def default_formula(max_dedicated: int, max_spot: int, slots_per_node: int, *, slot_share: float = 0.65,
                    recent_minutes: int = 0, min_dedicated: int = 0,
                    node_deallocation_option: str = "taskcompletion") -> str:
    """The formula text for a pool with these caps; ValueError naming the argument when one is out of range."""
    for name, value in (("max_dedicated", max_dedicated), ("max_spot", max_spot), ("min_dedicated", min_dedicated),
                        ("recent_minutes", recent_minutes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if not isinstance(slots_per_node, int) or isinstance(slots_per_node, bool) or not 1 <= slots_per_node <= 256:
        raise ValueError(f"slots_per_node must be an integer from 1 to 256 (the pool's taskSlotsPerNode), "
                         f"got {slots_per_node!r}")
    if not isinstance(slot_share, int | float) or not 0.1 <= slot_share <= 1:
        raise ValueError(f"slot_share must be a number from 0.1 to 1 (the share of pending tasks given a slot at "
                         f"once), got {slot_share!r}")
    if max_dedicated + max_spot == 0:
        raise ValueError("max_dedicated and max_spot are both 0: the pool could never run a task; raise one of them")
    if min_dedicated > max_dedicated:
        raise ValueError(f"min_dedicated ({min_dedicated}) is above max_dedicated ({max_dedicated})")
    if node_deallocation_option not in DEALLOCATION_OPTIONS:
        raise ValueError(f"node_deallocation_option must be one of {', '.join(DEALLOCATION_OPTIONS)}, "
                         f"got {node_deallocation_option!r}")
    if recent_minutes:
        window = f"TimeInterval_Minute * {recent_minutes}"
        pending = (f"recentPercent = $PendingTasks.GetSamplePercent({window});\n"
                   f"pending = recentPercent < 50 ? lastPending : "
                   f"max(lastPending, $PendingTasks.GetSample({window}, 50));\n")
    else:
        pending = "pending = lastPending;\n"
    return (
        "// eventbatch default: nodes for the queued and running tasks, zero when idle (shared/autoscale_formula.py)\n"
        f"slots = {slots_per_node};\n"
        f"maxDedicated = {max_dedicated};\n"
        f"maxSpot = {max_spot};\n"
        f"minDedicated = {min_dedicated};\n"
        "// Newest sample; max(0, ...) also covers a pool that has no sample yet.\n"
        "lastPending = max(0, $PendingTasks.GetSample(1));\n"
        f"{pending}"
        "// ceil(pending * share / slots), at least one node while anything is pending; the service keeps the\n"
        "// integer part of a target.\n"
        f"share = {slot_share:g};\n"
        "needed = pending > 0 ? max(1, (pending * share + slots - 1) / slots) : 0;\n"
        "preempted = max(0, $PreemptedNodeCount.GetSample(1));\n"
        "spot = min(maxSpot, needed);\n"
        "dedicated = min(maxDedicated, max(minDedicated, needed - spot + min(preempted, spot)));\n"
        "$TargetLowPriorityNodes = spot;\n"
        "$TargetDedicatedNodes = dedicated;\n"
        f"$NodeDeallocationOption = {node_deallocation_option};\n"
    )
