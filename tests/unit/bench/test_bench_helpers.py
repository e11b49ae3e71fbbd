"""The benchmarks' own logic: settings for private hosts, counter arithmetic, schedules, and the naive app."""

import importlib.util
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bench import bench_idle, hosting
from devstack.stack.host import LOCAL_DEFAULTS

REPO = Path(__file__).resolve().parents[3]
STACK_ENV = {"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
             "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:12000/devstoreaccount1",
             "WORKER_IMAGE": "127.0.0.1:5255/eventbatch/worker:1", "REGISTRY_SERVER": "127.0.0.1:5255"}


def test_azure_like_settings_drop_every_local_timing_override():
    values = hosting.app_settings(STACK_ENV, "http://127.0.0.1:9999", {"RUNS_TABLE": "runsx"}, local_defaults=False)
    assert not set(LOCAL_DEFAULTS) & set(values)
    assert values["EVENTBATCH_STORAGE"] == values["AzureWebJobsStorage"] == STACK_ENV["AZURE_STORAGE_CONNECTION_STRING"]
    assert values["BATCH_ACCOUNT_URL"] == "http://127.0.0.1:9999"
    assert values["WORKER_IMAGE"] == STACK_ENV["WORKER_IMAGE"] and values["RUNS_TABLE"] == "runsx"


def test_local_settings_keep_the_stack_defaults_unless_overridden():
    values = hosting.app_settings(STACK_ENV, "http://b", {"POOL_FIXED_NODES": "0"}, local_defaults=True)
    for key, value in LOCAL_DEFAULTS.items():
        assert values[key] == hosting.sample_values().get(key, value)
    assert values["POOL_FIXED_NODES"] == "0"


def test_delta_and_summary_split_batch_storage_and_scans():
    before = {"detail": {"host blob GET list": 10, "app batch POST addtaskcollection": 1}}
    after = {"detail": {"host blob GET list": 14, "app batch POST addtaskcollection": 3, "app table POST -": 5,
                        "host queue GET messages": 2, "app batch GET jobs": 1}}
    calls = hosting.delta(after, before)
    assert calls == {"host blob GET list": 4, "app batch POST addtaskcollection": 2, "app table POST -": 5,
                     "host queue GET messages": 2, "app batch GET jobs": 1}
    assert hosting.summarize(calls) == {"batch": 3, "app_storage": 5, "host_storage": 6, "host_blob_scans": 4,
                                        "other": 0}


def test_percentile_interpolates():
    assert hosting.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert hosting.percentile(list(range(101)), 0.95) == 95


def test_timers_more_often_than_a_minute_are_flagged():
    rows = bench_idle.schedules([
        {"name": "drain", "trigger": "timerTrigger", "detail": "timerTrigger '*/1 * * * * *'"},
        {"name": "net", "trigger": "timerTrigger", "detail": "timerTrigger '0 */5 * * * *'"},
        {"name": "intake", "trigger": "blobTrigger", "detail": "blobTrigger on 'input/{name}'"}])
    assert [(r["name"], r["interval_s"], r["too_often"]) for r in rows] == [
        ("drain", 1.0, True), ("net", 300.0, False), ("intake", None, False)]


def test_naive_app_runs_with_the_repos_host_json(tmp_path):
    assert json.loads((REPO / "bench/naive_app/host.json").read_text()) == json.loads((REPO / "host.json").read_text())
    copy = hosting.prepare_naive_app(tmp_path)
    assert (copy / "host.json").read_bytes() == (REPO / "host.json").read_bytes()
    assert (copy / "function_app.py").read_bytes() == (REPO / "bench/naive_app/function_app.py").read_bytes()


@pytest.fixture
def naive(monkeypatch):
    monkeypatch.setenv("EVENTBATCH_STORAGE", STACK_ENV["AZURE_STORAGE_CONNECTION_STRING"])
    monkeypatch.setenv("OUTPUT_CONTAINER", "outx")
    monkeypatch.setenv("WORKER_IMAGE", STACK_ENV["WORKER_IMAGE"])
    spec = importlib.util.spec_from_file_location("naive_function_app", REPO / "bench/naive_app/function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_naive_task_reads_the_blob_by_sas_url_and_returns_logs(naive):
    url = "http://127.0.0.1:12000/devstoreaccount1/inx/transform/a%20b.txt"
    body = naive.task_body("inx", "transform/a b.txt", url)
    resource = body["resourceFiles"][0]
    assert resource["httpUrl"].startswith(url + "?")
    assert parse_qs(urlsplit(resource["httpUrl"]).query)["sp"] == ["r"]
    assert body["containerSettings"]["imageName"] == STACK_ENV["WORKER_IMAGE"]
    destinations = [f["destination"]["container"]["containerUrl"].split("?")[0] for f in body["outputFiles"]]
    assert set(destinations) == {"http://127.0.0.1:12000/devstoreaccount1/outx"}
    assert body["id"] == naive.task_body("inx", "transform/a b.txt", url)["id"]  # one task per blob
    assert body["id"] != naive.task_body("inx", "transform/c.txt", url)["id"]
    assert len(body["id"]) <= 64
