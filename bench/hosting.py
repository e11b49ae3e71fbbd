"""What the benchmarks share: private Functions host instances with the call counter on, app settings, load average.

A private host is ``python -m devstack.func_host`` started by the benchmark with its own host id, state dir and
settings file (so it never meets the stack's own host), with ``EVENTBATCH_CALL_COUNTER_FILE`` set: every HTTP
request the host process sends is counted, split into app (function code) and host (trigger machinery) by
``devstack/func_host/call_counter.py``. The benchmarks observe the app only from the outside: what the counter
file says, what Storage holds (manifests, run records, queues) and what Batch lists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.common import paths

REPO = paths.REPO_ROOT
NAIVE_APP = REPO / "bench" / "naive_app"
NAIVE_APP_FILES = ("function_app.py",)


class BenchError(RuntimeError):
    """A benchmark could not be run; the message says what failed and where its log is."""


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return percentile(values, 0.5)


def sample_values() -> dict[str, str]:
    sample = REPO / "local.settings.sample.json"
    return {k: str(v) for k, v in json.loads(sample.read_text()).get("Values", {}).items()}


def app_settings(stack_env: dict[str, str], batch_url: str, overrides: dict[str, str],
                 local_defaults: bool = True) -> dict[str, str]:
    """The app's settings as the local stack writes them (local.settings.sample.json, plus devstack/stack/host.py
    LOCAL_DEFAULTS when ``local_defaults``), pointed at the stack's Azurite and at ``batch_url``, then
    ``overrides``. Without ``local_defaults`` the local timing overrides are removed, so every schedule and
    timeout is the app's own default, as on Azure."""
    from devstack.stack.host import LOCAL_DEFAULTS

    values = sample_values()
    if local_defaults:
        for key, value in LOCAL_DEFAULTS.items():
            values.setdefault(key, value)
    else:
        for key in LOCAL_DEFAULTS:
            values.pop(key, None)
    conn = stack_env["AZURE_STORAGE_CONNECTION_STRING"]
    for key, value in list(values.items()):
        if value.replace(" ", "").lower() == "usedevelopmentstorage=true" or "AccountName=devstoreaccount1" in value:
            values[key] = conn
        elif key in stack_env:
            values[key] = stack_env[key]
    values["BATCH_ACCOUNT_URL"] = batch_url
    values.update(overrides)
    return values


def prepare_naive_app(workdir: Path) -> Path:
    """A copy of bench/naive_app with the repo's host.json (identical content by construction)."""
    target = workdir / "naive_app"
    target.mkdir(parents=True, exist_ok=True)
    for name in NAIVE_APP_FILES:
        shutil.copyfile(NAIVE_APP / name, target / name)
    shutil.copyfile(REPO / "host.json", target / "host.json")
    return target


class PrivateHost:
    """One Functions host process run by a benchmark; ``counts()`` reads its call counter."""

    def __init__(self, app_dir: Path, settings: dict[str, str], workdir: Path, host_id: str,
                 batch_latency_ms: float = 0.0, extra_env: dict[str, str] | None = None,
                 start_timeout: float = 90.0):
        self.app_dir = Path(app_dir)
        self.workdir = Path(workdir)
        self.host_id = host_id
        self.settings = settings
        self.batch_latency_ms = batch_latency_ms
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.state_dir = self.workdir / "state"
        self.settings_file = self.workdir / "local.settings.json"
        self.counter_file = self.workdir / "calls.json"
        self.log = self.workdir / "host.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateHost:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": self.settings}, indent=2))
        env = {**os.environ, **self.extra_env, "EVENTBATCH_CALL_COUNTER_FILE": str(self.counter_file),
               "EVENTBATCH_BATCH_LATENCY_MS": f"{self.batch_latency_ms:g}"}
        for key in self.settings:  # the settings file decides, as for the stack's host
            env.pop(key, None)
        command = [sys.executable, "-m", "devstack.func_host", "--app-dir", str(self.app_dir),
                   "--settings", str(self.settings_file), "--host-id", self.host_id,
                   "--state-dir", str(self.state_dir)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while self.status().get("state") != "running":
            if self.proc.poll() is not None:
                raise BenchError(f"Functions host {self.host_id} exited with code {self.proc.returncode}; "
                                 f"log {self.log}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"Functions host {self.host_id} not running after {self.start_timeout:.0f}s; "
                                 f"log {self.log}:\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def status(self) -> dict:
        try:
            return json.loads((self.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def functions(self) -> list[dict]:
        return list(self.status().get("functions") or [])

    def counts(self) -> dict:
        """The latest snapshot (written every 0.25 s by the host process)."""
        for _ in range(20):
            try:
                return json.loads(self.counter_file.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
        raise BenchError(f"no call counter snapshot at {self.counter_file}; log {self.log}")

    def fresh_counts(self, wait: float = 0.6) -> dict:
        """A snapshot written after now (the writer interval is 0.25 s)."""
        since = time.time()
        deadline = time.monotonic() + wait + 2
        while time.monotonic() < deadline:
            snap = self.counts()
            if snap.get("updated", 0) >= since:
                return snap
            time.sleep(0.05)
        return self.counts()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> PrivateHost:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def delta(after: dict, before: dict) -> dict[str, int]:
    """Per detail key (``<origin> <service> <METHOD> <op>``), the requests between two snapshots."""
    a, b = after.get("detail", {}), before.get("detail", {})
    return {k: a.get(k, 0) - b.get(k, 0) for k in a if a.get(k, 0) - b.get(k, 0)}


STORAGE = ("blob", "queue", "table")


def summarize(calls: dict[str, int]) -> dict[str, int]:
    """Totals of a delta: batch, storage per origin, and the host's container scans (blob list calls)."""
    out = {"batch": 0, "app_storage": 0, "host_storage": 0, "host_blob_scans": 0, "other": 0}
    for key, count in calls.items():
        origin, service, method, op = key.split(" ", 3)
        if service == "batch":
            out["batch"] += count
        elif service in STORAGE:
            out[f"{origin}_storage"] = out.get(f"{origin}_storage", 0) + count
            if origin == "host" and service == "blob" and method == "GET" and op == "list":
                out["host_blob_scans"] += count
        else:
            out["other"] += count
    return out


def unique_tag(prefix: str) -> str:
    """Lowercase letters and digits (valid in container, queue and table names)."""
    return re.sub(r"[^a-z0-9]", "", f"{prefix}{os.getpid() % 1000:03d}{int(time.time() * 1000) % 10**7:07d}")
