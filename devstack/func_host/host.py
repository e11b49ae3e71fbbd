"""Wire settings, the app and the listeners together; run until a signal; shut down without losing work.

Start-up order follows the real host: settings into the environment, host.json, import and index the app,
validate every function (unsupported triggers/bindings, connections, paths, schedules) before any listener
starts, so a bad app fails at start with a message naming the function.
Shutdown: stop fetching, let in-flight invocations finish for up to the grace period, then release what is still
running (queue messages made visible, blob receipt leases released) so the next start picks it up.
"""

import logging
import os
import re
import secrets
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import HttpResponseError, ServiceRequestError

from devstack.func_host import bindings
from devstack.func_host.app_settings import apply_settings, read_settings_file, resolve_percent_settings
from devstack.func_host.blob_listener import BlobListener, Slots
from devstack.func_host.blob_path import parse_blob_path
from devstack.func_host.blob_receipts import ReceiptStore
from devstack.func_host.clients import blob_service, probe_blob_service
from devstack.func_host.connections import resolve_connection
from devstack.func_host.errors import ConfigError, HostError
from devstack.func_host.host_config import load_host_json
from devstack.func_host.invoker import Invoker, default_thread_count
from devstack.func_host.journal import InflightJournal
from devstack.func_host.loader import LoadedFunction, load_functions
from devstack.func_host.ncrontab import parse_schedule
from devstack.func_host.queue_listener import QueueListener
from devstack.func_host.renewer import Renewer
from devstack.func_host.status import StatusFile, now_iso
from devstack.func_host.timer_listener import TimerListener
from devstack.func_host.webhook import WebhookServer
from devstack.services import pid_alive

log = logging.getLogger("func_host")

_HOST_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


@dataclass
class HostOptions:
    app_dir: Path
    settings_file: Path
    host_id: str | None = None
    state_dir: Path | None = None
    grace_period: float = 10.0
    blob_scan_interval: float = 0.04
    webhook_port: int = 0  # 0: any free port (written to the status file)


def derive_host_id(app_dir: Path, explicit: str | None) -> str:
    """--host-id, else AzureFunctionsWebHost__hostid, else machine + app folder (lowercase, <= 32 chars)."""
    value = explicit or os.environ.get("AzureFunctionsWebHost__hostid")
    if value:
        if not _HOST_ID.match(value):
            raise ConfigError(f"host id {value!r}: use 1-32 lowercase letters, digits and dashes "
                              "(--host-id or AzureFunctionsWebHost__hostid)")
        return value
    raw = f"{socket.gethostname()}-{app_dir.resolve().name}".lower()
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")[:32].strip("-")
    return cleaned or "localhost"


def _source(fn: LoadedFunction) -> str:
    """A blob trigger's source: EventGrid (pushed by the webhook, scanned as the fallback) or the scan alone."""
    return str(getattr(fn.trigger, "source", None) or "LogsAndContainerScan")


