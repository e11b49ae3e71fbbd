"""Each example formula of the Azure docs (shared/reference/batch-autoscale-formula.md) on given sample histories."""

from datetime import UTC, datetime, timedelta

import pytest

from devstack.batch_emulator.autoscale import PoolState, SampleHistory, evaluate

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday, 10:00 UTC

PENDING_TASKS = """startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;"""

PREEMPTED = """maxNumberofVMs = 25;
$TargetDedicatedNodes = min(maxNumberofVMs, $PreemptedNodeCount.GetSample(180 * TimeInterval_Second));
$TargetLowPriorityNodes = min(maxNumberofVMs , maxNumberofVMs - $TargetDedicatedNodes);
$NodeDeallocationOption = taskcompletion;"""

CPU = """$totalDedicatedNodes =
    (min($CPUPercent.GetSample(TimeInterval_Minute * 10)) > 0.7) ?
    ($CurrentDedicatedNodes * 1.1) : $CurrentDedicatedNodes;
$totalDedicatedNodes =
    (avg($CPUPercent.GetSample(TimeInterval_Minute * 60)) < 0.2) ?
    ($CurrentDedicatedNodes * 0.9) : $totalDedicatedNodes;
$TargetDedicatedNodes = min(400, $totalDedicatedNodes)
$NodeDeallocationOption = taskcompletion;"""

TIME_BASED = """$curTime = time();
$workHours = $curTime.hour >= 8 && $curTime.hour < 18;
$isWeekday = $curTime.weekday >= 1 && $curTime.weekday <= 5;
$isWorkingWeekdayHour = $workHours && $isWeekday;
$TargetDedicatedNodes = $isWorkingWeekdayHour ? 20:10;
$NodeDeallocationOption = taskcompletion;"""

TASK_BASED = """// Get pending tasks for the past 15 minutes.
$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 15);
// If we have fewer than 70 percent data points, we use the last sample point,
// otherwise we use the maximum of last sample point and the history average.
$tasks = $samples < 70 ? max(0,$PendingTasks.GetSample(1)) : max( $PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 15)));
// If number of pending tasks is not 0, set targetVM to pending tasks, otherwise
// half of current dedicated.
$targetVMs = $tasks > 0? $tasks:max(0, $TargetDedicatedNodes/2);
// The pool size is capped at 20, if target VM value is more than that, set it
// to 20. This value should be adjusted according to your use case.
$TargetDedicatedNodes = max(0, min($targetVMs, 20));
// Set node deallocation mode - let running tasks finish before removing a node
$NodeDeallocationOption = taskcompletion;"""

PARALLEL = """// Determine whether 70 percent of the samples have been recorded in the past
// 15 minutes; if not, use last sample
$samples = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 15);
$tasks = $samples < 70 ? max(0,$ActiveTasks.GetSample(1)) : max( $ActiveTasks.GetSample(1),avg($ActiveTasks.GetSample(TimeInterval_Minute * 15)));
// Set the number of nodes to add to one-fourth the number of active tasks (the
// MaxTasksPerComputeNode property on this pool is set to 4, adjust this number
// for your use case)
$cores = $TargetDedicatedNodes * 4;
$extraVMs = (($tasks - $cores) + 3) / 4;
$targetVMs = ($TargetDedicatedNodes + $extraVMs);
// Attempt to grow the number of compute nodes to match the number of active
// tasks, with a maximum of 3
$TargetDedicatedNodes = max(0,min($targetVMs,3));
// Keep the nodes active until the tasks finish
$NodeDeallocationOption = taskcompletion;"""

INITIAL_SIZE = """
    $TargetDedicatedNodes = {1};
    lifespan         = time() - time("{0}");
    span             = TimeInterval_Minute * 60;
    startup          = TimeInterval_Minute * 10;
    ratio            = 50;

    $TargetDedicatedNodes = (lifespan > startup ? (max($RunningTasks.GetSample(span, ratio), $ActiveTasks.GetSample(span, ratio)) == 0 ? 0 : $TargetDedicatedNodes) : {1});"""


def history(minutes: float, **series) -> SampleHistory:
    """Samples every 30 s for the last ``minutes``; each series is a constant or a function of the sample index
    (0 = oldest)."""
    h = SampleHistory()
    n = int(minutes * 2)
    for i in range(n):
        when = NOW - timedelta(seconds=30 * (n - 1 - i))
        h.record(when, {k: (v(i) if callable(v) else v) for k, v in series.items()})
    return h


def run(formula, hist=None, now=NOW, **state):
    return evaluate(formula, PoolState(history=hist or SampleHistory(), now=now, **state))


def test_pending_tasks_example_follows_the_average_when_samples_suffice():
    e = run(PENDING_TASKS, history(10, PendingTasks=lambda i: 10 + (i % 2) * 4))  # alternating 10/14
    assert e.error is None
    assert (e.target_dedicated, e.target_low_priority, e.node_deallocation_option) == (12, 0, "taskcompletion")


