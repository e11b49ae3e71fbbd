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

from devstack.common.procs import pid_alive
from devstack.func_host import bindings
from devstack.func_host.app_settings import apply_settings, read_settings_file, resolve_percent_settings
from devstack.func_host.blob_listener import BlobListener, Slots
from devstack.func_host.blob_path import parse_blob_path
from devstack.func_host.blob_receipts import ReceiptStore
from devstack.func_host.clients import blob_service, probe_blob_service
from devstack.func_host.connections import resolve_connection
from devstack.func_host.errors import ConfigError, HostError
from devstack.func_host.eventgrid_listener import EventGridListener, Subscription
from devstack.func_host.eventgrid_local import DEFAULT_CONCURRENCY, PUBLISH_PATH, LocalEventGrid
from devstack.func_host.eventgrid_policy import DeadLetterWriter, parse_policy
from devstack.func_host.eventgrid_scan import MIN_SCAN_INTERVAL, FallbackScanner
from devstack.func_host.eventgrid_webhook import PATH as EVENTGRID_PATH
from devstack.func_host.eventgrid_webhook import EventGridWebhook
from devstack.func_host.host_config import load_host_json
from devstack.func_host.invoker import Invoker, default_thread_count
from devstack.func_host.journal import InflightJournal
from devstack.func_host.loader import LoadedFunction, load_functions
from devstack.func_host.queue_listener import QueueListener
from devstack.func_host.renewer import Renewer
from devstack.func_host.status import StatusFile, now_iso
from devstack.func_host.timer_listener import TimerListener
from devstack.func_host.webhook import WebhookServer
from shared.ncrontab import parse_schedule

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
    # local Event Grid (eventGridTrigger): None = the EventGridLocal__* setting, else Event Grid's default
    eventgrid_retry_schedule: str | None = None  # comma-separated seconds
    eventgrid_max_attempts: int | None = None
    eventgrid_ttl_minutes: float | None = None
    eventgrid_concurrency: int | None = None
    eventgrid_scan_interval: float = MIN_SCAN_INTERVAL


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


_CONTAINER = re.compile(r"^(?:\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")


def _check_container(name: str, setting: str) -> None:
    if not _CONTAINER.match(name):
        raise ConfigError(f"{setting}: container name {name!r} is invalid (3-63 lowercase letters, digits, single "
                          "dashes)")


def _subscription(function: str, environ=None) -> Subscription | None:
    """``EventGridLocal__<function>`` = ``<container>[/<prefix>]`` (%Setting% resolved), or None (webhook only)."""
    env = os.environ if environ is None else environ
    setting = f"EventGridLocal__{function}"
    raw = env.get(setting)
    if raw is None:
        raw = next((v for k, v in env.items() if k.lower() == setting.lower()), None)
    if raw is None or not raw.strip():
        return None
    value = resolve_percent_settings(raw.strip(), env, where=setting).strip().lstrip("/")
    container, _, prefix = value.partition("/")
    _check_container(container, setting)
    return Subscription(function=function, container=container, prefix=prefix)


_GRID_OPTIONS = {"deadlettercontainer", "retryschedule", "maxdeliveryattempts", "eventtimetolive",
                 "maxconcurrentdeliveries", "connection"}


def _warn_unused_subscriptions(functions: set[str], environ=None) -> None:
    """An EventGridLocal__<name> setting naming no eventGridTrigger function is most likely a typo."""
    env = os.environ if environ is None else environ
    lowered = {name.lower() for name in functions}
    for key in env:
        if key.startswith("EventGridLocal__"):
            name = key[len("EventGridLocal__"):]
            if name.lower() not in _GRID_OPTIONS and name.lower() not in lowered:
                log.warning("Setting %s: no eventGridTrigger function named %r in this app (functions: %s); "
                            "the setting is ignored", key, name, ", ".join(sorted(functions)) or "none")


