"""$filter parsing and evaluation, $select and skip tokens."""

from __future__ import annotations

import pytest

from devstack.batch_emulator import errors
from devstack.batch_emulator.protocol import odata

TASKS = [
    {"id": "a", "state": "active", "requiredSlots": 1, "executionInfo": {"retryCount": 0}},
    {"id": "b", "state": "running", "requiredSlots": 2, "executionInfo": {"retryCount": 1}},
    {"id": "c", "state": "completed", "requiredSlots": 1, "executionInfo": {"result": "failure", "exitCode": 3}},
    {"id": "d2", "state": "completed", "requiredSlots": 1, "executionInfo": {"result": "success", "exitCode": 0}},
]


def ids(flt: str) -> list[str]:
    pred = odata.parse_filter(flt)
    return [t["id"] for t in TASKS if pred(t)]


@pytest.mark.parametrize("flt,expected", [
    ("state eq 'completed'", ["c", "d2"]),
    ("state ne 'completed'", ["a", "b"]),
    ("state eq 'active' or state eq 'running'", ["a", "b"]),
    ("state eq 'completed' and executionInfo/result eq 'failure'", ["c"]),
    ("(state eq 'active' or state eq 'completed') and requiredSlots eq 1", ["a", "c", "d2"]),
    ("state eq 'active' or state eq 'running' and requiredSlots eq 1", ["a"]),  # and binds tighter than or
    ("not (state eq 'completed')", ["a", "b"]),
    ("executionInfo/exitCode gt 0", ["c"]),
    ("executionInfo/retryCount ge 1", ["b"]),
    ("startswith(id, 'd')", ["d2"]),
    ("state eq 'COMPLETED'", ["c", "d2"]),
    ("id eq 'it''s'", []),
])
def test_filters(flt, expected):
    assert ids(flt) == expected


@pytest.mark.parametrize("bad", ["state eq", "state 'x'", "(state eq 'a'", "state eq 'a' and", "state ~ 'a'",
                                 "eq 'a'"])
def test_malformed_filters_are_invalid_query_parameter_value(bad):
    with pytest.raises(errors.BatchError) as err:
        odata.parse_filter(bad)
    assert err.value.code == "InvalidQueryParameterValue" and err.value.status == 400


def test_empty_filter_means_everything():
    assert odata.parse_filter("") is None and odata.parse_filter(None) is None


def test_select_keeps_only_named_top_level_properties():
    out = odata.apply_select(TASKS[2], odata.parse_select("id, executionInfo"))
    assert out == {"id": "c", "executionInfo": TASKS[2]["executionInfo"]}


def test_skiptoken_round_trip_and_garbage():
    state = {"f": "state eq 'x'", "s": "id", "m": 3, "o": 6}
    token = odata.make_skiptoken(state)
    assert token.replace("-", "").replace("_", "").isalnum()
    assert odata.read_skiptoken(token) == state
    with pytest.raises(errors.BatchError):
        odata.read_skiptoken("!!!")


@pytest.mark.parametrize("value", ["0", "1001", "x"])
def test_maxresults_bounds(value):
    with pytest.raises(errors.BatchError):
        odata.parse_maxresults(value)
