"""Measurement only: count every HTTP request the Functions host process sends, for the benchmarks.

Off unless ``EVENTBATCH_CALL_COUNTER_FILE`` is set (``python -m devstack.func_host`` calls :func:`activate_from_env`
at start). Then azure-core's ``RequestsTransport.send`` is wrapped once, so every attempt of every SDK client in
the process is seen (SDK retries included), whoever built the client: the host's listeners, the bindings, the app.
Only the synchronous transport is counted: neither the host nor the app uses azure-core's async transports (aiohttp
is not installed).

Each request is classified twice:

- by service: ``blob``, ``queue``, ``table`` or ``batch`` (``other`` for anything else), from the URL: a host name
  like ``<account>.blob.core.windows.net`` / ``<account>.<region>.batch.azure.com``, else the port of the endpoints
  in the process's settings (connection strings' ``BlobEndpoint=``/``QueueEndpoint=``/``TableEndpoint=``, and
  ``BATCH_ACCOUNT_URL``), read when the first request is classified and again on a miss (settings are applied to
  the environment after start-up);
- by origin: ``app`` when the request is made on behalf of function code, ``host`` for the host's own trigger
  machinery (blob scans and receipts, queue polling and settling, timer status, lease renewal). A request is
  ``app`` when a frame of the calling stack belongs to the app (a file under the app folder, outside ``devstack/``
  and installed packages), or when the calling thread was started from app code (a thread pool the app created:
  its workers run SDK methods that may not have an app frame on their stack). The host's bindings build the
  function's arguments from host code, so a request they make is ``host``; a real host does that work too.

``EVENTBATCH_BATCH_LATENCY_MS=N`` sleeps N ms before every Batch request (client side), to simulate an Azure-like
Batch round trip against the local emulator.

The snapshot (JSON) is written to the file atomically at least every 0.5 s and when the process exits (including
``os._exit``, which the host's command line uses after shutdown)::

    {"pid": 123, "updated": 1700000000.0, "batch_latency_ms": 0,
     "totals": {"app": {"blob": 3, "batch": 1}, "host": {"blob": 40, "queue": 12}},
     "detail": {"host blob GET list": 40, "app batch POST addtaskcollection": 1, ...}}

``detail`` keys are ``<origin> <service> <METHOD> <operation>``: the ``comp`` query parameter for Storage
(``list``, ``metadata``, ``lease``, ``batch`` ...; ``messages`` for queue message calls, ``-`` otherwise) and the
last path segment for Batch (``tasks``, ``addtaskcollection``, ``jobs`` ...; ids replaced by ``{id}``).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FILE_VAR = "EVENTBATCH_CALL_COUNTER_FILE"
LATENCY_VAR = "EVENTBATCH_BATCH_LATENCY_MS"
WRITE_INTERVAL = 0.25
_APP_THREAD_ATTR = "_eventbatch_app_thread"
_SERVICE_HOST = re.compile(r"\.(blob|queue|table|batch)\.")
_BATCH_SEGMENTS = {"pools", "jobs", "tasks", "addtaskcollection", "jobschedules", "nodes", "files",
                   "applications", "supportedimages", "nodecounts", "poolusagemetrics", "subtasksinfo",
                   "lifetimejobstats", "lifetimepoolstats", "taskcounts", "taskslotcounts", "terminate",
                   "disable", "enable", "reactivate", "resize", "stopresize", "evaluateautoscale",
                   "enableautoscale", "disableautoscale", "updateproperties", "removenodes", "jobpreparationandreleasetaskstatus"}


def _parse_latency(raw: str | None) -> float:
    raw = (raw or "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{LATENCY_VAR}={raw!r}: must be a number of milliseconds >= 0")
    return value


class CallCounter:
    """Counts requests by origin/service/operation; writes snapshots to ``path``."""

    def __init__(self, path: Path, app_dir: Path, batch_latency_ms: float = 0.0, environ=None,
                 sleep=time.sleep):
        self.path = Path(path)
        self.app_dir = Path(app_dir).resolve()
        self.batch_latency_ms = batch_latency_ms
        self._environ = os.environ if environ is None else environ
        self._sleep = sleep
        self._lock = threading.Lock()
        self._detail: dict[str, int] = {}
        self._ports: dict[int, str] = {}
        self._batch_prefixes: tuple[str, ...] = ()
        self._excluded = tuple(str(p) for p in (Path(__file__).resolve().parents[1],)) + \
            ("/site-packages/", "/dist-packages/")
        self._app_root = str(self.app_dir) + os.sep
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._dirty = True

    # -- classification ---------------------------------------------------------------------------------------
    def _refresh_endpoints(self) -> None:
        ports: dict[int, str] = {}
        batch: list[str] = []
        for key, value in list(self._environ.items()):
            if not isinstance(value, str):
                continue
            for service in ("Blob", "Queue", "Table"):
                match = re.search(rf"{service}Endpoint=([^;]+)", value)
                if match:
                    port = urlsplit(match.group(1).strip()).port
                    if port:
                        ports[port] = service.lower()
            if key == "BATCH_ACCOUNT_URL" and value.strip():
                batch.append(value.strip().rstrip("/").lower())
                port = urlsplit(value.strip()).port
                if port:
                    ports.setdefault(port, "batch")
        self._ports, self._batch_prefixes = ports, tuple(batch)

    def service_of(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        match = _SERVICE_HOST.search(host + ".")
        if match:
            return match.group(1)
        for attempt in range(2):
            if url.lower().startswith(self._batch_prefixes) and self._batch_prefixes:
                return "batch"
            if parts.port in self._ports:
                return self._ports[parts.port]
            if attempt == 0:
                self._refresh_endpoints()
        return "other"

    @staticmethod
    def operation_of(service: str, url: str) -> str:
        parts = urlsplit(url)
        if service == "batch":
            segment = parts.path.rstrip("/").rsplit("/", 1)[-1].lower()
            return segment if segment in _BATCH_SEGMENTS else "{id}"
        comp = parse_qs(parts.query).get("comp")
        if comp:
            return comp[0].lower()
        if service == "queue" and (parts.path.rstrip("/").endswith("/messages") or "/messages/" in parts.path):
            return "messages"
        return "-"

    def _is_app_file(self, filename: str) -> bool:
        return filename.startswith(self._app_root) and not any(x in filename for x in self._excluded)

    def in_app_code(self, frame=None) -> bool:
        """True when the current call stack (or the thread's origin) is function code."""
        if getattr(threading.current_thread(), _APP_THREAD_ATTR, False):
            return True
        frame = frame or sys._getframe(1)
        while frame is not None:
            if self._is_app_file(frame.f_code.co_filename):
                return True
            frame = frame.f_back
        return False

    def record(self, method: str, url: str, origin: str) -> str:
        service = self.service_of(url)
        key = f"{origin} {service} {method.upper()} {self.operation_of(service, url)}"
        with self._lock:
            self._detail[key] = self._detail.get(key, 0) + 1
            self._dirty = True
        return service

    # -- snapshots --------------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            detail = dict(self._detail)
        totals: dict[str, dict[str, int]] = {"app": {}, "host": {}}
        for key, count in detail.items():
            origin, service = key.split(" ", 2)[:2]
            bucket = totals.setdefault(origin, {})
            bucket[service] = bucket.get(service, 0) + count
        return {"pid": os.getpid(), "updated": time.time(), "batch_latency_ms": self.batch_latency_ms,
                "totals": totals, "detail": dict(sorted(detail.items()))}

    def write(self) -> None:
        data = json.dumps(self.snapshot(), indent=1)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(data)
            os.replace(tmp, self.path)
        except OSError as exc:  # measurement must never break the host
            print(f"call counter: cannot write {self.path}: {exc}", file=sys.stderr)

    def _write_loop(self) -> None:
        while not self._stop.wait(WRITE_INTERVAL):
            self.write()

    def start_writer(self) -> None:
        self.write()
        self._writer = threading.Thread(target=self._write_loop, name="call-counter", daemon=True)
        self._writer.start()

    # -- patching ---------------------------------------------------------------------------------------------
    def wrap_send(self, send):
        counter = self

        def counted_send(transport, request, *args, **kwargs):
            origin = "app" if counter.in_app_code(sys._getframe(1)) else "host"
            service = counter.record(request.method, request.url, origin)
            if service == "batch" and counter.batch_latency_ms > 0:
                counter._sleep(counter.batch_latency_ms / 1000)
            return send(transport, request, *args, **kwargs)

        counted_send.__wrapped__ = send
        counted_send._eventbatch_counter = counter
        return counted_send

    def wrap_thread_start(self, start):
        counter = self

        def tracked_start(thread, *args, **kwargs):
            if counter.in_app_code(sys._getframe(1)):
                setattr(thread, _APP_THREAD_ATTR, True)
            return start(thread, *args, **kwargs)

        tracked_start.__wrapped__ = start
        return tracked_start


_ACTIVE: CallCounter | None = None


def install(counter: CallCounter) -> CallCounter:
    """Patch RequestsTransport.send and Thread.start once per process, start the writer, flush at exit."""
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    from azure.core.pipeline.transport import RequestsTransport

    RequestsTransport.send = counter.wrap_send(RequestsTransport.send)
    threading.Thread.start = counter.wrap_thread_start(threading.Thread.start)
    real_exit = os._exit

    def exit_after_flush(code):
        counter.write()
        real_exit(code)

    os._exit = exit_after_flush
    atexit.register(counter.write)
    counter.start_writer()
    _ACTIVE = counter
    return counter


def _app_dir_from_argv(argv: list[str]) -> Path:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--app-dir", default=".")
    known, _ = parser.parse_known_args(argv)
    return Path(known.app_dir)


def activate_from_env(argv: list[str] | None = None, environ=None) -> CallCounter | None:
    """Install the counter when EVENTBATCH_CALL_COUNTER_FILE is set; a bad latency value stops the start."""
    env = os.environ if environ is None else environ
    target = (env.get(FILE_VAR) or "").strip()
    try:
        latency = _parse_latency(env.get(LATENCY_VAR))
    except ValueError as exc:
        raise SystemExit(f"func_host: {exc}") from None
    if not target:
        if latency:
            raise SystemExit(f"func_host: {LATENCY_VAR} is set but {FILE_VAR} is not (the simulated Batch latency "
                             "is part of the call counter)")
        return None
    app_dir = _app_dir_from_argv(list(sys.argv[1:] if argv is None else argv))
    return install(CallCounter(Path(target), app_dir, latency, environ=env))
