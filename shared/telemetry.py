"""The app's metrics, on the OpenTelemetry API: one module owns the instruments, the app calls one-line functions.

On Azure, `configure()` (called once by function_app.py) hands the API to the Azure Monitor distro when
APPLICATIONINSIGHTS_CONNECTION_STRING is set; the exporter authenticates with the identity named in
APPLICATIONINSIGHTS_AUTHENTICATION_STRING (local auth is off on the component). Without the connection string
nothing is configured: the API's default provider makes every instrument a no-op, so the local stack, the tests
and the CLI pay no exporter, no network and no import of the distro.

Only metrics are sent. The Functions host already ships the worker's log records and one request per invocation to
Application Insights; the distro's log handler on the root logger would send every record a second time, and its
Azure SDK spans would add a dependency per Storage and Batch call, so both stay off (OTEL_LOGS_EXPORTER and
OTEL_TRACES_EXPORTER default to `none`; an app setting OTEL_TRACES_EXPORTER=azure_monitor turns the spans on). Live
metrics and performance counters are left to the platform.

Instruments (attribute `pipeline` unless said otherwise):
    eventbatch.runs.received / submitted / <terminal state>   counters (succeeded, failed, rejected, ...)
    eventbatch.run.queue_wait       s, received -> Batch started the task        (recorded when the run ends)
    eventbatch.run.submit_wait      s, received -> submitted to Batch            (recorded when the run ends)
    eventbatch.run.duration         s, Batch's start -> end of the task          (recorded when the run ends)
    eventbatch.submit.duration      s, one bulk submission of a pipeline's runs (addTaskCollection calls)
    eventbatch.submit.calls_per_task     addTaskCollection calls / tasks accepted, per bulk submission
    eventbatch.batch.calls          counter of Batch HTTP calls, attributes `operation` and `status`
    eventbatch.batch.call.duration  s, one Batch HTTP call, attributes `operation` and `status`
An outcome is counted where its one message is sent (shared.notify), so it counts at least once, like the message.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping

from azure.core.pipeline.policies import CustomHookPolicy
from opentelemetry import metrics

from shared.records import TERMINAL
from shared.run_metrics import timings

log = logging.getLogger("eventbatch.telemetry")
METER_NAME = "eventbatch"
CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
_ID_SEGMENT = "{id}"
_START_KEY = "eventbatch.call_started"
# Seconds from a few milliseconds (one Batch call) to an hour (a queued task behind a pool scaling up), for
# backends that keep the buckets (Application Insights keeps count, sum, min and max).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# The distro's instrumentations (spans and HTTP metrics per call): on only with traces.
_INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "httpx", "psycopg2", "requests", "urllib", "urllib3")


class _Instruments:
    """Every instrument of the app, made from one meter."""

    def __init__(self, meter: metrics.Meter):
        self.meter = meter
        self.runs = {state: meter.create_counter(f"eventbatch.runs.{state}", unit="{run}",
                                                 description=f"runs that reached state {state}")
                     for state in ("received", "submitted", *TERMINAL)}
        self.queue_wait = self._seconds("eventbatch.run.queue_wait", "from the run's arrival to the start of its task")
        self.submit_wait = self._seconds("eventbatch.run.submit_wait", "from the run's arrival to its submission")
        self.duration = self._seconds("eventbatch.run.duration", "the task's run time on Batch (start to end)")
        self.submit = self._seconds("eventbatch.submit.duration", "one bulk submission of a pipeline's runs")
        self.calls_per_task = meter.create_histogram("eventbatch.submit.calls_per_task", unit="{call}",
                                                     description="addTaskCollection calls per task accepted")
        self.batch_calls = meter.create_counter("eventbatch.batch.calls", unit="{call}",
                                                description="HTTP calls to the Batch service")
        self.batch_call_time = self._seconds("eventbatch.batch.call.duration", "one HTTP call to the Batch service")

    def _seconds(self, name: str, description: str) -> metrics.Histogram:
        return self.meter.create_histogram(name, unit="s", description=description,
                                           explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)

    def counter(self, state: str) -> metrics.Counter:
        if state not in self.runs:  # a state added after start-up still gets its counter
            self.runs[state] = self.meter.create_counter(f"eventbatch.runs.{state}", unit="{run}")
        return self.runs[state]


_instruments = _Instruments(metrics.get_meter(METER_NAME))


def use_meter_provider(provider: metrics.MeterProvider) -> None:
    """Make the instruments on `provider` instead of the global one (tests read them with an in-memory reader)."""
    global _instruments
    _instruments = _Instruments(provider.get_meter(METER_NAME))


# ---- start-up --------------------------------------------------------------------------------------------
def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Send the metrics to Application Insights when the app has a connection string; True when configured.
    Without one nothing happens (no import of the distro, no exporter, no network)."""
    environ = os.environ if environ is None else environ
    if not (environ.get(CONNECTION_SETTING) or "").strip():
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor  # only here: a heavy import, Azure only

    # The distro takes these two from the environment alone (its disable_* arguments are overwritten): logs and
    # traces stay off unless the app settings say otherwise (e.g. OTEL_TRACES_EXPORTER=azure_monitor).
    for name in ("OTEL_LOGS_EXPORTER", "OTEL_TRACES_EXPORTER"):
        os.environ.setdefault(name, "none")
    traces = os.environ["OTEL_TRACES_EXPORTER"].strip().lower() != "none"
    configure_azure_monitor(connection_string=environ[CONNECTION_SETTING], enable_live_metrics=False,
                            enable_performance_counters=False,
                            instrumentation_options={name: {"enabled": traces} for name in _INSTRUMENTATIONS})
    use_meter_provider(metrics.get_meter_provider())
    log.info("metrics go to Application Insights (meter %s)", METER_NAME)
    return True