def test_pending_tasks_example_starts_with_one_vm_without_enough_samples():
    e = run(PENDING_TASKS, history(1, PendingTasks=40))  # 2 samples of 6 wanted
    assert e.target_dedicated == 1
    assert "pendingTaskSamplePercent=33.3333333333333" in e.results


def test_pending_tasks_example_is_capped():
    assert run(PENDING_TASKS, history(5, PendingTasks=300)).target_dedicated == 25


def test_preempted_example_splits_dedicated_and_low_priority():
    e = run(PREEMPTED, history(5, PreemptedNodeCount=3))
    assert (e.target_dedicated, e.target_low_priority) == (3, 22)


@pytest.mark.parametrize(("cpu", "expected"), [(0.9, 11), (0.1, 9), (0.5, 10)])
def test_cpu_example_grows_shrinks_or_holds(cpu, expected):
    e = run(CPU, history(60, CPUPercent=cpu), current={"CurrentDedicatedNodes": 10})
    assert e.error is None, e.error
    assert e.target_dedicated == expected


def test_time_based_example_on_a_weekday_working_hour_and_on_a_weekend():
    weekday = run(TIME_BASED, now=NOW)
    assert weekday.target_dedicated == 20
    saturday = run(TIME_BASED, now=datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert saturday.target_dedicated == 10
    assert saturday.results == ("$TargetDedicatedNodes=10;$TargetLowPriorityNodes=0;"
                                "$NodeDeallocationOption=taskcompletion;$curTime=2026-11-28T10:00:00.000Z;"
                                "$isWeekday=0;$isWorkingWeekdayHour=0;$workHours=1")


def test_time_based_example_adjusted_to_mountain_time():
    formula = TIME_BASED.replace("$curTime = time();", "$curTime = time() + (-6 * TimeInterval_Hour);")
    # 10:00 UTC is 04:00 MDT: outside working hours.
    assert run(formula, now=NOW).target_dedicated == 10


def test_task_based_example():
    rising = history(15, PendingTasks=lambda i: i)  # last sample 29, average 14.5
    assert run(TASK_BASED, rising).target_dedicated == 20
    few = history(2, PendingTasks=5)  # 4 of 30 samples: use the last one
    assert run(TASK_BASED, few).target_dedicated == 5
    idle = history(15, PendingTasks=0)
    assert run(TASK_BASED, idle, target_dedicated=8).target_dedicated == 4


@pytest.mark.parametrize(("active", "current", "expected"), [(40, 2, 3), (5, 1, 2), (0, 3, 0)])
def test_parallel_tasks_example(active, current, expected):
    e = run(PARALLEL, history(15, ActiveTasks=active), target_dedicated=current)
    assert e.target_dedicated == expected


def initial_size(created: datetime) -> str:
    return INITIAL_SIZE.replace("{0}", created.strftime("%a, %d %b %Y %H:%M:%S GMT")).replace("{1}", "4")


def test_initial_size_example_holds_the_initial_size_during_startup():
    e = run(initial_size(NOW - timedelta(minutes=5)))
    assert e.error is None and e.target_dedicated == 4


def test_initial_size_example_drops_to_zero_when_idle_after_startup():
    hist = history(60, RunningTasks=0, ActiveTasks=0)
    assert run(initial_size(NOW - timedelta(hours=2)), hist).target_dedicated == 0
    busy = history(60, RunningTasks=2, ActiveTasks=0)
    assert run(initial_size(NOW - timedelta(hours=2)), busy).target_dedicated == 4


def test_initial_size_example_fails_as_the_service_does_without_samples():
    e = run(initial_size(NOW - timedelta(hours=2)), history(20, RunningTasks=1, ActiveTasks=1))
    assert e.error is not None and e.error.code == "InsufficientSampleData"
    assert e.error.value.endswith("Insufficient data from data set: $RunningTasks wanted 50%, received 33%")
    assert e.error.line == 8


def test_powershell_test_azbatchautoscale_example():
    """Test-AzBatchAutoScale's documented example printed `$TargetDedicated=5;$NodeDeallocationOption=requeue;
    totalNodes=5` (pre-low-priority API); the current names and the low-priority target are printed here."""
    formula = ("totalNodes=($CPUPercent.GetSamplePercent(TimeInterval_Minute*0,TimeInterval_Minute*10)<0.7?5:"
               "(min($CPUPercent.GetSample(TimeInterval_Minute*0, TimeInterval_Minute*10))>0.8?"
               "($CurrentDedicated*1.1):$CurrentDedicated));$TargetDedicated=min(100,totalNodes);")
    e = run(formula)
    assert e.error is None
    assert e.results == ("$TargetDedicatedNodes=5;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;"
                         "totalNodes=5")
