"""Command line and composition root of the Batch emulator.

    python -m devstack.batch_emulator --host 127.0.0.1 --port 8095 --data-dir .devstack/batch \
        --account eventbatchlocal:<base64 key> --runtime auto

``main(argv)`` is what ``eventbatch batch-emulator`` calls. Configuration is validated here once, with errors
that name the option and the fix; the well-known local account is used when no --account is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.batch_emulator.errors import ConfigError
from devstack.batch_emulator.faults import FaultInjector, FaultSettings
from devstack.batch_emulator.handlers.routes import ROUTES
from devstack.batch_emulator.preemption import DEFAULT_DURATION, PreemptionSettings
from devstack.batch_emulator.protocol import auth
from devstack.batch_emulator.protocol.http_server import (
    DEFAULT_CLIENT_TIMEOUT,
    SUPPORTED_API_VERSIONS,
    EmulatorHTTPServer,
)
from devstack.batch_emulator.protocol.routing import Router
from devstack.batch_emulator.runtimes import (
    MissingRuntime,
    ProcessRuntime,
    RuntimeUnavailable,
    detect_runtime,
)
from devstack.batch_emulator.service import AccountService
from devstack.batch_emulator.staging import CredentialResolver
from devstack.common.local_accounts import BATCH_ACCOUNT_KEY, BATCH_ACCOUNT_NAME
from devstack.func_host.events import publish_blob_created

log = logging.getLogger("batch_emulator")

# The well-known local account (not a secret; like Azurite's devstoreaccount1 key).
DEFAULT_ACCOUNT, DEFAULT_KEY = BATCH_ACCOUNT_NAME, BATCH_ACCOUNT_KEY


@dataclass
class Config:
    host: str
    port: int
    data_dir: Path
    accounts: dict[str, str]
    runtime: str
    log_level: str = "INFO"
    allow_host_access: bool = False
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT
    faults: FaultSettings = FaultSettings()
    blob_events: Path | None = None
    preemption: PreemptionSettings = PreemptionSettings()
    active_job_quota: int | None = None


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="batch-emulator", description="Azure Batch data-plane emulator")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8095, help="port (default 8095; 0 picks a free one)")
    p.add_argument("--data-dir", default=".devstack/batch", help="where state and node folders live")
    p.add_argument("--account", action="append", default=[], metavar="NAME:KEY",
                   help=f"account name and base64 key; repeatable (default {DEFAULT_ACCOUNT} with the well-known key)")
    p.add_argument("--runtime", default="auto", choices=["auto", "podman", "docker", "process"],
                   help="how container pools run tasks (non-container pools always run host processes)")
    p.add_argument("--log-level", default=os.environ.get("BATCH_EMULATOR_LOG_LEVEL", "INFO"))
    p.add_argument("--allow-host-access", action="store_true",
                   help="accept containerRunOptions that reach into the host (--privileged, host namespaces, "
                        "devices, host-path mounts, capabilities); refused with 400 by default")
    p.add_argument("--client-timeout", type=float, default=DEFAULT_CLIENT_TIMEOUT, metavar="SECONDS",
                   help=f"socket timeout per connection: slow or idle clients are dropped (default "
                        f"{DEFAULT_CLIENT_TIMEOUT:g})")
    p.add_argument("--fault-rate", type=float, default=0.0, metavar="FRACTION",
                   help="answer this share of API requests (0-1) with 429 or 503 and Retry-After (default 0)")
    p.add_argument("--fault-retry-after", type=int, default=1, metavar="SECONDS",
                   help="Retry-After sent with injected faults (default 1)")
    p.add_argument("--fault-latency-ms", type=float, default=0.0, metavar="MS",
                   help="delay added to every API request (default 0)")
    p.add_argument("--fault-seed", type=int, default=None, help="seed for a repeatable sequence of faults")
    p.add_argument("--blob-events", default=None, metavar="HOST_STATE_DIR",
                   help="post a BlobCreated event (Event Grid's schema) for every output file a task stored to the "
                        "local Functions host with this state dir, once the task shows completed, as a storage "
                        "account's Event Grid subscription would (default: none)")
    p.add_argument("--preempt-rate", type=float, default=0.0, metavar="FRACTION_PER_MINUTE",
                   help="preempt Spot/low-priority nodes at this rate (0-1: the expected share of them per minute), "
                        "requeueing their tasks as Batch does; dedicated nodes never (default 0)")
    p.add_argument("--preempt-seed", type=int, default=None, metavar="N",
                   help="seed for a repeatable sequence of preemptions")
    p.add_argument("--preempt-duration", type=float, default=DEFAULT_DURATION, metavar="SECONDS",
                   help=f"how long a preempted node stays preempted before it starts again (default "
                        f"{DEFAULT_DURATION:g})")
    p.add_argument("--active-job-quota", type=int, default=None, metavar="N",
                   help="answer 409 ActiveJobAndScheduleQuotaReached to a job add while N jobs are active, as Batch "
                        "does at the account's quota (default: no quota)")
    ns = p.parse_args(argv)
    accounts = {}
    for item in ns.account or [f"{DEFAULT_ACCOUNT}:{DEFAULT_KEY}"]:
        name, sep, key = item.partition(":")
        if not sep or not name or not key:
            raise ConfigError(f"--account {item!r}: expected NAME:KEY with a base64 KEY, e.g. {DEFAULT_ACCOUNT}:<base64 key>")
        if not name.isalnum() or not name.islower() or not 3 <= len(name) <= 24:
            raise ConfigError(f"--account {name}: a Batch account name is 3-24 lower-case letters and digits")
        try:
            auth.decode_key(name, key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        accounts[name] = key
    if not 0 <= ns.port <= 65535:
        raise ConfigError(f"--port {ns.port}: must be 0-65535")
    if not 0 <= ns.fault_rate <= 1:
        raise ConfigError(f"--fault-rate {ns.fault_rate:g}: must be a fraction from 0 to 1, e.g. 0.1 for 10 %")
    if ns.fault_retry_after < 0:
        raise ConfigError(f"--fault-retry-after {ns.fault_retry_after}: must be 0 or more seconds")
    if ns.fault_latency_ms < 0:
        raise ConfigError(f"--fault-latency-ms {ns.fault_latency_ms:g}: must be 0 or more milliseconds")
    if ns.active_job_quota is not None and ns.active_job_quota < 1:
        raise ConfigError(f"--active-job-quota {ns.active_job_quota}: must be 1 or more (leave it out for no quota)")
    if ns.client_timeout <= 0:
        raise ConfigError(f"--client-timeout {ns.client_timeout:g}: must be more than 0 seconds")
    faults = FaultSettings(ns.fault_rate, ns.fault_retry_after, ns.fault_latency_ms, ns.fault_seed)
    preemption = PreemptionSettings(ns.preempt_rate, ns.preempt_seed, ns.preempt_duration)
    try:
        preemption.check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Config(ns.host, ns.port, Path(ns.data_dir), accounts, ns.runtime, ns.log_level,
                  allow_host_access=ns.allow_host_access, client_timeout=ns.client_timeout, faults=faults,
                  blob_events=Path(ns.blob_events) if ns.blob_events else None, preemption=preemption,
                  active_job_quota=ns.active_job_quota)


def _blob_events(host_state_dir: Path | None):
    """The --blob-events subscriber: each stored output file as a BlobCreated event to the local host."""
    if host_state_dir is None:
        return None

    def post(blobs: list[dict]) -> None:
        for b in blobs:
            publish_blob_created(host_state_dir, b["url"], b["container"], b["name"], etag=b["etag"], size=b["size"])

    return post


class EmulatorApp:
    """All accounts plus what the HTTP layer needs: keys for SharedKey and a health report."""

    def __init__(self, config: Config, env: dict[str, str] | None = None):
        env = dict(os.environ if env is None else env)
        self.config = config
        self.keys = {name: auth.decode_key(name, key) for name, key in config.accounts.items()}
        # Process groups are recorded on disk so that a restart after kill -9 can end the ones it left running.
        self.process_runtime = ProcessRuntime(env, state_dir=config.data_dir / "processes")
        self.runtime_problem = None
        if config.runtime == "process":
            self.container_runtime = self.process_runtime
        else:
            try:
                self.container_runtime = detect_runtime(config.runtime, env)
            except RuntimeUnavailable as exc:
                if config.runtime != "auto":
                    raise ConfigError(f"--runtime {config.runtime}: {exc}") from None
                self.runtime_problem = str(exc)
                log.warning("no container runtime: container pools will fail to start nodes (%s)", exc)
                self.container_runtime = MissingRuntime(str(exc))
        resolver = CredentialResolver.from_env(env)
        self.services = {}
        for name in config.accounts:
            data = config.data_dir / name
            self.services[name] = AccountService(name, data, self.container_runtime, self.process_runtime, resolver,
                                                 allow_host_access=config.allow_host_access,
                                                 on_blobs_created=_blob_events(config.blob_events),
                                                 preemption=config.preemption)
            self.services[name].model.active_job_quota = config.active_job_quota
        self.faults = FaultInjector(config.faults) if config.faults.active else None
        self.started = time.time()
        self.url = ""

    def start(self) -> None:
        for service in self.services.values():
            service.model.account_url = self.url
            service.start()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def health(self) -> dict:
        """Unauthenticated, so it names no filesystem path (readers: the launcher, devstack/stack/emulator.py and
        test fixtures use status, runtime and runtimeProblem)."""
        report = {"status": "ok", "accounts": sorted(self.services), "runtime": self.container_runtime.name,
                  "runtimeProblem": _without_paths(self.runtime_problem),
                  "apiVersions": list(SUPPORTED_API_VERSIONS), "uptimeSeconds": round(time.time() - self.started, 1),
                  "allowHostAccess": self.config.allow_host_access}
        if self.faults is not None:
            report["faults"] = self.faults.report()
        if self.config.preemption.rate > 0:
            report["preemption"] = {"ratePerMinute": self.config.preemption.rate,
                                    "preempted": sum(s.preempter.preempted for s in self.services.values())}
        return report


def _without_paths(text: str | None) -> str | None:
    return re.sub(r"(?<![\w:/])/[^\s,;'\")]+", "<path>", text) if text else text


class RunningEmulator:
    """An emulator serving in background threads (used by main() and by tests/bench in-process)."""

    def __init__(self, config: Config, env: dict[str, str] | None = None):
        self.app = EmulatorApp(config, env)
        self.httpd = EmulatorHTTPServer((config.host, config.port), self.app, Router(ROUTES),
                                        config.client_timeout)
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.app.url = self.url
        self.app.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="batch-emulator-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.stop()


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"batch-emulator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        emulator = RunningEmulator(config)
    except ConfigError as exc:
        print(f"batch-emulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"batch-emulator: cannot listen on {config.host}:{config.port}: {exc} (choose another --port)",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("Batch emulator listening on %s (accounts: %s; runtime: %s; data: %s)", emulator.url,
             ", ".join(config.accounts), emulator.app.container_runtime.name, config.data_dir)
    print(f"Batch emulator ready at {emulator.url}", flush=True)
    stop.wait()
    emulator.stop()
    return 0
