"""Command line: ``python -m devstack.func_host --app-dir DIR --settings FILE [--host-id ID] [--state-dir DIR]``.

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 when the app or its settings cannot be started
(the message names the function or setting and the fix), 1 on an unexpected error.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from devstack.func_host.errors import HOST_ERRORS, AppLoadError, HostError
from devstack.func_host.host import FunctionsHost, HostOptions

log = logging.getLogger("func_host")


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging API name
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_UtcFormatter("%(asctime)s [%(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def apply_log_levels(levels: dict[str, int], explicit_default: str | None = None) -> None:
    """host.json logging.logLevel: "default" sets the root level, other keys the logger of that category
    (e.g. "Function" or "Function.submit_drain" for the Executing/Executed lines); --log-level wins for default."""
    for category, level in levels.items():
        if category.lower() == "default":
            if not explicit_default:
                logging.getLogger().setLevel(level)
        else:
            logging.getLogger(category).setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.func_host",
                                     description="Run a Python v2 Azure Functions app locally against Azurite.")
    parser.add_argument("--app-dir", default=".", type=Path, help="folder holding function_app.py and host.json")
    parser.add_argument("--settings", type=Path, default=None,
                        help="local.settings.json to load (default: <app-dir>/local.settings.json)")
    parser.add_argument("--host-id", default=None, help="host id used in storage paths (blob receipts, timers)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where the status file host.json is written (default: <app-dir>/.devstack/func_host)")
    parser.add_argument("--grace-period", type=float, default=10.0,
                        help="seconds to let in-flight invocations finish on SIGTERM/SIGINT (default 10)")
    parser.add_argument("--blob-scan-interval", type=float, default=0.04,
                        help="shortest pause between container scans for blob triggers (default 0.04; a scan that "
                             "takes longer pauses ten times as long, up to 1 s)")
    parser.add_argument("--eventgrid-retry-schedule", default=None, metavar="SECONDS,...",
                        help="local Event Grid retry delays in seconds, the last one repeating (default "
                             "10,30,60,300,600,1800,3600; setting EventGridLocal__retrySchedule)")
    parser.add_argument("--eventgrid-max-attempts", type=int, default=None,
                        help="maxDeliveryAttempts, 1-30 (default 30; setting EventGridLocal__maxDeliveryAttempts)")
    parser.add_argument("--eventgrid-ttl-minutes", type=float, default=None,
                        help="eventTimeToLive in minutes (default 1440; setting EventGridLocal__eventTimeToLive)")
    parser.add_argument("--eventgrid-concurrency", type=int, default=None,
                        help="deliveries at a time (default 16; setting EventGridLocal__maxConcurrentDeliveries)")
    parser.add_argument("--check", action="store_true",
                        help="load settings and the app, validate every function, print them and exit")
    parser.add_argument("--log-level", default=os.environ.get("FUNC_HOST_LOG_LEVEL"),
                        help="overrides host.json logging.logLevel.default (DEBUG, INFO, WARNING, ERROR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging((args.log_level or "INFO").upper())
    if args.blob_scan_interval <= 0 or args.grace_period < 0:
        log.error("--blob-scan-interval must be > 0 and --grace-period >= 0")
        return 2
    if args.eventgrid_concurrency is not None and args.eventgrid_concurrency < 1:
        log.error("--eventgrid-concurrency must be >= 1")
        return 2
    options = HostOptions(app_dir=args.app_dir, settings_file=args.settings or args.app_dir / "local.settings.json",
                          host_id=args.host_id, state_dir=args.state_dir, grace_period=args.grace_period,
                          blob_scan_interval=args.blob_scan_interval,
                          eventgrid_retry_schedule=args.eventgrid_retry_schedule,
                          eventgrid_max_attempts=args.eventgrid_max_attempts,
                          eventgrid_ttl_minutes=args.eventgrid_ttl_minutes,
                          eventgrid_concurrency=args.eventgrid_concurrency)
    host = FunctionsHost(options)
    try:
        host.load()
    except HOST_ERRORS as exc:
        _report(exc)
        return 2
    apply_log_levels(host.config.log_levels, explicit_default=args.log_level)
    if args.check:
        for lst in host.listeners:
            print(f"{lst.function.name}: {lst.describe()}")
        return 0
    code = _serve(host)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # sync invocations abandoned after the grace period must not keep the process alive


def _serve(host: FunctionsHost) -> int:
    stop, force = threading.Event(), threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():
            force.set()
        log.info("Received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        host.start()
        while not stop.wait(0.5):
            pass
        host.shutdown(force)
        return 0
    except HOST_ERRORS as exc:
        _report(exc)
        if host.status.data:  # this instance had announced itself: say why it is gone
            host.status.write(state="failed", error=str(exc))
        return 2
    except Exception as exc:
        log.exception("Host failed unexpectedly")
        if host.status.data:
            host.status.write(state="failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        logging.shutdown()


def _report(exc: HostError) -> None:
    cause = exc.__cause__
    if isinstance(exc, AppLoadError) and cause is not None:
        detail = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        log.error("Host start failed: %s\n%s", exc, detail.rstrip())
    else:
        log.error("Host start failed: %s", exc)
