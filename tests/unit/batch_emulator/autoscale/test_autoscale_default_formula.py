"""shared/autoscale_formula.py: the app's default pool formula, evaluated by the local formula engine."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.batch_emulator.autoscale import PoolState, SampleHistory, evaluate, parse
from shared import autoscale_formula
from shared.autoscale_formula import default_formula

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def targets(formula, pending=None, preempted=0):
    h = SampleHistory()
    if pending is not None:
        for i in range(4):
            h.record(NOW - timedelta(seconds=30 * (3 - i)), {"PendingTasks": pending, "PreemptedNodeCount": preempted})
    e = evaluate(formula, PoolState(history=h, now=NOW))
    assert e.error is None, e.error
    return e.target_dedicated, e.target_low_priority, e.node_deallocation_option


def test_zero_when_idle_and_when_no_sample_exists_yet():
    f = default_formula(2, 8, 4)
    assert targets(f, pending=None) == (0, 0, "taskcompletion")
    assert targets(f, pending=0) == (0, 0, "taskcompletion")


@pytest.mark.parametrize(("pending", "expected"), [(1, (0, 1)), (10, (0, 2)), (100, (2, 8)), (1000, (2, 8))])
def test_spot_first_then_dedicated_up_to_the_caps(pending, expected):
    assert targets(default_formula(2, 8, 4), pending)[:2] == expected


def test_pipeline_without_spot_uses_dedicated_only():
    assert targets(default_formula(10, 0, 4, slot_share=1.0), 9)[:2] == (3, 0)


def test_preempted_spot_nodes_are_backed_by_dedicated():
    assert targets(default_formula(4, 8, 1, slot_share=1.0), 3, preempted=2)[:2] == (2, 3)


def test_formula_is_within_the_service_limits():
    text = default_formula(100, 100, 256, recent_minutes=10, min_dedicated=1)
    assert len(text) < 8192 and len(parse(text).statements) < 100
    assert targets(default_formula(2, 8, 4, recent_minutes=3), 5)[:2] == (0, 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_dedicated": -1}, "max_dedicated"),
    ({"slots_per_node": 0}, "slots_per_node"),
    ({"max_dedicated": 0, "max_spot": 0}, "could never run a task"),
    ({"min_dedicated": 3}, "min_dedicated"),
    ({"slot_share": 2}, "slot_share"),
    ({"node_deallocation_option": "later"}, "node_deallocation_option"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    args = {"max_dedicated": 2, "max_spot": 8, "slots_per_node": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        default_formula(**args)


def test_shared_module_does_not_depend_on_devstack():
    source = Path(autoscale_formula.__file__).read_text()
    assert "devstack" not in source.split('"""', 2)[2].replace("devstack/", "")
