"""`eventbatch request`'s text: what a person reads about a request, with untrusted names made harmless."""

from __future__ import annotations

from devstack.tools.request_view import _text


def _view(**over):
    view = {"requestId": "kreq", "pipeline": "wordcount", "state": "partial",
            "counts": {"total": 3, "received": 0, "running": 0, "succeeded": 2, "failed": 1},
            "outputs": {"container": "output", "prefix": "wordcount/kreq",
                        "merge": {"runId": "wordcount-m1", "state": "succeeded", "container": "output",
                                  "manifest": "wordcount/kreq/_merged/manifest.json", "partial": True,
                                  "inputsFailed": 1, "inputsExpected": 3}},
            "failed": [{"runId": "wordcount-x", "input": "uploads/bad\x1b[31mname", "state": "failed",
                        "code": "FailureExitCode", "reason": "exit 2", "stderr": "not a text file"}],
            "message": {"sent": True, "generation": 1, "claimedAt": "t0", "sentAt": "t1"}}
    return {**view, **over}


def test_the_text_names_state_counts_merge_and_failed_inputs():
    text = _text(_view())
    assert text.splitlines()[0] == "request kreq (pipeline wordcount): partial"
    assert "inputs   3: succeeded 2, failed 1" in text  # zero counts are left out
    assert "merge    wordcount-m1: succeeded, partial (1 of 3 inputs failed)" in text
    assert "stderr: not a text file" in text and "completion message: generation 1, sent t1" in text


def test_control_characters_in_names_never_reach_the_terminal():
    text = _text(_view())
    assert "\x1b" not in text and "bad\\x1b[31mname" in text


def test_an_open_request_says_its_message_is_still_to_come():
    text = _text(_view(state="open", message=None, failed=[]))
    assert "completion message: not yet (the request is open)" in text and "failed inputs" not in text
