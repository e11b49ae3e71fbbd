"""Start-up behaviour a user sees: unsupported app features fail at start naming the function; timers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.helpers import wait_for
from tests.integration.func_host.hostproc import REPO, copy_app


def _run_check(app: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    app_dir = copy_app(app, tmp / "app")
    return subprocess.run(
        [sys.executable, "-m", "devstack.func_host", "--app-dir", str(app_dir), "--settings",
         str(app_dir / "local.settings.test.json"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=60)


def test_unsupported_trigger_is_a_clear_error_naming_the_function(tmp_path):
    result = _run_check("bad_http", tmp_path, "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "function 'hello_http'" in result.stdout and "'httpTrigger' is not supported" in result.stdout
    assert not (tmp_path / "host.json").exists(), "nothing started"


def test_output_binding_is_a_clear_error_naming_function_and_binding(tmp_path):
    result = _run_check("bad_output", tmp_path, "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "function 'forward'" in result.stdout and "binding 'out' of type 'queue'" in result.stdout


def test_missing_settings_file_names_the_fix(tmp_path):
    result = subprocess.run([sys.executable, "-m", "devstack.func_host", "--app-dir",
                             str(copy_app("timer", tmp_path / "app")), "--settings", str(tmp_path / "nope.json")], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "nope.json not found" in result.stdout and "local.settings.sample.json" in result.stdout


def test_check_lists_the_indexed_functions(tmp_path):
    result = _run_check("timer", tmp_path, "--check")
    assert result.returncode == 0, result.stdout
    assert "yearly: timerTrigger '0 0 0 1 Jan *'" in result.stdout
    assert "every_two_seconds: timerTrigger '*/2 * * * * *'" in result.stdout
    assert "hourly: timerTrigger '0 0 * * * *'" in result.stdout


@pytest.mark.integration
def test_timer_runs_on_startup_and_on_schedule(make_host, storage):
    host = make_host("timer")
    # The schedule monitor's record says the hourly occurrence an hour ago never ran (host was down).
    missed = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    status = {"Last": (missed - timedelta(hours=1)).isoformat(), "Next": missed.isoformat(), "LastUpdated": None}
    hosts = BlobServiceClient.from_connection_string(storage).get_container_client("azure-webjobs-hosts")
    if not hosts.exists():
        hosts.create_container()
    hosts.upload_blob(f"timers/{host.host_id}/Host.Functions.hourly/status", json.dumps(status), overwrite=True)
    host.start()
    wait_for(lambda: len(host.events("every_two_seconds")) >= 2, 6, what="two ticks of the 2-second timer")
    startup = host.events("yearly")
    assert len(startup) == 1 and startup[0]["past_due"] is False and startup[0]["invocation_id"]
    ticks = [e["t"] for e in host.events("every_two_seconds")]
    assert all(round(t) % 2 == 0 for t in ticks), f"ticks fall on even UTC seconds: {ticks}"
    assert 1.5 < ticks[1] - ticks[0] < 2.5
    status = host.status()
    assert {f["name"] for f in status["functions"]} == {"yearly", "every_two_seconds", "hourly"}
    hourly = host.events("hourly")
    assert hourly and hourly[0]["past_due"] is True, "the missed occurrence ran at start, past due"
    assert status["state"] == "running"
    assert json.loads((host.state_dir / "status.json").read_text())["pid"] == host.proc.pid
    assert host.stop() == 0
    time.sleep(0.1)
    assert host.status()["state"] == "stopped"


def test_unreachable_storage_fails_fast_with_the_fix(tmp_path):
    unreachable = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                   "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    app_dir = copy_app("timer", tmp_path / "app")
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "devstack.func_host", "--app-dir", str(app_dir), "--settings",
         str(app_dir / "local.settings.test.json"), "--state-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "AzureWebJobsStorage": unreachable, "FH_OUT": str(tmp_path)})
    assert result.returncode == 2
    assert time.monotonic() - began < 15
    assert "cannot reach host storage" in result.stdout and "make up" in result.stdout
    status = json.loads((tmp_path / "host.json").read_text())
    assert status["state"] == "failed" and "cannot reach host storage" in status["error"]


@pytest.mark.parametrize("source, fragments", [
    ("import azure.functions as func\nraise ImportError('missing dependency: pyfoo')\n",
     ["importing function_app.py failed: ImportError: missing dependency: pyfoo", "Traceback"]),
    ("import azure.functions as func\n", ["no top-level FunctionApp found"]),
    ("import azure.functions as func\na = func.FunctionApp()\nb = func.FunctionApp()\n",
     ["2 FunctionApp instances", "func.Blueprint()"]),
    ("import azure.functions as func\napp = func.FunctionApp()\n"
     "@app.queue_trigger(arg_name='msg', queue_name='q-items', connection='AzureWebJobsStorage')\n"
     "def f(message: func.QueueMessage) -> None: ...\n",
     ["function 'f'", "trigger argument 'msg' is not a parameter"]),
    ("import azure.functions as func\napp = func.FunctionApp()\n"
     "@app.blob_trigger(arg_name='b', path='inputs/{name}', connection='Missing')\n"
     "def g(b: func.InputStream) -> None: ...\n",
     ["function 'g'", "AzureWebJobsMissing or Missing"]),
    ("import azure.functions as func\napp = func.FunctionApp()\n"
     "@app.timer_trigger(arg_name='t', schedule='0 */5 * * *')\n"
     "def h(t: func.TimerRequest) -> None: ...\n",
     ["NCRONTAB needs six fields", "'0 */5 * * *'"]),
])
def test_apps_the_worker_would_reject_fail_at_start_with_the_reason(tmp_path, source, fragments):
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text(source)
    (app / "host.json").write_text('{"version": "2.0"}')
    (app / "local.settings.json").write_text(
        '{"IsEncrypted": false, "Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}}')
    result = subprocess.run([sys.executable, "-m", "devstack.func_host", "--app-dir", str(app), "--check"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout
    for fragment in fragments:
        assert fragment in result.stdout


@pytest.mark.integration
def test_host_json_log_levels_silence_a_noisy_function(make_host):
    host = make_host("timer", host_json={"version": "2.0", "logging": {"logLevel": {
        "default": "Information", "Function.every_two_seconds": "Warning"}}}).start()
    wait_for(lambda: len(host.events("every_two_seconds")) >= 1 and host.events("yearly"), 6,
             what="both timers to run")
    host.stop()
    log = host.log()
    assert "Executed 'Functions.yearly' (Succeeded" in log
    assert "Functions.every_two_seconds" not in log
