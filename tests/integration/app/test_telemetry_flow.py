"""The app's own metrics through the real flow (Azurite, the Batch emulator, containers): what a run, a failure and
a rejection add to the instruments an operator charts in Application Insights."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import ids, telemetry

pytestmark = pytest.mark.integration


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    telemetry.use_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader
    telemetry.use_meter_provider(MeterProvider())


def values(reader) -> dict[str, list]:
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def per_pipeline(points: list) -> dict[str, int]:
    return {p.attributes["pipeline"]: p.value for p in points}


def test_runs_their_outcomes_waits_and_batch_calls_are_measured(app, reader):
    runs = {}
    for pipeline, name in (("transform", "transform/otel-ok.txt"), ("failing", "failing/otel-bad.txt")):
        app.upload(name, b"measure me\n")
        app.blob_event(name)
        etag = app.ctx.storage.blob.get_blob_client(app.input_container, name).get_blob_properties().etag
        runs[pipeline] = ids.blob_task_id(pipeline, app.input_container, name, etag)
    app.request('{"pipeline": "transform", "inputs": ["input/transform/otel-never-uploaded.txt"]}')
    for pipeline, run_id in runs.items():
        app.wait_terminal(pipeline, [run_id])

    got = values(reader)
    assert per_pipeline(got["eventbatch.runs.received"]) == {"transform": 1, "failing": 1}
    assert per_pipeline(got["eventbatch.runs.submitted"]) == {"transform": 1, "failing": 1}
    assert per_pipeline(got["eventbatch.runs.succeeded"]) == {"transform": 1}
    assert per_pipeline(got["eventbatch.runs.failed"]) == {"failing": 1}
    assert per_pipeline(got["eventbatch.runs.rejected"]) == {"transform": 1}
    waits = {p.attributes["pipeline"]: p for p in got["eventbatch.run.queue_wait"]}
    durations = {p.attributes["pipeline"]: p for p in got["eventbatch.run.duration"]}
    for pipeline in runs:
        assert waits[pipeline].count == 1 and 0 <= waits[pipeline].max < 120
        assert durations[pipeline].count == 1 and 0 < durations[pipeline].max < 120
    per_task = {p.attributes["pipeline"]: p for p in got["eventbatch.submit.calls_per_task"]}
    assert per_task["transform"].max == 1.0  # a lone file: one addTaskCollection call for its one task
    calls = {(p.attributes["operation"], p.attributes["status"]): p.value for p in got["eventbatch.batch.calls"]}
    assert calls[("POST /jobs/{id}/addtaskcollection", "200")] >= 2
    assert any(op == "GET /jobs/{id}/tasks/{id}" for op, _ in calls)  # completion reads each task once
