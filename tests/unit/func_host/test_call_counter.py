"""The benchmarks' call counter: every HTTP request of the host process, by service and by origin (app vs host),
the simulated Batch latency, and the snapshot file. Runs a real process against real local HTTP servers."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack.func_host import call_counter

REPO = Path(__file__).resolve().parents[3]


class _Ok(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield [s.server_address[1] for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


APP = '''
from concurrent.futures import ThreadPoolExecutor
from azure.core import PipelineClient
from azure.core.rest import HttpRequest

def work(storage, batch):
    client = PipelineClient(storage)
    client.send_request(HttpRequest("GET", storage + "/devstoreaccount1/c/blob.txt"))
    PipelineClient(batch).send_request(HttpRequest("POST", batch + "/jobs/job-1/addtaskcollection?api-version=1"))
    # A pool the app starts: its worker runs an SDK method, no app frame on that stack.
    with ThreadPoolExecutor(2) as pool:
        pool.submit(client.send_request, HttpRequest("PUT", storage + "/devstoreaccount1/c/b2?comp=metadata")).result()
'''

RUNNER = '''
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
from devstack.func_host import call_counter
from devstack.func_host.invoker import Invoker
from devstack.func_host.loader import LoadedFunction
counter = call_counter.activate_from_env(["--app-dir", sys.argv[2]])
from azure.core import PipelineClient
from azure.core.rest import HttpRequest
storage, batch = sys.argv[3], sys.argv[4]
# host machinery: a container listing from host code
PipelineClient(storage).send_request(HttpRequest("GET", storage + "/devstoreaccount1/input?restype=container&comp=list"))
import app_module

class T:
    type = "timerTrigger"
    name = "timer"

inv = Invoker(2, None)
inv.start()
fn = LoadedFunction(name="f", trigger=T(), user_function=lambda timer: app_module.work(storage, batch),
                    is_async=False, trigger_param="timer")
outcome = inv.invoke(fn, lambda ctx: {"timer": None}, "test").result(30)
assert outcome.succeeded, outcome.error
t0 = time.perf_counter(); PipelineClient(batch).send_request(HttpRequest("GET", batch + "/jobs?api-version=1"))
batch_s = time.perf_counter() - t0
t0 = time.perf_counter(); PipelineClient(storage).send_request(HttpRequest("GET", storage + "/devstoreaccount1/c/x"))
blob_s = time.perf_counter() - t0
print(json.dumps({"batch_s": batch_s, "blob_s": blob_s}), flush=True)
os._exit(0)
'''


def _run(tmp_path: Path, ports, latency: str = "") -> tuple[dict, dict]:
    storage_port, batch_port = ports
    app = tmp_path / "app"
    app.mkdir()
    (app / "app_module.py").write_text(APP)
    (tmp_path / "runner.py").write_text(RUNNER)
    out = tmp_path / "calls.json"
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            f"BlobEndpoint=http://127.0.0.1:{storage_port}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;TableEndpoint=http://127.0.0.1:2/devstoreaccount1")
    env = {**os.environ, "PYTHONPATH": str(REPO), call_counter.FILE_VAR: str(out),
           call_counter.LATENCY_VAR: latency, "EVENTBATCH_STORAGE": conn,
           "BATCH_ACCOUNT_URL": f"http://127.0.0.1:{batch_port}"}
    proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), "x", str(app),
                           f"http://127.0.0.1:{storage_port}", f"http://127.0.0.1:{batch_port}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), json.loads(out.read_text())


def test_requests_are_split_by_service_and_by_app_or_host(tmp_path, servers):
    _, snap = _run(tmp_path, servers)
    detail = snap["detail"]
    assert detail["host blob GET list"] == 1  # the host's container scan
    assert detail["app blob GET -"] == 1  # the function's own read
    assert detail["app batch POST addtaskcollection"] == 1
    assert detail["app blob PUT metadata"] == 1  # sent from a thread the app started
    assert detail["host batch GET jobs"] == 1 and detail["host blob GET -"] == 1
    assert snap["totals"] == {"app": {"blob": 2, "batch": 1}, "host": {"blob": 2, "batch": 1}}
    assert snap["pid"] > 0 and snap["batch_latency_ms"] == 0


def test_batch_latency_delays_batch_requests_only(tmp_path, servers):
    timings, snap = _run(tmp_path, servers, latency="120")
    assert timings["batch_s"] >= 0.12
    assert timings["blob_s"] < 0.1
    assert snap["batch_latency_ms"] == 120


def test_classification_by_azure_host_names_and_operations(tmp_path):
    counter = call_counter.CallCounter(tmp_path / "c.json", tmp_path, environ={})
    assert counter.service_of("https://acct.blob.core.windows.net/c/b") == "blob"
    assert counter.service_of("https://acct.queue.core.windows.net/q/messages") == "queue"
    assert counter.service_of("https://acct.table.core.windows.net/runs()") == "table"
    assert counter.service_of("https://acct.westeurope.batch.azure.com/jobs") == "batch"
    assert counter.service_of("http://127.0.0.1:9/x") == "other"
    assert counter.operation_of("queue", "https://a.queue.core.windows.net/q/messages?numofmessages=16") == "messages"
    assert counter.operation_of("batch", "https://b/jobs/eb-transform-1/tasks/t-1?api-version=1") == "{id}"
    assert counter.operation_of("batch", "https://b/jobs/eb-transform-1/tasks?api-version=1") == "tasks"


def test_snapshot_is_refreshed_while_running(tmp_path):
    counter = call_counter.CallCounter(tmp_path / "c.json", tmp_path, environ={})
    counter.start_writer()
    counter.record("GET", "https://a.blob.core.windows.net/c?comp=list", "host")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        data = json.loads((tmp_path / "c.json").read_text())
        if data["totals"]["host"]:
            break
    assert data["totals"]["host"] == {"blob": 1}
    counter._stop.set()


def test_off_without_the_file_setting_and_bad_latency_is_named():
    from azure.core.pipeline.transport import RequestsTransport

    before = RequestsTransport.send
    assert call_counter.activate_from_env([], environ={}) is None
    assert RequestsTransport.send is before
    with pytest.raises(SystemExit, match="EVENTBATCH_BATCH_LATENCY_MS='fast'"):
        call_counter.activate_from_env([], environ={call_counter.FILE_VAR: "/tmp/x.json",
                                                    call_counter.LATENCY_VAR: "fast"})
    with pytest.raises(SystemExit, match="EVENTBATCH_CALL_COUNTER_FILE is not"):
        call_counter.activate_from_env([], environ={call_counter.LATENCY_VAR: "50"})


def test_host_command_line_refuses_a_bad_latency(tmp_path):
    env = {**os.environ, call_counter.FILE_VAR: str(tmp_path / "c.json"), call_counter.LATENCY_VAR: "-5"}
    proc = subprocess.run([sys.executable, "-m", "devstack.func_host", "--app-dir", str(tmp_path), "--check"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "EVENTBATCH_BATCH_LATENCY_MS='-5'" in proc.stderr
