"""Proof under faults (issue 17): a 200-file burst plus queue requests while Batch throttles 10 % of its calls, the
Functions host is killed -9 twice, the Batch emulator once, and Azurite is restarted. Every input must end exactly
once (succeeded, or failed/rejected with a reason), with exactly one completion, failure or rejection message per
run (one messageId per run; the only repeat allowed is the documented one: a worker killed between sending a
message and marking it sent, whose message the safety net sends again marked possibleDuplicate), and the containers the emulator started per task must be the attempts Batch reports for it.

`faulty_stack` is a stack of its own (its own Azurite, Batch emulator and host, on free ports, with its own state
folder), so killing and restarting its parts disturbs no other test; only the registry and the container engine
(with the sample images) are shared with the session's stack. The safety net's waits are shortened so that it acts
within the test: a tick every 2 s, resubmission after 5 s, notification repair after 30 s.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared import ids
from tests.helpers import gone, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TERMINAL = ("succeeded", "failed", "rejected")
WHEN = ("state", "receivedAt", "submittedAt", "succeededAt", "failedAt", "notifyClaimedAt", "notifyTakenOverFrom",
        "notified", "jobId")
BLOBS = 200
REQUESTS = 10  # the last one names a blob that does not exist: rejected with a reason
FAULT_ARGS = ("--fault-rate", "0.1", "--fault-retry-after", "1", "--fault-latency-ms", "5")
# ~230 container runs on 8 task slots: measured 2-4 min from the burst to the last result on a shared 2-core machine
# with other suites running (load 20-50), so the wait is generous and the time it took is printed.
DEADLINE = 420
# NOTIFY_REPAIR_AFTER is not shortened below 30 s: the safety net takes over a claimed notification that is older,
# and a live worker on a loaded machine took more than 5 s between its claim and marking the message sent (both
# then sent it: a duplicate, seen with PT5S). The repair is for workers that died, not for slow ones.
FAULT_SETTINGS = {"RECONCILE_SCHEDULE": "*/2 * * * * *", "RESUBMIT_AFTER": "PT5S", "NOTIFY_REPAIR_AFTER": "PT30S"}
# A host killed between receiving a queue message and journalling it leaves that message invisible for the rest of
# its lease: 10 minutes on Azure (the Functions host's), here shortened so that the request comes back in the test.
MESSAGE_LEASE_SECONDS = "60"


@dataclass
class FaultyStack:
    env: dict[str, str]
    state: Path
    azurite: object  # devstack.stack.processes.Service
    emulator: object
    host: object
    access: object  # devstack.tools.access.AppAccess
    events: list[str] = field(default_factory=list)
    host_kills: list[datetime] = field(default_factory=list)  # when the Functions host was killed -9

    @property
    def emulator_data(self) -> Path:
        return self.state / "batch" / self.env["BATCH_ACCOUNT_NAME"]

    def note(self, what: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {what}")

    def kill(self, service) -> None:
        from devstack.stack.processes import read_pid

        pid = read_pid(service)
        assert pid, f"{service.name} is not running"
        os.kill(pid, signal.SIGKILL)
        if service is self.host:
            self.host_kills.append(datetime.now(UTC))
        wait_for(lambda: gone(pid), 20, f"the killed {service.name} (pid {pid}) to be reaped", 0.05)
        self.note(f"killed -9 {service.name} (pid {pid})")

    def start(self, service) -> None:
        from devstack.stack.processes import ensure_running

        action = ensure_running(service, log=lambda line: None)
        self.note(f"{service.name} {action}")

    def restart(self, service) -> None:
        from devstack.stack.processes import stop

        stop(service)
        self.note(f"stopped {service.name}")
        self.start(service)




def _patient(fn, what: str, timeout: float = 60.0):
    """Call fn until it works: the user's side (uploads, requests, reads) waits out an Azurite restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - any storage error while Azurite restarts
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} kept failing: {exc}") from exc
            time.sleep(0.3)