class FunctionsHost:
    def __init__(self, options: HostOptions):
        self.options = options
        self.app_dir = options.app_dir.resolve()
        self.state_dir = (options.state_dir or self.app_dir / ".devstack" / "func_host").resolve()
        self.status = StatusFile(self.state_dir)
        self.listeners: list = []
        self.functions: list[LoadedFunction] = []
        self.lease_id = str(uuid.uuid4())
        self.invoker: Invoker | None = None
        self.renewer = Renewer()
        self.settle_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="settle")
        self.journal = InflightJournal(self.state_dir)
        self.orphans: list[dict] = []
        self.webhook: WebhookServer | None = None

    # -- start-up -------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Everything that can fail because of the app or its settings; nothing is started yet."""
        apply_settings(read_settings_file(self.options.settings_file))
        self.config = load_host_json(self.app_dir)
        self.host_id = derive_host_id(self.app_dir, self.options.host_id)
        self.functions = load_functions(self.app_dir)
        self.host_storage = resolve_connection(None, "host storage (AzureWebJobsStorage)")
        self.invoker = Invoker(default_thread_count(), self.config.function_timeout)
        previous = self.status.read_previous()
        self.status.check_not_running(previous, self.host_id)
        previous_lease = None
        if (previous.get("state") != "stopped" and previous.get("host_id") == self.host_id
                and isinstance(previous.get("pid"), int) and not pid_alive(previous["pid"])):
            previous_lease = previous.get("lease_id")
            self.orphans = self.journal.read_previous()
        self.receipts = ReceiptStore(blob_service(self.host_storage.connection_string), self.host_id, self.lease_id)
        slots = Slots(self.config.blobs.max_degree_of_parallelism)
        for fn in self.functions:
            bindings.check_trigger_annotation(fn.name, fn.trigger_type, fn.trigger_annotation)
            self.listeners.append(self._listener(fn, slots, previous_lease))
        pushed = {lst.function.name: lst for lst in self.listeners
                  if isinstance(lst, BlobListener) and _source(lst.function) == "EventGrid"}
        if pushed:
            self.webhook = WebhookServer(pushed, key=secrets.token_urlsafe(24), port=self.options.webhook_port)

    def _listener(self, fn: LoadedFunction, slots: Slots, previous_lease: str | None):
        where = f"function {fn.name!r}"
        trigger = fn.trigger
        if fn.trigger_type == "queueTrigger":
            name = resolve_percent_settings(trigger.queue_name or "", where=f"{where} queue_name").lower()
            if not _QUEUE_NAME.match(name):
                raise ConfigError(f"{where}: queue name {name!r} is invalid (3-63 lowercase letters, digits, "
                                  "single dashes)")
            connection = resolve_connection(trigger.connection, where)
            return QueueListener(fn, connection.connection_string, name, self.config.queues, self.invoker,
                                 self.renewer, self.settle_pool, self.journal, self.orphans)
        if fn.trigger_type == "blobTrigger":
            path = parse_blob_path(trigger.path, where)
            connection = resolve_connection(trigger.connection, where)
            return BlobListener(fn, connection, path, self.receipts, self.config, self.invoker, self.renewer,
                                self.settle_pool, slots, self.options.blob_scan_interval, previous_lease)
        schedule = parse_schedule(resolve_percent_settings(trigger.schedule or "", where=f"{where} schedule"))
        return TimerListener(fn, schedule, blob_service(self.host_storage.connection_string), self.host_id,
                             self.invoker)

    def start(self) -> None:
        self.status.write(pid=os.getpid(), state="starting", started=now_iso(), host_id=self.host_id,
                          lease_id=self.lease_id, app_dir=str(self.app_dir), functions=[])
        try:
            probe_blob_service(self.host_storage.connection_string)
            self.receipts.ensure_container()
        except (ServiceRequestError, HttpResponseError) as exc:
            raise HostError(f"cannot reach host storage (setting {self.host_storage.setting_name}): "
                            f"{type(exc).__name__}: {exc}. Is Azurite running? Start the stack with `make up`") from exc
        self.invoker.start()
        self.renewer.start()
        if self.webhook is not None:
            self.webhook.start()
            self.status.write(webhook={"url": self.webhook.url, "key": self.webhook.key})
            self.status.protect()
        self.journal.reset()  # the predecessor's entries are in self.orphans; listeners release them at start
        for listener in self.listeners:
            listener.start()
        functions = [{"name": lst.function.name, "trigger": lst.function.trigger_type, "detail": lst.describe(),
                      **({"container": lst.path.container, "source": _source(lst.function)}
                         if isinstance(lst, BlobListener) else {})}
                     for lst in self.listeners]
        for item in functions:
            log.info("Function %s: %s", item["name"], item["detail"])
        self.status.write(state="running", functions=functions)
        log.info("Host started (host id %s, %d function(s), state %s)", self.host_id, len(functions),
                 self.status.path)

    # -- shutdown -------------------------------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(listener.in_flight for listener in self.listeners)

    def shutdown(self, force: threading.Event | None = None) -> None:
        self.status.write(state="stopping")
        for listener in self.listeners:
            listener.stop()
        if self.webhook is not None:
            self.webhook.stop()
        deadline = time.monotonic() + self.options.grace_period
        pending = self.in_flight()
        if pending:
            log.info("Waiting up to %.0f s for %d in-flight invocation(s) to finish", self.options.grace_period,
                     pending)
        while self.in_flight() and time.monotonic() < deadline and not (force and force.is_set()):
            time.sleep(0.1)
        for listener in self.listeners:
            listener.release_all()
        self.settle_pool.shutdown(wait=True)
        self.renewer.stop()
        if self.invoker:
            self.invoker.shutdown()
        self.status.write(state="stopped", stopped=now_iso())
        log.info("Host stopped")
