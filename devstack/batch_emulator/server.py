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
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.batch_emulator import auth
from devstack.batch_emulator.http_server import SUPPORTED_API_VERSIONS, EmulatorHTTPServer
from devstack.batch_emulator.service import AccountService, UnavailableRuntime

log = logging.getLogger("batch_emulator")

DEFAULT_ACCOUNT = "eventbatchlocal"
# Well-known local key (base64, not a secret; like Azurite's devstoreaccount1 key).
DEFAULT_KEY = "ZXZlbnRiYXRjaC1sb2NhbC1lbXVsYXRvci13ZWxsLWtub3duLWtleS1ub3QtYS1zZWNyZXQ="


class ConfigError(ValueError):
    """A command-line setting is invalid; the message names the option and the fix."""


@dataclass
class Config:
    host: str
    port: int
    data_dir: Path
    accounts: dict[str, str]
    runtime: str
    log_level: str = "INFO"


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
    return Config(ns.host, ns.port, Path(ns.data_dir), accounts, ns.runtime, ns.log_level)


class EmulatorApp:
    """All accounts plus what the HTTP layer needs: keys for SharedKey and a health report."""

    def __init__(self, config: Config, env: dict[str, str] | None = None):
        from devstack.batch_emulator.runtimes import ProcessRuntime, RuntimeUnavailable, detect_runtime
        from devstack.batch_emulator.staging import CredentialResolver

        env = dict(os.environ if env is None else env)
        self.config = config
        self.keys = {name: auth.decode_key(name, key) for name, key in config.accounts.items()}
        self.process_runtime = ProcessRuntime(env)
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
                self.container_runtime = UnavailableRuntime(str(exc))
        resolver = CredentialResolver.from_env(env)
        self.services = {}
        for name in config.accounts:
            data = config.data_dir / name
            self.services[name] = AccountService(name, data, self.container_runtime, self.process_runtime, resolver)
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
        return {"status": "ok", "accounts": sorted(self.services), "runtime": self.container_runtime.name,
                "runtimeProblem": self.runtime_problem, "apiVersions": list(SUPPORTED_API_VERSIONS),
                "uptimeSeconds": round(time.time() - self.started, 1), "dataDir": str(self.config.data_dir)}


class RunningEmulator:
    """An emulator serving in background threads (used by main() and by tests/bench in-process)."""

    def __init__(self, config: Config, env: dict[str, str] | None = None):
        self.app = EmulatorApp(config, env)
        self.httpd = EmulatorHTTPServer((config.host, config.port), self.app)
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
