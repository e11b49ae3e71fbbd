"""The emulator's Autoscaler against an in-test model: a fake clock and a pool state are the point here."""

import threading
import time
from datetime import UTC, datetime, timedelta

from devstack.batch_emulator.autoscaler import Autoscaler, check_interval_for_azure
from devstack.batch_emulator.timeutil import parse_timedelta

FORMULA = """pending = max(0, $PendingTasks.GetSample(1));
$TargetDedicatedNodes = min(5, pending);
$NodeDeallocationOption = taskcompletion;"""


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


class FakeModel:
    """The four methods the Autoscaler needs, over a dict of pools; nodes follow targets instantly."""

    def __init__(self, formula=FORMULA, interval="PT1M"):
        self.pending = 0
        self.pool = {"id": "p1", "enableAutoScale": True, "autoScaleFormula": formula,
                     "autoScaleEvaluationInterval": interval, "targetDedicatedNodes": 0, "targetLowPriorityNodes": 0}
        self.applied = []
        self.runs = []
        self.lock = threading.Lock()

    def list_autoscale_pools(self):
        return [dict(self.pool)] if self.pool["enableAutoScale"] else []

    def pool_metrics(self, pool_id):
        assert pool_id == "p1"
        n = self.pool["targetDedicatedNodes"]
        return {"PendingTasks": self.pending, "ActiveTasks": self.pending, "RunningTasks": 0,
                "CurrentDedicatedNodes": n, "CurrentLowPriorityNodes": 0, "TaskSlotsPerNode": 1}

    def apply_autoscale(self, pool_id, target_dedicated, target_low_priority, node_deallocation_option, run):
        with self.lock:
            self.applied.append((target_dedicated, target_low_priority, node_deallocation_option))
            self.runs.append(run)
            self.pool["targetDedicatedNodes"] = target_dedicated
            self.pool["targetLowPriorityNodes"] = target_low_priority

    def set_autoscale_run(self, pool_id, run):
        with self.lock:
            self.runs.append(run)


def test_pool_is_evaluated_on_first_sight_then_every_interval():
    model, clock = FakeModel(), Clock()
    scaler = Autoscaler(model, sample_interval=30, clock=clock)
    scaler.step()
    assert model.applied == [(0, 0, "taskcompletion")]
    model.pending = 3
    for _ in range(3):  # 30 s ticks: samples at 30 s and 60 s, evaluation due at 60 s
        clock.advance(30)
        scaler.step()
    assert model.applied == [(0, 0, "taskcompletion"), (3, 0, "taskcompletion")]
    assert model.runs[-1]["results"].startswith("$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;")
    assert scaler.history("p1").latest("PendingTasks", clock.now) == 3
    model.pending = 0
    clock.advance(60)
    scaler.step()
    assert model.applied[-1] == (0, 0, "taskcompletion")


def test_changed_formula_is_evaluated_at_once():
    model, clock = FakeModel(interval="PT15M"), Clock()
    scaler = Autoscaler(model, clock=clock)
    scaler.step()
    model.pool["autoScaleFormula"] = "$TargetDedicatedNodes = 2;"
    clock.advance(1)
    scaler.step()
    assert model.applied[-1][0] == 2


def test_failed_evaluation_keeps_the_pool_and_records_the_error():
    model, clock = FakeModel(formula="$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Minute * 10));"),\
        Clock()
    scaler = Autoscaler(model, clock=clock)
    scaler.step()
    assert model.applied == []
    assert model.runs[-1]["error"]["code"] == "InsufficientSampleData"
    assert model.runs[-1]["error"]["values"][0]["value"].startswith("Line 1, Col 52: ")


def test_evaluate_does_not_apply_and_validate_reports_syntax():
    model, clock = FakeModel(), Clock()
    scaler = Autoscaler(model, clock=clock)
    model.pending = 4
    run = scaler.evaluate("p1", "$TargetDedicatedNodes = $CurrentDedicatedNodes + 1; $TargetLowPriorityNodes=0;")
    assert run["results"] == "$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    assert "error" not in run and model.applied == []
    assert scaler.validate(FORMULA) is None
    assert scaler.validate("$TargetDedicatedNodes = min(1,;")["values"][0]["value"].startswith("Line 1, Col 31:")


def test_disabled_pool_is_forgotten():
    model, clock = FakeModel(), Clock()
    scaler = Autoscaler(model, clock=clock)
    scaler.step()
    model.pool["enableAutoScale"] = False
    scaler.step()
    model.pool["enableAutoScale"] = True
    model.pending = 2
    clock.advance(1)
    scaler.step()  # re-enabled: evaluated at once again, with a fresh history
    assert model.applied[-1][0] == 2 and scaler.history("p1").latest("PendingTasks", clock.now) == 2


def test_background_thread_samples_and_evaluates_on_a_short_interval():
    model = FakeModel(interval="PT0.2S")
    scaler = Autoscaler(model, sample_interval=0.05)
    scaler.start()
    try:
        model.pending = 2
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (not model.applied or model.applied[-1][0] != 2):
            time.sleep(0.02)
        assert model.applied[-1][0] == 2
    finally:
        scaler.stop()
    assert scaler._thread is None


def test_durations_and_azure_interval_range():
    assert parse_timedelta("PT5M", "autoScaleEvaluationInterval") == timedelta(minutes=5)
    assert parse_timedelta("P1DT1H30M15.5S", "autoScaleEvaluationInterval") == timedelta(days=1, hours=1, minutes=30, seconds=15.5)
    assert check_interval_for_azure(timedelta(minutes=5)) is None
    assert "PT5M to PT168H" in check_interval_for_azure(timedelta(seconds=1))
    for bad in ("5m", "PT", "P1H"):
        try:
            parse_timedelta(bad, "autoScaleEvaluationInterval")
        except ValueError as exc:
            assert "autoScaleEvaluationInterval" in str(exc)
        else:
            raise AssertionError(bad)


def test_environment_knobs_set_sampling_and_override_the_evaluation_interval(monkeypatch):
    monkeypatch.setenv("BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL", "1")
    monkeypatch.setenv("BATCH_EMULATOR_AUTOSCALE_EVALUATION_INTERVAL", "PT2S")
    model, clock = FakeModel(interval="PT5M"), Clock()
    scaler = Autoscaler(model, clock=clock)
    assert scaler.sample_interval == 1
    scaler.step()
    model.pending = 2
    clock.advance(1)
    scaler.step()  # a sample at 1 s, no evaluation yet
    clock.advance(1)
    scaler.step()  # 2 s: evaluated although the pool says PT5M
    assert [a[0] for a in model.applied] == [0, 2]
    assert scaler.history("p1").period == timedelta(seconds=1)


def test_bad_environment_knobs_name_the_variable(monkeypatch):
    monkeypatch.setenv("BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL", "soon")
    try:
        Autoscaler(FakeModel())
    except ValueError as exc:
        assert "BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL" in str(exc)
    else:
        raise AssertionError("accepted a bad sample interval")
