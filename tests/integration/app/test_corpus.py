"""The Proof of issue 17: a corpus of bad requests and hostile blob names (tests/integration/app/corpus.py) sent
through the app's own functions against the real stack (Azurite, the emulator, real containers). Each bad request
and each unsafe name is rejected exactly once, with a record and one message that say why, even when delivered
twice; every other name is processed with its exact name; no override value comes back in a record or a message;
and no injected command ran (the canary files an injection would make do not exist, while a positive control
shows that a task that does make one is seen)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from shared import ids
from shared.errors import MAX_REASON
from shared.messages import MAX_MESSAGE_BYTES, encode

from .corpus import BAD_REQUESTS, HOST_CANARY, HOSTILE_NAMES, KEYED_CONFLICT, KEYED_FIRST, TOKEN

pytestmark = pytest.mark.integration


def _fill(value, app):
    if isinstance(value, str):
        return (value.replace("@IN@", app.input_container).replace("@DATA@", app.data_container)
                .replace("@ACCOUNT@", app.ctx.storage.blob_endpoint.rstrip("/")))
    if isinstance(value, list):
        return [_fill(v, app) for v in value]
    if isinstance(value, dict):
        return {_fill(k, app): _fill(v, app) for k, v in value.items()}
    return value


def _body(value, app) -> str | bytes:
    if isinstance(value, bytes):
        return value
    return _fill(value, app) if isinstance(value, str) else json.dumps(_fill(value, app))


def _partition(app, body) -> str:
    """Where handle_request records a rejection: the named pipeline when it exists, else `unrouted`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "unrouted"
    name = data.get("pipeline") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name in app.ctx.config.pipelines else "unrouted"


def _etag(app, name):
    return app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag


def test_the_corpus_ends_once_each_with_a_reason_and_runs_no_injected_command(app, caplog):
    assert len(BAD_REQUESTS) >= 50 and len(HOSTILE_NAMES) >= 30
    assert not os.path.exists(HOST_CANARY)
    caplog.set_level(logging.INFO)
    rejected_queue = app.ctx.settings.queues.rejected
    app.drain_queue(rejected_queue)
    app.upload("corpus/ok.txt", b"ok\n", container=app.data_container)
    app.upload("transform/corpus-ok.txt", b"keyed\n")

    # ---- requests: every bad one twice (a redelivery), plus a reused idempotency key -------------------------
    expected: dict[str, tuple[str, str, str, str]] = {}  # rejection run id -> (label, partition, code, words)
    app.request(_body(KEYED_FIRST, app), message_id="corpus-keyed-first")
    for label, value, code, words in [*BAD_REQUESTS, ("keyed-conflict", KEYED_CONFLICT, "idempotency-conflict",
                                                     "'corpus-key' was already used")]:
        body = _body(value, app)
        for dequeue in (1, 2):
            assert app.request(body, message_id=f"corpus-{label}", dequeue_count=dequeue) is None
        expected[ids.rejection_id("request", f"corpus-{label}", "")] = (label, _partition(app, body), code, words)

    # ---- blob names: each event delivered twice ----------------------------------------------------------------
    contents = {}
    for i, (name, outcome, _) in enumerate(HOSTILE_NAMES):
        if outcome != "rejected":  # a name that is refused before its HEAD need not (often cannot) exist
            contents[name] = f"corpus line {i}\n"
            app.upload(name, contents[name].encode())
        for _ in range(2):
            app.blob_event(name)
    app.upload("control/corpus-canary.txt", b"x")  # positive control: a task that does create a canary file
    app.blob_event("control/corpus-canary.txt")
    control = ids.blob_task_id("control", app.input_container, "control/corpus-canary.txt",
                               _etag(app, "control/corpus-canary.txt"))

    kept: dict[str, str] = {}  # run id -> name
    for name, outcome, words in HOSTILE_NAMES:
        run_id = ids.blob_task_id("transform", app.input_container, name, _etag(app, name)) \
            if name in contents else None
        if run_id and app.record("transform", run_id) is not None:
            assert outcome in ("kept", "either"), f"{name!r} was accepted: {outcome} expected"
            kept[run_id] = name
            continue
        assert outcome in ("rejected", "either"), f"{name!r} was not processed"
        rid = ids.rejection_id("blob", app.input_container, name, "")
        expected[rid] = (name, "transform", "unsafe-name", words)
    keyed = app.ctx.runs.by_request("transform", ids.request_id("corpus-key", None, ""))
    assert len(keyed) == 1

    # ---- one settle for everything -----------------------------------------------------------------------------
    assert app.wait_terminal("control", [control])[control]["state"] == "succeeded"
    done = app.wait_terminal("transform", [*kept, *keyed], timeout=240)

    # Processed names: succeeded, their exact name carried through, their own content transformed.
    for run_id, name in kept.items():
        rec = done[run_id]
        assert rec["state"] == "succeeded", (name, rec.get("failureMessage"), rec.get("stderrTail"))
        assert rec["inputName"] == name
        assert app.read_json(app.output_container, f"{name}/manifest.json")["input"]["name"] == name
        assert app.read_text(app.output_container, f"{name}/result.txt") == contents[name].upper()
    assert [done[r]["state"] for r in keyed] == ["succeeded"]  # the first user of the key was not disturbed

    # Rejections: exactly one message per bad input, matching its record, none for anything else.
    messages = app.drain_queue(rejected_queue)
    by_run: dict[str, list[dict]] = {}
    for m in messages:
        by_run.setdefault(m["runId"], []).append(m)
    assert set(by_run) == set(expected), (sorted(set(by_run) - set(expected)),
                                          [expected[r][0] for r in set(expected) - set(by_run)])
    for rid, (label, partition, code, words) in expected.items():
        assert len(by_run[rid]) == 1, (label, len(by_run[rid]))
        [msg] = by_run[rid]
        rec = app.record(partition, rid)
        assert rec is not None and rec["state"] == "rejected" and rec.get("notified") is True, (label, partition)
        assert msg["code"] == rec["rejectionCode"] == code, (label, msg["code"], msg["reason"])
        assert words in msg["reason"] and msg["reason"] == rec["reason"], (label, msg["reason"])
        assert len(msg["reason"]) <= MAX_REASON
        assert len(encode(msg).encode("utf-8")) <= MAX_MESSAGE_BYTES
        # No override value comes back: not in the message, not in the record.
        assert TOKEN not in encode(msg) and TOKEN not in json.dumps(rec, default=str), label

    # No injected command ran: only the positive control's canary exists among the outputs, none on the host.
    outputs = [b.name for b in app.ctx.storage.blob.get_container_client(app.output_container).list_blobs()]
    canaries = sorted(n for n in outputs if n.rsplit("/", 1)[-1].startswith("pwned"))
    assert "control/corpus-canary.txt/pwned-control" in canaries
    assert [c for c in canaries if not c.startswith("control/")] == [], "command injection!"
    assert not os.path.exists(HOST_CANARY), "command injection on the host!"
    assert "rejected rej-" in caplog.text  # the app's log was captured
    assert TOKEN not in caplog.text, "an override value was logged"
