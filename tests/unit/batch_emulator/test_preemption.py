"""The --preempt-rate knob on a real service model: only Spot nodes, repeatable with a seed, back after the
duration. The clock is faked (the point: minutes of preemption in a few steps)."""

from __future__ import annotations

import time

import pytest

from devstack.batch_emulator.errors import BatchError
from devstack.batch_emulator.model import BatchModel
from devstack.batch_emulator.preemption import Preempter, PreemptionSettings, chance_per_step

POOL = {"id": "spot", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": 3, "targetLowPriorityNodes": 3,
        "virtualMachineConfiguration": {"imageReference": {"publisher": "canonical", "offer": "ubuntu",
                                                           "sku": "22_04-lts", "version": "latest"},
                                        "nodeAgentSKUId": "batch.node.ubuntu 22.04"}}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def model_with_pool(tmp_path, name="m") -> BatchModel:
    model = BatchModel("acct", tmp_path / name)
    model.create_pool(dict(POOL))
    for node in model.nodes["spot"].values():
        model.node_transition("spot", node["id"], "idle")
    return model


def run_minutes(model, settings, minutes=10, step_seconds=15):
    clock = FakeClock()
    preempter = Preempter(model, settings, clock=clock)
    preempter.step()
    history = []
    for _ in range(int(minutes * 60 / step_seconds)):
        clock.now += step_seconds
        history.append(preempter.step())
    return preempter, history


def states(model):
    return {(n["isDedicated"], n["state"]) for n in model.nodes["spot"].values()}


def test_rate_preempts_spot_nodes_only(tmp_path):
    model = model_with_pool(tmp_path)
    preempter, _ = run_minutes(model, PreemptionSettings(rate=0.5, seed=7, duration=3600))
    nodes = list(model.nodes["spot"].values())
    assert [n["state"] for n in nodes if n["isDedicated"]] == ["idle"] * 3
    assert [n["state"] for n in nodes if not n["isDedicated"]] == ["preempted"] * 3
    assert preempter.preempted == 3
    metrics = model.pool_metrics("spot")
    assert metrics["PreemptedNodeCount"] == 3 and metrics["CurrentLowPriorityNodes"] == 3
    assert metrics["UsableNodeCount"] == 3


def test_a_seed_repeats_the_sequence_and_rate_zero_never_preempts(tmp_path):
    settings = PreemptionSettings(rate=0.2, seed=42, duration=3600)
    _, first = run_minutes(model_with_pool(tmp_path, "a"), settings, minutes=3)
    _, again = run_minutes(model_with_pool(tmp_path, "b"), settings, minutes=3)
    assert first == again and 0 < sum(first) <= 3
    model = model_with_pool(tmp_path, "c")
    preempter, history = run_minutes(model, PreemptionSettings(rate=0.0, seed=42), minutes=60)
    assert sum(history) == 0 and preempter.preempted == 0
    assert states(model) == {(True, "idle"), (False, "idle")}


def test_preempted_nodes_start_again_after_the_duration(tmp_path):
    model = model_with_pool(tmp_path)
    booted = []
    model.on_node_created = lambda pool_key, node_id: booted.append(node_id)
    run_minutes(model, PreemptionSettings(rate=1.0, seed=1, duration=0.2), minutes=0.25)
    spot = [n for n in model.nodes["spot"].values() if not n["isDedicated"]]
    assert [n["state"] for n in spot] == ["preempted"] * 3 and booted == []
    assert model.recover_preempted() == 0  # not yet: 0.2 s
    time.sleep(0.3)
    assert model.recover_preempted() == 3
    assert [n["state"] for n in spot] == ["starting"] * 3 and [n["previousState"] for n in spot] == ["preempted"] * 3
    assert sorted(booted) == sorted(n["id"] for n in spot)


def test_chance_per_step_adds_up_to_the_rate_per_minute():
    assert chance_per_step(0.3, 60) == pytest.approx(0.3)
    four = chance_per_step(0.3, 15)
    assert 1 - (1 - four) ** 4 == pytest.approx(0.3)
    assert chance_per_step(0, 60) == 0 and chance_per_step(1, 1) == 1 and chance_per_step(0.5, 0) == 0


@pytest.mark.parametrize("settings", [PreemptionSettings(rate=1.5), PreemptionSettings(rate=-0.1),
                                      PreemptionSettings(duration=-1)])
def test_settings_out_of_range_name_the_option(settings):
    with pytest.raises(ValueError, match="--preempt-"):
        settings.check()


def test_shrinking_the_pool_removes_a_preempted_node_first(tmp_path):
    model = model_with_pool(tmp_path)
    spot = sorted(n["id"] for n in model.nodes["spot"].values() if not n["isDedicated"])
    model.preempt_node("spot", spot[-1], 3600)
    model.resize_pool("spot", {"targetDedicatedNodes": 3, "targetLowPriorityNodes": 2})
    left = sorted(n["id"] for n in model.nodes["spot"].values() if not n["isDedicated"])
    assert left == spot[:2] and model.pool_metrics("spot")["PreemptedNodeCount"] == 0


def test_the_endpoint_refuses_a_dedicated_node(tmp_path):
    model = model_with_pool(tmp_path)
    dedicated = next(n for n in model.nodes["spot"].values() if n["isDedicated"])
    with pytest.raises(BatchError, match="dedicated") as err:
        model.preempt_node("spot", dedicated["id"], 10)
    assert err.value.status == 409 and dedicated["state"] == "idle"