@pytest.fixture(scope="module")
def faulty_stack(stack, tmp_path_factory):
    from devstack.batch_emulator.launcher import free_port
    from devstack.common import local_accounts
    from devstack.stack.azurite import azurite_service, provision_storage
    from devstack.stack.emulator import batch_emulator_service
    from devstack.stack.host import func_host_service
    from devstack.stack.ports import Ports
    from devstack.stack.processes import stop
    from devstack.tools.access import AppAccess
    from devstack.tools.demo import prepare_pools

    state = tmp_path_factory.mktemp("faulty-stack")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVENTBATCH_STATE_DIR", str(state))  # paths.state_dir(): logs, pids, host state, event webhook
    services = []
    try:
        ports = Ports(blob=free_port(), queue=free_port(), table=free_port(),
                      registry=int(stack.registry_server.rsplit(":", 1)[1]), batch=free_port())
        env = {**stack.env,
               "AZURE_STORAGE_CONNECTION_STRING": local_accounts.azurite_connection_string(
                   "127.0.0.1", ports.blob, ports.queue, ports.table),
               "BATCH_ACCOUNT_URL": f"http://127.0.0.1:{ports.batch}"}
        azurite = azurite_service(ports)
        emulator = batch_emulator_service(ports, env)
        emulator.command = [*emulator.command, *FAULT_ARGS]
        host = func_host_service(env)  # writes <state>/local.settings.json
        host.env = {**host.env, "EVENTBATCH_FUNC_HOST_MESSAGE_LEASE_SECONDS": MESSAGE_LEASE_SECONDS}
        settings_file = state / "local.settings.json"
        settings = json.loads(settings_file.read_text())
        settings["Values"].update(FAULT_SETTINGS)
        settings_file.write_text(json.dumps(settings, indent=2))
        faulty = FaultyStack(env, state, azurite, emulator, host, None)
        for service in (azurite, emulator):
            services.append(service)
            faulty.start(service)
        provision_storage(env)
        faulty.access = AppAccess.open(settings_file=settings_file)
        # The test's own Batch calls meet the injected faults too, past the SDK's few retries now and then.
        enabled = [p for p, pool in faulty.access.config.pools.items() if pool.enabled]
        _patient(lambda: prepare_pools(faulty.access, enabled, say=lambda line: None), "preparing the pool",
                 timeout=120)
        services.append(host)
        faulty.start(host)
        yield faulty
    finally:
        for service in reversed(services):
            stop(service)
        mp.undo()


# ---- what the test sends -----------------------------------------------------------------------------------
@dataclass
class Sent:
    expected: dict[str, tuple[str, str]] = field(default_factory=dict)  # run id -> (pipeline, what it is)
    rejected: set[str] = field(default_factory=set)
    request_ids: list[str] = field(default_factory=list)
    etags: dict[str, str] = field(default_factory=dict)  # blob name -> the ETag its (last) upload returned


def _upload_blob(access, pipeline, path: Path, tag: str, sent: Sent, lock: threading.Lock) -> None:
    from devstack.tools.submit import upload_inputs

    (u,) = _patient(lambda: upload_inputs(access, pipeline, [path], tag), f"uploading {path.name}")
    with lock:
        sent.expected[u.run_id] = ("transform", f"blob {u.name}")
        sent.etags[u.name] = u.etag


def _send_request(access, index: int, tag: str, sent: Sent, lock: threading.Lock) -> None:
    from devstack.tools.submit import send_request, upload

    wordcount = access.config.pipeline("wordcount")
    if index == REQUESTS - 1:  # a request naming a blob that does not exist
        body = json.dumps({"pipeline": "wordcount", "inputs": [f"uploads/wordcount/{tag}/missing.txt"]})

        def send():
            queue = access.storage.queue.get_queue_client(access.settings.queues.requests)
            return queue.send_message(body)

        message = _patient(send, "sending the bad request")
        run_id = ids.rejection_id("request", message.id, "")
        with lock:
            sent.expected[run_id] = ("wordcount", "the request naming a missing blob")
            sent.rejected.add(run_id)
        return
    names = []
    for j in range(2):
        name = f"wordcount/{tag}/r{index:02d}/part{j}.txt"
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"{tag}-r{index}-{j}.txt"  # noqa: S108 - test scratch
        tmp.write_text(" ".join(["word"] * (index + j + 1)) + "\n")
        _patient(lambda n=name, t=tmp: upload(access, "uploads", n, t), f"staging {name}")
        tmp.unlink()
        names.append(f"uploads/{name}")
    request = _patient(lambda: send_request(access, wordcount, [], names, None), f"sending request {index}")
    with lock:
        sent.request_ids.append(request.request_id)
        for run_id, what in request.runs:
            sent.expected[run_id] = ("wordcount", f"request {index}: {what}")


