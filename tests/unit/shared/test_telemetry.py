"""The app's OpenTelemetry metrics, read back with the SDK's in-memory reader: the figures an operator charts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.exceptions import ResourceNotFoundError
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import telemetry
from shared.batch_client import make_batch_client
from shared.settings import BatchSettings


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    telemetry.use_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader
    telemetry.use_meter_provider(MeterProvider())  # later tests record into nothing


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    """{metric name: [data point]} of everything recorded so far."""
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def by_attr(data_points: list, key: str) -> dict:
    return {p.attributes[key]: p for p in data_points}


def test_counts_runs_per_pipeline_and_outcome(reader):
    telemetry.runs_received("transform", 3)
    telemetry.runs_received("wordcount")
    telemetry.runs_received("transform", 0)  # a repeated request that created nothing
    telemetry.runs_submitted("transform", 3, 0.25, 1)
    for state in ("succeeded", "succeeded", "failed"):
        telemetry.run_ended({"PartitionKey": "transform", "state": state})
    telemetry.run_ended({"PartitionKey": "unrouted", "state": "rejected"})
    got = points(reader)
    assert {k: p.value for k, p in by_attr(got["eventbatch.runs.received"], "pipeline").items()} == \
        {"transform": 3, "wordcount": 1}
    assert by_attr(got["eventbatch.runs.submitted"], "pipeline")["transform"].value == 3
    assert by_attr(got["eventbatch.runs.succeeded"], "pipeline")["transform"].value == 2
    assert by_attr(got["eventbatch.runs.failed"], "pipeline")["transform"].value == 1
    assert by_attr(got["eventbatch.runs.rejected"], "pipeline")["unrouted"].value == 1


def test_a_state_added_later_gets_its_own_counter(reader):
    telemetry.run_ended({"PartitionKey": "transform", "state": "cancelled"})
    assert points(reader)["eventbatch.runs.cancelled"][0].value == 1


def test_waits_and_duration_come_from_the_record_stamps(reader):
    telemetry.run_ended({"PartitionKey": "transform", "state": "succeeded", "receivedAt": "2026-01-01T10:00:00.000Z",
                         "submittedAt": "2026-01-01T10:00:00.500Z", "startedAt": "2026-01-01T10:00:04Z",
                         "endedAt": "2026-01-01T10:00:10Z", "durationSeconds": 6.0})
    telemetry.run_ended({"PartitionKey": "transform", "state": "succeeded", "receivedAt": "2026-01-01T10:00:00Z",
                         "startedAt": "2026-01-01T10:00:02Z", "endedAt": "2026-01-01T10:00:03Z"})
    # rejected at intake: no wait and no duration to record, only the count
    telemetry.run_ended({"PartitionKey": "transform", "state": "rejected", "rejectedAt": "2026-01-01T10:00:00Z"})
    got = points(reader)
    queue_wait = got["eventbatch.run.queue_wait"][0]
    assert (queue_wait.count, queue_wait.sum, queue_wait.max) == (2, 6.0, 4.0)
    submit_wait = got["eventbatch.run.submit_wait"][0]
    assert (submit_wait.count, submit_wait.sum) == (1, 0.5)
    duration = got["eventbatch.run.duration"][0]
    assert (duration.count, duration.sum, duration.min, duration.max) == (2, 7.0, 1.0, 6.0)
    # buckets in seconds, not the SDK's default milliseconds: the 4 s wait lands in (2.5, 5], the 2 s one in (1, 2.5]
    bounds = list(queue_wait.explicit_bounds)
    assert bounds == list(telemetry.SECONDS_BUCKETS)
    assert queue_wait.bucket_counts[bounds.index(5)] == 1 and queue_wait.bucket_counts[bounds.index(2.5)] == 1


def test_a_bulk_submission_records_its_latency_and_calls_per_task(reader):
    telemetry.runs_submitted("transform", 200, 1.5, 2)
    telemetry.runs_submitted("transform", 1, 0.1, 1)
    telemetry.runs_submitted("transform", 0, 3.0, 0)  # Batch took nothing: latency counts, no per-task figure
    got = points(reader)
    latency = got["eventbatch.submit.duration"][0]
    assert latency.count == 3 and latency.max == 3.0
    per_task = got["eventbatch.submit.calls_per_task"][0]
    assert (per_task.count, per_task.min, per_task.max) == (2, 0.01, 1.0)


@pytest.mark.parametrize(("method", "url", "expected"), [
    ("post", "http://127.0.0.1:1/jobs/eb-transform-20260101/addtaskcollection?api-version=2024-07-01.20.0",
     "POST /jobs/{id}/addtaskcollection"),
    ("GET", "https://acct.westeurope.batch.azure.com/jobs/j%20x/tasks/t-1?$select=id", "GET /jobs/{id}/tasks/{id}"),
    ("DELETE", "https://acct.batch.azure.com/jobs/j/tasks/t", "DELETE /jobs/{id}/tasks/{id}"),
    ("POST", "https://acct.batch.azure.com/jobs", "POST /jobs"),
])
def test_operation_names_leave_the_ids_out(method, url, expected):
    assert telemetry.operation_of(method, url) == expected


class _FakeBatch(BaseHTTPRequestHandler):
    """A Batch endpoint that accepts every task collection and knows no task (enough to count calls)."""

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        tasks = json.loads(self.rfile.read(length) or b"{}").get("value") or []
        self._answer(200, {"value": [{"taskId": t["id"], "status": "success"} for t in tasks]})

    def do_GET(self):  # noqa: N802
        self._answer(404, {"code": "TaskNotFound", "message": {"lang": "en-US", "value": "no such task"}})

    def _answer(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def batch_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeBatch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_batch_call_is_counted_and_timed_by_operation(reader, batch_url):
    client = make_batch_client(BatchSettings(url=batch_url, account_name="acct", account_key="a2V5"))
    seen = []
    client.create_task_collection("eb-transform-1", {"value": [{"id": "t1", "commandLine": "true"}]},
                                  raw_response_hook=lambda r: seen.append(r.http_response.status_code))
    client.create_task_collection("eb-transform-1", {"value": [{"id": "t2", "commandLine": "true"}]})
    with pytest.raises(ResourceNotFoundError):
        client.get_task("eb-transform-1", "t9")
    got = points(reader)
    calls = {(p.attributes["operation"], p.attributes["status"]): p.value for p in got["eventbatch.batch.calls"]}
    assert calls == {("POST /jobs/{id}/addtaskcollection", "200"): 2, ("GET /jobs/{id}/tasks/{id}", "404"): 1}
    times = {p.attributes["operation"]: p for p in got["eventbatch.batch.call.duration"]}
    assert times["POST /jobs/{id}/addtaskcollection"].count == 2
    assert seen == [200]  # a per-call response hook still runs


def test_a_batch_call_without_an_answer_is_counted_as_an_error(reader):
    client = make_batch_client(BatchSettings(url="http://127.0.0.1:9", account_name="acct", account_key="a2V5"),
                               connection_timeout=2)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's connection error; the count is the point
        client.get_task("j", "t")
    calls = points(reader)["eventbatch.batch.calls"]
    assert [(p.attributes["operation"], p.attributes["status"], p.value) for p in calls] == \
        [("GET /jobs/{id}/tasks/{id}", "error", 1)]


def _fresh_python(code: str, env: dict) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_without_a_connection_string_nothing_is_configured(tmp_path):
    out = _fresh_python(
        "import sys; from shared import telemetry; from opentelemetry import metrics\n"
        "print(telemetry.configure({'APPLICATIONINSIGHTS_CONNECTION_STRING': ' '}),\n"
        "      'azure.monitor.opentelemetry' in sys.modules, type(metrics.get_meter_provider()).__name__)",
        {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HOME": str(tmp_path)})
    assert out == "False False _ProxyMeterProvider"


def test_with_a_connection_string_only_metrics_are_exported(tmp_path):
    code = (
        "import logging; from shared import telemetry; from opentelemetry import metrics, trace\n"
        "env = {'APPLICATIONINSIGHTS_CONNECTION_STRING': 'InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=http://127.0.0.1:9/'}\n"
        "ok = telemetry.configure(env)\n"
        "handlers = [type(h).__name__ for h in logging.getLogger().handlers]\n"
        "print(ok, type(metrics.get_meter_provider()).__name__, type(trace.get_tracer_provider()).__name__,"
        " 'LoggingHandler' in handlers)\n"
        "metrics.get_meter_provider().shutdown(timeout_millis=1000)\n")
    out = _fresh_python(code, {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HOME": str(tmp_path),
                               "TMPDIR": str(tmp_path),  # the exporter's retry files
                               "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"})  # no call to Microsoft
    # metrics go through the SDK provider; no tracer provider and no log handler: the host already sends the logs
    assert out.splitlines()[-1] == "True MeterProvider ProxyTracerProvider False"
