"""The simulator's pool mechanics on tiny traces, and the shipped default formula against the shipped traces."""

from pathlib import Path

import pytest

from devstack.batch_emulator.autoscale.simulate import SimConfig, Task, load_trace, simulate
from shared.autoscale_formula import default_formula

REPO = Path(__file__).resolve().parents[4]
TRACES = REPO / "samples" / "traces"
ONE_IF_PENDING = "$TargetDedicatedNodes = max(0, $PendingTasks.GetSample(1)) > 0 ? 1 : 0;" \
                 "$NodeDeallocationOption = taskcompletion;"
AZURE_PENDING_TASKS = """startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;"""


def test_one_task_waits_for_the_next_evaluation_and_the_node_start_up():
    r = simulate(ONE_IF_PENDING, [Task(10, 100)], SimConfig(interval=300, startup=180))
    # eval at 0: nothing pending; eval at 300: one node, ready at 480, task 480-580; eval at 600 removes it.
    assert r.waits == [470]
    assert r.dedicated_node_minutes == pytest.approx(5.0)
    assert r.lower_bound_node_minutes == pytest.approx(100 / 60)
    assert (r.succeeded, r.failed, r.unfinished, r.nodes_at_end) == (1, 0, 0, 0)


def shrink_at_300(option):
    return ('$TargetDedicatedNodes = time() < time("2026-01-05T00:05:00Z") ? 1 : 0;'
            f"$NodeDeallocationOption = {option};")


@pytest.mark.parametrize(("option", "succeeded", "failed", "unfinished", "node_minutes"), [
    ("taskcompletion", 1, 0, 0, 10.0),   # the node stays until the task ends at 600 s
    ("retaineddata", 1, 0, 0, 10.0),
    ("requeue", 0, 0, 1, 5.0),           # the task goes back to the queue; no node ever comes back
    ("terminate", 0, 1, 0, 5.0),         # the task is ended and fails
])
def test_node_deallocation_options_on_scale_down(option, succeeded, failed, unfinished, node_minutes):
    r = simulate(shrink_at_300(option), [Task(0, 600)], SimConfig(interval=300, startup=0, drain=1800))
    assert (r.succeeded, r.failed, r.unfinished) == (succeeded, failed, unfinished)
    assert r.dedicated_node_minutes == pytest.approx(node_minutes)


def test_spot_and_dedicated_are_billed_separately_and_slots_are_shared():
    formula = "$TargetDedicatedNodes = 1; $TargetLowPriorityNodes = 1; stop();"
    tasks = [Task(0, 60) for _ in range(4)]
    r = simulate(formula, tasks, SimConfig(interval=300, startup=0, slots_per_node=2, drain=300))
    assert r.waits == [0, 0, 0, 0]
    assert r.dedicated_node_minutes == pytest.approx(5.0) and r.spot_node_minutes == pytest.approx(5.0)
    assert r.lower_bound_node_minutes == pytest.approx(4 * 60 / 2 / 60)


def test_failing_formula_is_counted_and_keeps_the_pool():
    r = simulate("$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Hour));", [Task(0, 30)],
                 SimConfig(drain=600))
    assert r.evaluation_errors == r.evaluations and r.unfinished == 1
    assert "InsufficientSampleData" in r.first_error


def test_trace_files_are_validated(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("start,len\n1,2\n")
    with pytest.raises(ValueError, match="arrival_s,duration_s"):
        load_trace(bad)
    bad.write_text("arrival_s,duration_s\n1,-2\n")
    with pytest.raises(ValueError, match=r"bad.csv:2"):
        load_trace(bad)


def test_shipped_traces_are_the_generator_output(tmp_path):
    import runpy

    runpy.run_path(str(TRACES / "generate_traces.py"))["write"](tmp_path)
    for name in ("bursty", "diurnal", "idle"):
        assert (tmp_path / f"{name}.csv").read_text() == (TRACES / f"{name}.csv").read_text()


def test_default_formula_meets_its_target_on_the_bursty_trace():
    """Issue 6: at most 1.3x the lower-bound node-minutes, p95 wait at most interval + start-up."""
    cfg = SimConfig(interval=300, startup=180, slots_per_node=4)
    r = simulate(default_formula(5, 20, 4), load_trace(TRACES / "bursty.csv"), cfg)
    assert r.evaluation_errors == 0 and r.unfinished == 0 and r.nodes_at_end == 0
    assert r.ratio_to_lower_bound <= 1.3
    assert r.wait_percentile(95) <= cfg.interval + cfg.startup
    azure = simulate(AZURE_PENDING_TASKS, load_trace(TRACES / "bursty.csv"), cfg)
    assert azure.ratio_to_lower_bound > r.ratio_to_lower_bound


def test_default_formula_returns_to_zero_on_the_idle_trace():
    r = simulate(default_formula(2, 8, 4), load_trace(TRACES / "idle.csv"), SimConfig(slots_per_node=4))
    assert r.unfinished == 0 and r.nodes_at_end == 0
    # Each lone task costs at most one evaluation interval plus start-up plus its run, on one node.
    assert r.node_minutes <= r.tasks * (5 + 3 + 2 + 5)
