"""The emulator is no way into the host (issue 17, items 10-14 and fault injection), through the real emulator
over HTTP and the azure-batch 15.x SDK: dated SharedKey, a health report without paths, bad Content-Length,
slow clients, streamed task files, http(s)-only resource files, refused host-access run options, staging that
never writes through a symlink left by an earlier attempt, and injected 429/503 faults."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from devstack.batch_emulator.protocol import auth as emu_auth

from .conftest import ACCOUNT, KEY, Emulator, vm_config, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with Emulator(tmp_path_factory.mktemp("hard") / "data", "process", extra_args=("--client-timeout", "1")) as e:
        c = e.client()
        c.create_pool(m.BatchPoolCreateOptions(id="hp", vm_size="standard_d2s_v3", target_dedicated_nodes=1,
                                               virtual_machine_configuration=vm_config(m), task_slots_per_node=4))
        c.create_job(m.BatchJobCreateOptions(id="hj", pool_info=m.BatchPoolInfo(pool_id="hp")))
        c.create_pool(m.BatchPoolCreateOptions(
            id="hcp", vm_size="standard_d2s_v3", target_dedicated_nodes=0,
            virtual_machine_configuration=vm_config(m, m.BatchContainerConfiguration(type="dockerCompatible"))))
        c.create_job(m.BatchJobCreateOptions(id="hcj", pool_info=m.BatchPoolInfo(pool_id="hcp")))
        yield e


def raw(emu, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def signed_headers(method: str, path: str, query: str, date: str | None, extra: dict | None = None) -> dict:
    headers = dict(extra or {})
    if date is not None:
        headers["ocp-date"] = date
    text = emu_auth.string_to_sign(method, path, query, headers, ACCOUNT)
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{emu_auth.sign(base64.b64decode(KEY), text)}"
    return headers


def http_date(delta: timedelta = timedelta()) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


# -- item 14: SharedKey freshness, health, HTTP robustness --------------------------------------------------

def test_signed_requests_need_a_current_date(emu):
    query = "api-version=2025-06-01"
    resp, _ = raw(emu, "GET", f"/pools/hp?{query}", headers=signed_headers("GET", "/pools/hp", query, http_date()))
    assert resp.status == 200
    for date in (None, http_date(timedelta(minutes=-16)), http_date(timedelta(minutes=16)),
                 "Mon, 01 Jan 2024 00:00:00 GMT"):
        resp, data = raw(emu, "GET", f"/pools/hp?{query}", headers=signed_headers("GET", "/pools/hp", query, date))
        body = json.loads(data)
        assert resp.status == 403 and body["code"] == "AuthenticationFailed", (date, body)
        detail = {v["key"]: v["value"] for v in body["values"]}["AuthenticationErrorDetail"]
        assert ("ocp-date" in detail) if date is None else ("15 minutes" in detail)


def test_health_reveals_no_paths_and_keeps_its_readers_fields(emu):
    _, data = raw(emu, "GET", "/_emulator/health")
    text = data.decode()
    health = json.loads(text)
    assert health["status"] == "ok" and health["runtime"] == "process" and "runtimeProblem" in health
    assert "dataDir" not in health
    assert str(emu.data_dir) not in text and "/tmp" not in text


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "5, 7"])
def test_a_bad_content_length_is_400_and_the_connection_is_closed(emu, length):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(f"POST /jobs?api-version=2025-06-01 HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
                     "{}".encode())
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(65536):  # the server closes: recv returns b"" instead of waiting for more
            data += chunk
    assert time.monotonic() - started < 3
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["code"] == "InvalidHeaderValue"


def test_an_oversized_body_is_refused_before_it_is_read(emu):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(b"POST /jobs?api-version=2025-06-01 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 413")


def test_a_client_that_stops_sending_is_dropped_after_the_client_timeout(emu):
    """--client-timeout 1: a half-sent request (slowloris) does not hold a server thread for ever."""
    for partial in (b"GET /pools?api-version=2025-06-01 HTTP/1.1\r\nHost: x\r\n",  # headers never end
                    b"POST /jobs?api-version=2025-06-01 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"):
        with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
            sock.sendall(partial)
            started = time.monotonic()
            while sock.recv(65536):  # before: no timeout, so this recv waited for the client's own 10 s timeout
                pass
            assert time.monotonic() - started < 5


def _rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_task_files_are_streamed_not_read_whole(emu):
    c = emu.client()
    size = 400 * 1024 * 1024
    c.create_task("hj", m.BatchTaskCreateOptions(id="bigfile", command_line=f"/usr/bin/truncate -s {size} big.bin"))
    assert wait_task(c, "hj", "bigfile").execution_info.exit_code == 0
    before = _rss_peak_kib(emu.proc.pid)
    tail = b"".join(c.download_task_file("hj", "bigfile", "wd/big.bin", ocp_range=f"bytes={size - 10}-{size - 1}"))
    assert tail == b"\0" * 10
    received = 0
    for chunk in c.download_task_file("hj", "bigfile", "wd/big.bin", ocp_range="bytes=0-"):
        received += len(chunk)
    assert received == size
    grown_mib = (_rss_peak_kib(emu.proc.pid) - before) / 1024
    assert grown_mib < 100, f"the emulator's peak memory grew by {grown_mib:.0f} MiB for a 400 MiB file"


# -- item 11: http(s) only ----------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [{"http_url": "file:///etc/hostname", "file_path": "stolen"},
                                    {"http_url": "ftp://127.0.0.1/x", "file_path": "stolen"},
                                    {"http_url": "data:text/plain,hello", "file_path": "stolen"},
                                    {"storage_container_url": "file:///etc"}])
def test_resource_files_are_http_or_https_only(emu, source):
    c = emu.client()
    task_id = f"scheme-{abs(hash(json.dumps(source))) % 10**8}"
    c.create_task("hj", m.BatchTaskCreateOptions(id=task_id, command_line="/bin/true",
                                                 resource_files=[m.ResourceFile(**source)]))
    task = wait_task(c, "hj", task_id)
    info = task.execution_info
    assert info.result == "failure" and info.failure_info.category == "usererror"
    assert info.failure_info.code in ("BlobDownloadMiscError", "ResourceContainerListMiscError")
    assert "http" in info.failure_info.message
    files = [f.name for f in c.list_task_files("hj", task_id, recursive=True)]
    assert not any("stolen" in name or "hostname" in name for name in files), files


# -- item 12: host-access run options -----------------------------------------------------------------------

@pytest.mark.parametrize("options,named", [("--privileged", "--privileged"), ("--rm -v /:/host", "-v /:/host"),
                                           ("--pid=host", "--pid=host"), ("--cap-add SYS_ADMIN", "--cap-add"),
                                           ("--device /dev/kmsg", "--device"),
                                           ("--mount type=bind,src=/etc,dst=/e", "--mount"),
                                           ("--security-opt seccomp=unconfined", "--security-opt"),
                                           ("--env-host", "--env-host")])
def test_host_access_run_options_are_refused_with_400_naming_the_option(emu, options, named):
    c = emu.client()
    settings = m.BatchTaskContainerSettings(image_name="busybox", container_run_options=options)
    with pytest.raises(HttpResponseError) as err:
        c.create_task("hcj", m.BatchTaskCreateOptions(id="priv", command_line="id", container_settings=settings))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    values = {d.key: d.value for d in err.value.model.error_values}
    assert values["PropertyName"] == "containerSettings.containerRunOptions"
    assert named in values["Reason"] and "--allow-host-access" in values["Reason"]


def test_a_pool_start_task_with_host_access_is_refused_too(emu):
    c = emu.client()
    start = m.BatchStartTask(command_line="id", container_settings=m.BatchTaskContainerSettings(
        image_name="busybox", container_run_options="--privileged"))
    with pytest.raises(HttpResponseError) as err:
        c.create_pool(m.BatchPoolCreateOptions(id="privpool", vm_size="standard_d2s_v3", start_task=start,
                                               virtual_machine_configuration=vm_config(
                                                   m, m.BatchContainerConfiguration(type="dockerCompatible"))))
    assert err.value.status_code == 400
    values = {d.key: d.value for d in err.value.model.error_values}
    assert values["PropertyName"] == "startTask.containerSettings.containerRunOptions"


def test_ordinary_run_options_are_accepted(emu):
    c = emu.client()
    settings = m.BatchTaskContainerSettings(image_name="busybox",
                                            container_run_options="--rm --memory 256m -v scratch:/scratch --tmpfs /t")
    c.create_task("hcj", m.BatchTaskCreateOptions(id="plain-opts", command_line="id", container_settings=settings))


def test_allow_host_access_accepts_them(tmp_path):
    with Emulator(tmp_path / "data", "process", extra_args=("--allow-host-access",)) as e:
        c = e.client()
        c.create_pool(m.BatchPoolCreateOptions(
            id="p", vm_size="standard_d2s_v3", target_dedicated_nodes=0,
            virtual_machine_configuration=vm_config(m, m.BatchContainerConfiguration(type="dockerCompatible"))))
        c.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="p")))
        settings = m.BatchTaskContainerSettings(image_name="busybox", container_run_options="--privileged")
        c.create_task("j", m.BatchTaskCreateOptions(id="t", command_line="id", container_settings=settings))
        assert e.health()["allowHostAccess"] is True


# -- item 10: a symlink left by an earlier attempt is not written through --------------------------------------

@pytest.fixture(scope="module")
def file_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "passwd").write_text("attacker-controlled content\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_retry_gets_a_fresh_working_dir_and_staging_never_follows_a_planted_link(emu, file_server, tmp_path):
    """Attempt 1 replaces its staged `in/` with a link to a host folder and fails; attempt 2 is staged again.
    Before: the reused working dir still held the link and staging wrote the blob into the host folder."""
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    marker = tmp_path / "attempt-1-ran"
    cmd = (f"/bin/sh -c 'if [ -e {marker} ]; then test -f in/passwd -a ! -L in && echo clean; "
           f"else touch {marker}; rm -r in; ln -s {host_dir} in; exit 1; fi'")
    c = emu.client()
    c.create_task("hj", m.BatchTaskCreateOptions(
        id="planted-link", command_line=cmd, constraints=m.BatchTaskConstraints(max_task_retry_count=1),
        resource_files=[m.ResourceFile(http_url=f"{file_server}/passwd", file_path="in/passwd")]))
    task = wait_task(c, "hj", "planted-link")
    assert marker.exists(), "attempt 1 did not run"
    assert list(host_dir.iterdir()) == [], "staging wrote through the planted symlink"
    assert task.execution_info.retry_count == 1 and task.execution_info.result == "success"
    assert b"".join(c.download_task_file("hj", "planted-link", "stdout.txt")) == b"clean\n"


# -- fault injection ----------------------------------------------------------------------------------------

def test_fault_injection_answers_429_and_503_with_retry_after(tmp_path):
    with Emulator(tmp_path / "data", "process", extra_args=("--fault-rate", "1", "--fault-retry-after", "3",
                                                             "--fault-seed", "1")) as e:
        query = "api-version=2025-06-01"
        statuses = set()
        for _ in range(20):
            resp, data = raw(e, "GET", f"/pools?{query}", headers=signed_headers("GET", "/pools", query, http_date()))
            statuses.add(resp.status)
            assert resp.getheader("Retry-After") == "3"
            assert json.loads(data)["code"] in ("TooManyRequests", "ServerBusy")
        assert statuses == {429, 503}
        health = e.health()  # never faulted
        assert health["faults"]["injected429"] + health["faults"]["injected503"] == 20


def test_the_sdk_rides_out_injected_faults_and_latency_is_added(tmp_path):
    with Emulator(tmp_path / "data", "process", extra_args=("--fault-rate", "0.3", "--fault-retry-after", "0",
                                                             "--fault-latency-ms", "50", "--fault-seed", "7")) as e:
        c = e.client()
        c.create_pool(m.BatchPoolCreateOptions(id="fp", vm_size="standard_d2s_v3", target_dedicated_nodes=0,
                                               virtual_machine_configuration=vm_config(m)))
        started = time.monotonic()
        for _ in range(20):
            assert c.get_pool("fp").id == "fp"
        elapsed = time.monotonic() - started
        faults = e.health()["faults"]
        assert faults["injected429"] + faults["injected503"] >= 3, faults
        assert elapsed >= 20 * 0.05


def test_fault_flags_are_validated(tmp_path):
    from devstack.batch_emulator.errors import ConfigError
    from devstack.batch_emulator.server import parse_args

    for args, option in ((["--fault-rate", "1.5"], "--fault-rate"), (["--fault-latency-ms", "-1"], "--fault-latency-ms"),
                         (["--client-timeout", "0"], "--client-timeout")):
        with pytest.raises(ConfigError, match=option):
            parse_args(args)
