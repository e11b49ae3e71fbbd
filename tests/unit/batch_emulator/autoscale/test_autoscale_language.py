"""The formula language: syntax errors with positions, limits, types, functions, sample methods, results text."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from devstack.batch_emulator.autoscale import (
    FormulaError,
    PoolState,
    SampleHistory,
    evaluate,
    parse,
    validate,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def history(minutes, period=30, **series):
    h = SampleHistory(period=timedelta(seconds=period))
    n = int(minutes * 60 / period)
    for i in range(n):
        h.record(NOW - timedelta(seconds=period * (n - 1 - i)), {k: (v(i) if callable(v) else v)
                                                                for k, v in series.items()})
    return h


def run(formula, hist=None, **state):
    return evaluate(formula, PoolState(history=hist or SampleHistory(), now=NOW, **state))


def value_of(expr, **kw):
    e = run(f"x = {expr};", **kw)
    assert e.error is None, e.error
    return e.variables["x"]


def syntax(formula):
    with pytest.raises(FormulaError) as info:
        parse(formula)
    return info.value


# -- syntax errors name line and column -----------------------------------------------------------------------
@pytest.mark.parametrize(("formula", "line", "col", "fragment"), [
    ("a = 1;\nb = (2 + 3;", 2, 11, "Expected ')'"),
    ("a = 1;\n  b = 2 +* 3;", 2, 10, "Expected an expression, found '*'"),
    ("$TargetDedicatedNodes = 1 2;", 1, 27, "Expected ';'"),
    ("// comment\nx = 1 # 2;", 2, 7, "Unexpected character '#'"),
    ("x = \"open;", 1, 5, "Unterminated string"),
    ("x = cond ? 1;", 1, 13, "Expected ':'"),
    ("x = $PendingTasks.(1);", 1, 19, "Expected a member or method name"),
])
def test_syntax_errors_name_line_and_column(formula, line, col, fragment):
    err = syntax(formula)
    assert (err.code, err.line, err.col) == ("AutoScalingFormulaSyntaxError", line, col)
    assert fragment in err.detail
    assert err.to_wire()["values"][0]["value"].startswith(f"Line {line}, Col {col}: ")


def test_validate_returns_the_error_dict_or_none():
    assert validate("$TargetDedicatedNodes = 0;") is None
    err = validate("$TargetDedicatedNodes = ;")
    assert err["code"] == "AutoScalingFormulaSyntaxError"
    assert err["values"] == [{"name": "Message", "value": "Line 1, Col 25: Expected an expression after "
                                                          "'$TargetDedicatedNodes =', found ';'"}]


def test_limits_of_8192_characters_and_100_statements():
    long_formula = "$TargetDedicatedNodes = 0;" + "// padding\n" * 800
    assert len(long_formula) > 8192
    assert syntax(long_formula).code == "AutoScalingFormulaTooLong"
    assert parse("x=1;" * 100)
    err = syntax("x=1;" * 101)
    assert err.code == "AutoScalingFormulaSyntaxError" and err.col == 401 and "100 statements" in err.detail


def test_comments_and_line_breaks_are_allowed_and_last_semicolon_optional():
    e = run("// sizing\n$TargetDedicatedNodes =\n   3 // three\n   + 1")
    assert e.target_dedicated == 4


# -- types and operators --------------------------------------------------------------------------------------
def test_operator_precedence_and_logic():
    assert value_of("1 + 2 * 3 - 4 / 2") == 5
    assert value_of("-2 * -3") == 6
    assert value_of("!0 && (1 || 0)") == 1
    assert value_of("1 < 2 == 1") == 1
    assert value_of("0 ? 1 : 2 ? 3 : 4") == 3
    assert value_of("\"abc\" < \"abd\"") == 1


def test_time_intervals_and_timestamps():
    assert value_of("TimeInterval_Minute * 2 == 120 * TimeInterval_Second") == 1
    assert value_of("(TimeInterval_Hour / 4) + TimeInterval_Minute > TimeInterval_Minute * 15") == 1
    assert value_of("TimeInterval_Week == TimeInterval_Day * 7") == 1
    assert value_of("TimeInterval_Millisecond == TimeInterval_Microsecond * 1000") == 1
    assert value_of("TimeInterval_100ns * 10 == TimeInterval_Microsecond") == 1
    assert value_of("time() - time(\"2026-11-25T09:00:00Z\") == TimeInterval_Hour") == 1
    assert value_of("(time(\"Wed, 25 Nov 2026 09:30:00 GMT\") + TimeInterval_Minute * 30) == time()") == 1
    assert value_of("-TimeInterval_Hour < TimeInterval_Zero") == 1


@pytest.mark.parametrize(("member", "expected"), [("year", 2026), ("month", 11), ("day", 25), ("weekday", 3),
                                                   ("hour", 10), ("minute", 0), ("second", 0)])
def test_timestamp_members(member, expected):
    assert value_of(f"time().{member}") == expected


def test_sunday_is_weekday_zero():
    assert value_of("time(\"2026-11-29T12:00:00Z\").weekday") == 0


@pytest.mark.parametrize(("formula", "fragment"), [
    ("x = time() + 1;", "Operator '+' is not defined for timestamp and double"),
    ("x = \"a\" * 2;", "Operator '*' is not defined for string and double"),
    ("x = $PendingTasks + 1;", "$PendingTasks is a set of samples"),
    ("$CPUPercent = 1;", "read-only"),
    ("x = y + 1;", "Undefined variable 'y'"),
    ("x = nosuch(1);", "Unknown function 'nosuch'"),
    ("x = $PendingTasks.GetSamples(1);", "Unknown method 'GetSamples'"),
    ("x = time().hours;", "timestamp has no member 'hours'"),
    ("$NodeDeallocationOption = sometimes;", "Undefined variable 'sometimes'"),
    ("$NodeDeallocationOption = 3;", "must be one of requeue, terminate, taskcompletion, retaineddata"),
    ("$TargetDedicatedNodes = TimeInterval_Hour;", "must be a double"),
])
def test_type_errors_are_reported_with_a_position(formula, fragment):
    e = run(formula)
    assert e.error is not None and fragment in e.error.detail
    assert e.error.line == 1 and e.error.col >= 1


def test_vector_arithmetic():
    h = history(2, PendingTasks=lambda i: i + 1)  # 1,2,3,4 oldest first
    assert value_of("$PendingTasks.GetSample(4) * 2", hist=h) == (8, 6, 4, 2)
    assert value_of("$PendingTasks.GetSample(2) + $PendingTasks.GetSample(2)", hist=h) == (8, 6)


# -- functions -------------------------------------------------------------------------------------------------
def test_functions_over_double_vec_lists():
    h = history(2, PendingTasks=lambda i: i + 1)  # GetSample(4) = [4,3,2,1]
    v = "$PendingTasks.GetSample(4)"
    assert value_of(f"avg({v}, 5)", hist=h) == 3
    assert value_of(f"len({v}, 7, {v})", hist=h) == 9
    assert value_of(f"max({v})", hist=h) == 4 and value_of(f"min({v}, 0.5)", hist=h) == 0.5
    assert value_of(f"sum({v})", hist=h) == 10 and value_of(f"range({v})", hist=h) == 3
    assert value_of("norm(3, 4)") == 5
    assert math.isclose(value_of(f"std({v})", hist=h), 1.2909944487358056)
    assert value_of(f"percentile({v}, 50)", hist=h) == 2 and value_of(f"percentile({v}, 100)", hist=h) == 4
    assert value_of(f"val({v}, 0)", hist=h) == 4
    assert value_of("lg(8)") == 3 and value_of("log(1000)") == 3 and math.isclose(value_of("ln(1)"), 0)
    assert value_of(f"lg({v})", hist=h) == (2, math.log2(3), 1, 0)
    r = value_of("rand()")
    assert 0 <= r < 1


def test_function_value_errors():
    e = run("x = val($PendingTasks.GetSample(1), 0);")
    assert e.error.code == "AutoScalingFormulaEvaluationError" and "out of range" in e.error.detail
    assert "no values" in run("x = avg($PendingTasks.GetSample(3));").error.detail


def test_stop_ends_evaluation_with_values_so_far():
    e = run("$TargetDedicatedNodes = 2; stop(); $TargetDedicatedNodes = 9;")
    assert e.error is None and e.target_dedicated == 2


# -- service variables ----------------------------------------------------------------------------------------
def test_aliases_and_precedence_of_full_names():
    assert run("$TargetDedicated = 3; $TargetLowPriority = 2;").target_dedicated == 3
    e = run("$TargetDedicated = 3; $TargetDedicatedNodes = 5; $TargetLowPriority = 2;")
    assert (e.target_dedicated, e.target_low_priority) == (5, 2)


def test_targets_default_to_current_and_deallocation_to_requeue():
    e = run("x = 1;", target_dedicated=4, target_low_priority=2)
    assert e.results == "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=2;$NodeDeallocationOption=requeue;x=1"


@pytest.mark.parametrize("option", ["requeue", "terminate", "taskcompletion", "retaineddata"])
def test_node_deallocation_options(option):
    assert run(f"$NodeDeallocationOption = {option};").node_deallocation_option == option


def test_current_node_counts_read_as_doubles():
    e = run("$TargetDedicatedNodes = $CurrentDedicatedNodes + $CurrentLowPriorityNodes;",
            current={"CurrentDedicatedNodes": 2, "CurrentLowPriorityNodes": 3})
    assert e.target_dedicated == 5


def test_fractional_targets_are_truncated_and_negative_targets_are_zero():
    assert run("$TargetDedicatedNodes = 2.9; $TargetLowPriorityNodes = -3;").target_dedicated == 2
    assert run("$TargetDedicatedNodes = 2.9; $TargetLowPriorityNodes = -3;").target_low_priority == 0


# -- samples ---------------------------------------------------------------------------------------------------
def test_get_sample_by_count_returns_newest_first():
    h = history(5, PendingTasks=lambda i: i)  # 0..9
    assert value_of("$PendingTasks.GetSample(3)", hist=h) == (9, 8, 7)
    assert value_of("$PendingTasks.GetSample(50)", hist=h) == tuple(range(9, -1, -1))


def test_get_sample_by_interval_and_range():
    h = history(10, PendingTasks=lambda i: i)  # 20 samples, 0..19, newest at NOW
    assert len(value_of("$PendingTasks.GetSample(TimeInterval_Minute * 10)", hist=h)) == 20
    assert value_of("$PendingTasks.GetSample(TimeInterval_Minute * 1, TimeInterval_Minute * 2)", hist=h) == (17, 16)
    assert value_of("$PendingTasks.GetSample(time() + -TimeInterval_Minute * 2, time() + -TimeInterval_Minute, 90)",
                    hist=h) == (17, 16)


def test_sample_percent_counts_missing_samples():
    h = history(10, PendingTasks=lambda i: i)
    h_gap = SampleHistory(delay=timedelta(minutes=1))  # the last minute is not yet visible
    for i in range(20):
        h_gap.record(NOW - timedelta(seconds=30 * (19 - i)), {"PendingTasks": i})
    assert value_of("$PendingTasks.GetSamplePercent(TimeInterval_Minute * 10)", hist=h) == 100
    assert value_of("$PendingTasks.GetSamplePercent(TimeInterval_Minute * 10)", hist=h_gap) == 90
    assert len(value_of("$PendingTasks.GetSample(TimeInterval_Minute * 10, 80)", hist=h_gap)) == 18
    e = run("x = $PendingTasks.GetSample(TimeInterval_Minute * 10, 95);", h_gap)
    assert e.error.value == "Line 1, Col 28: Insufficient data from data set: $PendingTasks wanted 95%, received 90%"
    assert value_of("$PendingTasks.GetSamplePercent(TimeInterval_Minute * 30)", hist=h) == pytest.approx(100 / 3)


def test_history_methods():
    h = history(5, PendingTasks=1)
    assert value_of("$PendingTasks.Count()", hist=h) == 10
    assert value_of("$PendingTasks.GetSamplePeriod() == TimeInterval_Second * 30", hist=h) == 1
    assert value_of("time() - $PendingTasks.HistoryBeginTime() == TimeInterval_Second * 270", hist=h) == 1
    one_second = history(1, period=1, PendingTasks=1)
    assert value_of("$PendingTasks.GetSamplePercent(TimeInterval_Second * 30)", hist=one_second) == 100


def test_insufficient_samples_fail_as_the_service_reports():
    """batch-shipyard's generated formula failed on Azure with 'Line 9, Col 43: ... $PendingTasks wanted 70%,
    received 0%' (Azure/batch-shipyard#138): GetSample(interval) without a percent wants 70%."""
    formula = ";\n".join([
        "maxTasksPerNode = 1", "minTargetDedicated = 0", "minTargetLowPriority = 0", "maxTargetDedicated = 10",
        "maxTargetLowPriority = 0", "sli = TimeInterval_Second * 300.0",
        "samplepercent = $PendingTasks.GetSamplePercent(sli)", "lastsample = val($PendingTasks.GetSample(1), 0)",
        "samplevecavg = avg($PendingTasks.GetSample(sli))", "$TargetDedicatedNodes = samplevecavg"]) + ";"
    hist = SampleHistory()
    hist.record(NOW - timedelta(minutes=6), {"PendingTasks": 3})
    e = run(formula, hist, target_dedicated=0)
    assert e.to_wire()["error"] == {
        "code": "InsufficientSampleData",
        "message": "Autoscale evaluation failed due to insufficient sample data",
        "values": [{"name": "Message",
                    "value": "Line 9, Col 43: Insufficient data from data set: $PendingTasks wanted 70%, received 0%"}],
    }
    assert e.target_dedicated is None  # nothing to apply: the pool keeps its size


def test_results_string_formats_each_type():
    h = history(1, PendingTasks=lambda i: i)
    e = run("$TargetDedicatedNodes = 2; b = 1/3; $a = $PendingTasks.GetSample(2); c = TimeInterval_Minute * 90;"
            "d = time(\"2016-10-13T19:18:47.805Z\"); s = \"text\";", h)
    assert e.results == ("$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;"
                         "$a=[1,0];b=0.333333333333333;c=01:30:00;d=2016-10-13T19:18:47.805Z;s=text")
    assert e.to_wire()["timestamp"] == "2026-11-25T10:00:00.0000000Z"