def _status_fields(listener) -> dict:
    """What publishers read from the status file: a blob trigger's container and source, an eventGridTrigger's
    local subscription (None: webhook only)."""
    if isinstance(listener, BlobListener):
        return {"container": listener.path.container, "source": _source(listener.function)}
    if isinstance(listener, EventGridListener):
        sub = listener.subscription
        return {"subscription": {"container": sub.container, "prefix": sub.prefix} if sub else None}
    return {}


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
        self.event_grid: LocalEventGrid | None = None
        self.scanners: list[FallbackScanner] = []

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
        grid_listeners = [lst for lst in self.listeners if isinstance(lst, EventGridListener)]
        _warn_unused_subscriptions({lst.function.name for lst in grid_listeners})
        if pushed or grid_listeners:
            self.webhook = WebhookServer(pushed, key=secrets.token_urlsafe(24), port=self.options.webhook_port)
        if grid_listeners:
            self.webhook.add_route(EVENTGRID_PATH, EventGridWebhook(
                {lst.function.name: lst for lst in grid_listeners}).handle)
            self._local_event_grid(grid_listeners)

    def _local_event_grid(self, listeners: list[EventGridListener]) -> None:
        """The local Event Grid for the functions that have an EventGridLocal__<name> subscription."""
        env, opts = os.environ, self.options
        policy = parse_policy(
            opts.eventgrid_retry_schedule if opts.eventgrid_retry_schedule is not None
            else env.get("EventGridLocal__retrySchedule"),
            opts.eventgrid_max_attempts if opts.eventgrid_max_attempts is not None
            else env.get("EventGridLocal__maxDeliveryAttempts"),
            opts.eventgrid_ttl_minutes if opts.eventgrid_ttl_minutes is not None
            else env.get("EventGridLocal__eventTimeToLive"))
        concurrency = opts.eventgrid_concurrency
        if concurrency is None:
            raw = env.get("EventGridLocal__maxConcurrentDeliveries", "").strip()
            if raw and (not raw.isdigit() or int(raw) < 1):
                raise ConfigError(f"EventGridLocal__maxConcurrentDeliveries={raw!r}: must be an integer >= 1")
            concurrency = int(raw) if raw else DEFAULT_CONCURRENCY
        account = resolve_connection(env.get("EventGridLocal__connection") or None,
                                     "EventGridLocal__connection (the storage account the subscriptions watch)")
        storage = blob_service(account.connection_string)
        dead_letter = None
        raw_dead = env.get("EventGridLocal__deadLetterContainer", "").strip()
        if raw_dead:
            container = resolve_percent_settings(raw_dead, where="EventGridLocal__deadLetterContainer")
            _check_container(container, "EventGridLocal__deadLetterContainer")
            dead_letter = DeadLetterWriter(storage, container)
        self.event_grid = LocalEventGrid(self.state_dir, listeners, policy, concurrency, dead_letter)
        self.webhook.add_route(PUBLISH_PATH, self.event_grid.handle_publish)
        lister = blob_service(account.connection_string, polling=True)
        for lst in listeners:
            if lst.subscription is not None:
                self.scanners.append(FallbackScanner(self.event_grid, lst.subscription,
                                                     lister.get_container_client(lst.subscription.container),
                                                     opts.eventgrid_scan_interval))

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
        if fn.trigger_type == "eventGridTrigger":
            return EventGridListener(fn, self.invoker, _subscription(fn.name))
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
        if self.event_grid is not None:
            self.event_grid.start()  # the journal's undelivered events are queued before anything new arrives
        if self.webhook is not None:
            self.webhook.start()
            hook = {"url": self.webhook.url, "key": self.webhook.key}
            if self.event_grid is not None or any(isinstance(lst, EventGridListener) for lst in self.listeners):
                hook["eventgrid_url"] = self.webhook.base_url + EVENTGRID_PATH
            if self.event_grid is not None:
                hook["publish_url"] = self.webhook.base_url + PUBLISH_PATH
            self.status.write(webhook=hook)
            self.status.protect()
        self.journal.reset()  # the predecessor's entries are in self.orphans; listeners release them at start
        for listener in self.listeners:
            listener.start()
        for scanner in self.scanners:
            scanner.start()
        functions = [{"name": lst.function.name, "trigger": lst.function.trigger_type, "detail": lst.describe(),
                      **_status_fields(lst)} for lst in self.listeners]
        for item in functions:
            log.info("Function %s: %s", item["name"], item["detail"])
        self.status.write(state="running", functions=functions)
        log.info("Host started (host id %s, %d function(s), state %s)", self.host_id, len(functions),
                 self.status.path)

    # -- shutdown -------------------------------------------------------------------------------------------
    def in_flight(self) -> int:
        grid = self.event_grid.in_flight if self.event_grid is not None else 0  # deliveries until settled
        return max(grid, 0) + sum(listener.in_flight for listener in self.listeners)

    def shutdown(self, force: threading.Event | None = None) -> None:
        self.status.write(state="stopping")
        for listener in self.listeners:
            listener.stop()
        for scanner in self.scanners:
            scanner.stop()
        if self.event_grid is not None:
            self.event_grid.stop()  # in-flight deliveries finish below; undelivered events stay in the journal
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
