"""Issue 17 items 4 and 9, the pure parts: what an idempotency key is bound to (the canonical request), how override
values are shown everywhere but the task, and bounded rejection reasons."""

from __future__ import annotations

import json

import pytest

from shared.errors import MAX_REASON, Rejection
from shared.redaction import redact_overrides, redact_request_text
from shared.submitter import Submitter
from shared.work_items import canonical_request, parse_request, request_digest

ACCOUNT = "http://127.0.0.1:10000/devstoreaccount1"


def _digest(config, **data):
    return request_digest(parse_request(config, {"pipeline": "transform", **data}, ACCOUNT))


def test_the_same_request_written_differently_has_one_digest(config):
    a = _digest(config, inputs=["input/transform/a.txt", {"container": "input", "name": "transform/b.txt"}],
                idempotencyKey="k1")
    b = _digest(config, inputs=[f"{ACCOUNT}/input/transform/b.txt", "input/transform/a.txt"], idempotencyKey="k2")
    assert a == b  # URL / 'container/name' / object, any order, and the key itself left out


@pytest.mark.parametrize("change", [
    {"inputs": ["input/transform/a.txt", "input/transform/c.txt"]},
    {"inputs": ["input/transform/a.txt"]},
    {"inputs": ["input/transform/a.txt", "input/transform/b.txt"],
     "overrides": {"environment": {"TRANSFORM_MODE": "lower"}}},
    {"inputs": [{"container": "input", "prefix": "transform/a"}]},
])
def test_another_request_has_another_digest(config, change):
    base = _digest(config, inputs=["input/transform/a.txt", "input/transform/b.txt"])
    assert _digest(config, **change) != base


def test_canonical_request_is_sorted_keys_json_without_the_key(config):
    request = parse_request(config, {"pipeline": "transform", "inputs": ["input/transform/a.txt"],
                                     "idempotencyKey": "secret-key"}, ACCOUNT)
    text = canonical_request(request)
    assert json.loads(text) == {"inputs": [{"container": "input", "name": "transform/a.txt"}], "overrides": {},
                                "pipeline": "transform"}
    assert "secret-key" not in text


def test_override_values_are_redacted_names_kept():
    body = json.dumps({"pipeline": "transform", "inputs": ["input/transform/a.txt"],
                       "overrides": {"environment": {"TRANSFORM_MODE": "tok-123456", "N": 42}, "retries": 1}})
    shown = redact_request_text(body)
    assert "tok-123456" not in shown and "42" not in shown
    data = json.loads(shown)
    assert data["overrides"]["environment"] == {"TRANSFORM_MODE": "<redacted, 10 chars>", "N": "<redacted, 2 chars>"}
    assert data["overrides"]["retries"] == 1 and data["inputs"] == ["input/transform/a.txt"]


@pytest.mark.parametrize("body", [
    '{"pipeline": "transform", "overrides": {"environment": {"TOKEN": "tok-123456"}',  # cut off: not JSON
    '{"pipeline": "transform", "overrides": {"environment": ["TOKEN=tok-123456"]}}',  # wrong shape
    '{"pipeline": "transform", "overrides": "TOKEN=tok-123456"}',
    '[{"overrides": {"environment": {"TOKEN": "tok-123456"}}}]',
    '{"pipeline": "transform", "\\u006fverrides": {"environment": {"TOKEN": "tok-123456"}}}',  # escaped key
])
def test_override_values_are_redacted_however_the_request_is_broken(body):
    shown = redact_request_text(body)
    assert "tok-123456" not in shown and "<redacted, " in shown


def test_requests_without_overrides_are_kept_as_sent():
    for body in ('{"pipeline": "x",  "inputs": ["a/b"]}', "{pipeline: wordcount", ""):
        assert redact_request_text(body) == body
    assert redact_overrides({"retries": 2}) == {"retries": 2}


def test_reasons_are_bounded_and_say_how_much_was_left_out():
    r = Rejection("schema", "x" * 70000)
    assert len(r.reason) == MAX_REASON and r.reason.endswith(f"({70000 - MAX_REASON} more characters)")
    assert Rejection("schema", "short").reason == "short"


def test_a_refused_property_value_is_not_echoed_into_the_reason(config):
    class Refusing:
        def create_task_collection(self, job_id, group):
            return {"value": [{"status": "clienterror", "taskId": v["id"], "error": {
                "code": "InvalidPropertyValue", "message": {"value": "The value provided is invalid."},
                "values": [{"key": "PropertyName", "value": "environmentSettings"},
                           {"key": "PropertyValue", "value": "tok-123456"},
                           {"key": "Reason", "value": "too long"}]}} for v in group["value"]]}

    from shared.task_spec import TaskSpec

    spec = TaskSpec(task_id="t1", pipeline="transform", body={"id": "t1"}, output_container="o", output_prefix="p")
    out = Submitter(Refusing(), config, sleep=lambda s: None).submit("job", [spec])
    reason = out.rejected["t1"]
    assert "tok-123456" not in reason
    assert "PropertyName: environmentSettings" in reason and "PropertyValue: <redacted, 10 chars>" in reason