# ---- the app's one-line calls ----------------------------------------------------------------------------
def runs_received(pipeline: str, count: int = 1) -> None:
    if count > 0:
        _instruments.counter("received").add(count, {"pipeline": pipeline})


def runs_submitted(pipeline: str, count: int, seconds: float, add_calls: int) -> None:
    """One bulk submission: `count` tasks accepted in `seconds`, with `add_calls` addTaskCollection calls."""
    attrs = {"pipeline": pipeline}
    _instruments.submit.record(max(0.0, seconds), attrs)
    if count > 0:
        _instruments.counter("submitted").add(count, attrs)
        _instruments.calls_per_task.record(add_calls / count, attrs)


def run_ended(record: Mapping) -> None:
    """A run reached its terminal state (its message is being sent): count it and record its waits and duration
    from the record's timestamps (shared.run_metrics reads the same ones)."""
    attrs = {"pipeline": record.get("pipeline") or record.get("PartitionKey") or "unrouted"}
    _instruments.counter(record.get("state") or "failed").add(1, attrs)
    t = timings(record)
    for histogram, value in ((_instruments.queue_wait, t.queue_wait), (_instruments.submit_wait, t.submit_wait),
                             (_instruments.duration, t.task_duration)):
        if value is not None:
            histogram.record(value, attrs)


def batch_call(operation: str, status: int | str, seconds: float) -> None:
    attrs = {"operation": operation, "status": str(status)}
    _instruments.batch_calls.add(1, attrs)
    _instruments.batch_call_time.record(max(0.0, seconds), attrs)


# ---- Batch calls, counted in the client's pipeline ---------------------------------------------------------
class BatchCallPolicy(CustomHookPolicy):
    """Counts and times every HTTP call of the Batch client (the SDK's own retries are off, so one call is one
    request), by operation: the method and the path with its ids replaced (`POST /jobs/{id}/addtaskcollection`).
    It takes the place of the client's custom-hook policy and keeps its per-call `raw_*_hook` keywords working."""

    def on_request(self, request) -> None:
        super().on_request(request)
        request.context[_START_KEY] = time.monotonic()

    def on_response(self, request, response) -> None:
        self._record(request, response.http_response.status_code)
        super().on_response(request, response)

    def on_exception(self, request) -> None:
        self._record(request, "error")  # no answer (connection refused, timeout)

    @staticmethod
    def _record(request, status) -> None:
        started = request.context.get(_START_KEY)
        http = request.http_request
        batch_call(operation_of(http.method, http.url), status,
                   time.monotonic() - started if started is not None else 0.0)


def operation_of(method: str, url: str) -> str:
    """`POST /jobs/{id}/addtaskcollection` for `POST https://acct.../jobs/job-1/addtaskcollection?api-version=...`:
    the collections and actions of Batch's paths sit at even places, the ids (untrusted names) at odd ones."""
    path = re.sub(r"^[a-z]+://[^/]+", "", url).split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    return f"{method.upper()} /" + "/".join(_ID_SEGMENT if i % 2 else p.lower() for i, p in enumerate(parts))
