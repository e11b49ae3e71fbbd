"""The execution info the agent reports for a finished preparation or release run."""

from __future__ import annotations

from devstack.batch_emulator.agent.job_prep_runs import _completed


def test_a_non_zero_exit_is_a_failure_exit_code():
    info = _completed(1, None)
    assert info["state"] == "completed" and info["exitCode"] == 1 and info["result"] == "failure"
    assert info["failureInfo"]["code"] == "FailureExitCode" and info["failureInfo"]["category"] == "usererror"


def test_a_launch_failure_keeps_its_failure_info_and_has_no_exit_code():
    failure = {"category": "usererror", "code": "CommandLaunchFailed", "message": "no such file"}
    info = _completed(None, failure)
    assert "exitCode" not in info and info["failureInfo"] == failure and info["result"] == "failure"


def test_exit_zero_is_a_success():
    info = _completed(0, None)
    assert info["result"] == "success" and "failureInfo" not in info