def _burst(access, tmp_path: Path, tag: str, sent: Sent, spread: float) -> None:
    """200 uploads (8 at a time, spread over `spread` seconds) and the requests in between."""
    transform = access.config.pipeline("transform")
    lock = threading.Lock()
    files = []
    for i in range(BLOBS):
        path = tmp_path / f"part {i:03d}.txt"
        path.write_text(f"line one of file {i}\nline two\n")
        files.append(path)
    pause = spread / BLOBS
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for i, path in enumerate(files):
            futures.append(pool.submit(_upload_blob, access, transform, path, tag, sent, lock))
            if i % (BLOBS // REQUESTS) == 0:
                futures.append(pool.submit(_send_request, access, i // (BLOBS // REQUESTS), tag, sent, lock))
            time.sleep(pause)
        for f in futures:
            f.result()


# ---- what the test reads back ------------------------------------------------------------------------------
def _records(access, tag: str, sent: Sent) -> list[dict]:
    prefix = f"transform/{tag}/"
    rows = access.runs.query("PartitionKey eq 'transform' and inputName ge @a and inputName lt @b",
                             {"a": prefix, "b": prefix + "\uffff"})
    for request_id in list(sent.request_ids):
        rows += access.runs.query("PartitionKey eq 'wordcount' and requestId eq @r", {"r": request_id})
    for run_id in sent.rejected:  # a rejection record names no request id
        rows += [r for r in [access.runs.get("wordcount", run_id)] if r is not None]
    return rows


def _messages(access) -> list[dict]:
    """Every message on the completions, failures and rejected queues (the test's stack is its own)."""
    out = []
    queues = access.settings.queues
    for name in (queues.completions, queues.failures, queues.rejected):
        queue = access.storage.queue.get_queue_client(name)
        while True:
            page = list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=60))
            if not page:
                break
            for m in page:
                out.append({**json.loads(m.content), "_queue": name})
                queue.delete_message(m)
    return out


def _starts(faulty: FaultyStack) -> Counter:
    path = faulty.emulator_data / "container-starts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["task"] for line in lines)


@pytest.mark.timeout(DEADLINE + 180)  # past the suite's 300 s: the burst, the wait, and reading every manifest
def test_every_input_ends_exactly_once_under_faults_and_crashes(faulty_stack, tmp_path):
    faulty = faulty_stack
    access = faulty.access
    tag = f"faults-{secrets.token_hex(3)}"
    sent = Sent()
    t0 = time.monotonic()
    burst = threading.Thread(target=_burst, args=(access, tmp_path, tag, sent, 20.0), daemon=True)
    burst.start()

    def at(second: float) -> None:
        time.sleep(max(0.0, t0 + second - time.monotonic()))

    at(3)
    faulty.kill(faulty.host)
    at(4)
    faulty.start(faulty.host)
    at(8)
    faulty.kill(faulty.emulator)
    at(9)
    faulty.start(faulty.emulator)
    at(12)
    faulty.restart(faulty.azurite)
    at(16)
    faulty.kill(faulty.host)
    at(17)
    faulty.start(faulty.host)
    burst.join(timeout=120)
    assert not burst.is_alive(), "the uploads did not finish"
    assert len(sent.expected) == BLOBS + (REQUESTS - 1) * 3 + 1
    story = "; ".join(faulty.events)

    def all_terminal():
        rows = _patient(lambda: _records(access, tag, sent), "reading the run records")
        by_id = {r["RowKey"]: r for r in rows}
        if all(by_id.get(run_id, {}).get("state") in TERMINAL for run_id in sent.expected) and \
                all(r["state"] in TERMINAL and r.get("notified") for r in rows):
            return rows  # ended, and its message sent (by its worker, or by the safety net's repair)
        return None

    try:
        rows = wait_for(all_terminal, DEADLINE, "every input to end", 0.5)
    except AssertionError:
        rows = _records(access, tag, sent)
        by_id = {r["RowKey"]: r for r in rows}
        open_ = {run_id: (what, by_id.get(run_id, {}).get("state"), by_id.get(run_id, {}).get("notified"))
                 for run_id, (_, what) in sent.expected.items()
                 if not (by_id.get(run_id, {}).get("state") in TERMINAL and by_id[run_id].get("notified"))}
        raise AssertionError(f"{len(open_)} input(s) never ended: {list(open_.items())[:10]} (events: {story})"
                             ) from None
    print(f"all {len(sent.expected)} inputs ended {time.monotonic() - t0:.0f}s after the burst began; {story}")

    # Every input ends exactly once: one record each, nothing else, in the state it should be in. An upload whose
    # answer was lost while Azurite stopped is repeated (by the SDK or by the test) and makes a second blob
    # version: two inputs, two runs, each of which must end once like any other.
    counted = Counter(r["RowKey"] for r in rows)
    assert {k: n for k, n in counted.items() if n != 1} == {}, "one record per run"
    extra = [r for r in rows if r["RowKey"] not in sent.expected]
    assert [r for r in extra if r.get("inputName") not in sent.etags
            or ids.etag_of(r.get("inputEtag")) == ids.etag_of(sent.etags[r["inputName"]])] == [], \
        "records of inputs never sent"
    assert set(sent.expected) <= set(counted), "inputs without a record"
    for r in extra:
        sent.expected[r["RowKey"]] = ("transform", f"blob {r['inputName']} (an earlier version)")
    by_id = {r["RowKey"]: r for r in rows}
    wrong = {run_id: (sent.expected[run_id][1], r["state"], r.get("failureCode"), r.get("reason"))
             for run_id, r in by_id.items()
             if r["state"] != ("rejected" if run_id in sent.rejected else "succeeded")}
    assert not wrong, f"valid inputs must succeed under transient faults: {wrong} (events: {story})"
    assert all(by_id[r].get("reason") for r in sent.rejected), "a rejection says why"

    # One message per run: completions + failures + rejections == runs, no duplicates.
    time.sleep(3)  # a late duplicate (a redelivered event, a second finisher) would show up by now
    messages = [m for m in _patient(lambda: _messages(access), "reading the messages") if m.get("runId") in by_id]
    counts = Counter(m["runId"] for m in messages)
    # At least once, and only where documented: a worker killed between sending a run's message and marking it sent
    # leaves a claim the safety net takes over; its copy has the same messageId and says possibleDuplicate, and the
    # record names the claim it took over. That repeat is allowed when a host kill falls between that claim and the
    # takeover; any other repeat is a bug.
    def documented_repeat(run_id: str) -> bool:
        copies = [m for m in messages if m["runId"] == run_id]
        rec = by_id[run_id]
        if len(copies) != 2 or len({m["messageId"] for m in copies}) != 1 or not rec.get("notifyTakenOverFrom"):
            return False
        if sorted(bool(m.get("possibleDuplicate")) for m in copies) != [False, True]:
            return False
        claimed, taken = (datetime.fromisoformat(rec[k].replace("Z", "+00:00"))
                          for k in ("notifyTakenOverFrom", "notifyClaimedAt"))
        return any(claimed <= kill <= taken for kill in faulty.host_kills)

    twice = {k for k, v in counts.items() if v != 1}
    repeats = {k for k in twice if documented_repeat(k)}
    assert twice == repeats, ("a run announced more than once: "
                              f"{[(m, {f: by_id[m['runId']].get(f) for f in WHEN}) for m in messages if m['runId'] in twice - repeats]}"
                              f" (host kills: {faulty.host_kills}; events: {story})")
    if repeats:
        print(f"{len(repeats)} message(s) repeated by the safety net after a worker was killed between sending and "
              f"marking them (same messageId, possibleDuplicate): {sorted(repeats)}")
    assert set(counts) == set(by_id), f"runs without a message: {sorted(set(by_id) - set(counts))[:5]}"
    assert len({m["messageId"] for m in messages}) == len(by_id) == len(messages) - len(repeats)

    # What ran: the containers the emulator started per task are the attempts Batch reports for it.
    starts = _starts(faulty)
    task_runs = [r for r in rows if r["state"] != "rejected"]

    def manifest_of(r: dict) -> dict:
        return json.loads(access.storage.blob.get_blob_client(r["outputContainer"], r["manifestBlob"])
                          .download_blob().readall())

    with ThreadPoolExecutor(max_workers=8) as pool:
        manifests = list(pool.map(manifest_of, task_runs))
    mismatched = {}
    for r, manifest in zip(task_runs, manifests, strict=True):
        retries, requeues = manifest.get("retryCount") or 0, manifest.get("requeueCount") or 0
        started = starts.get(r["RowKey"], 0)
        # A requeue (the emulator was killed) may come before the container started (files still staging).
        if not 1 + retries <= started <= 1 + retries + requeues:
            mismatched[r["RowKey"]] = {"started": started, "retryCount": retries, "requeueCount": requeues}
    assert not mismatched, f"container starts differ from Batch's attempts: {mismatched}"
    assert sum(starts.get(r["RowKey"], 0) for r in task_runs) == sum(starts[t] for t in starts
                                                                    if t in by_id), "no stray starts"

    # The emulator's restart after kill -9 removed the containers of the attempts it requeued.
    if faulty.env.get("CONTAINER_RUNTIME") == "podman":
        assert _leftover_containers(faulty) == []


def _leftover_containers(faulty: FaultyStack) -> list[str]:
    import subprocess

    from devstack.batch_emulator.agent.node_agent import instance_id
    from devstack.common import image_copy

    prefix = f"batchemu-{instance_id(faulty.emulator_data)}-"
    engine_env = {k: faulty.env[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF") if k in faulty.env}
    listing = subprocess.run(image_copy.argv("podman", ["ps", "-a", "--format", "{{.Names}}"]),  # noqa: S603
                             env={**os.environ, **engine_env}, capture_output=True, text=True, timeout=60, check=True)
    return [n for n in listing.stdout.split() if n.startswith(prefix)]
