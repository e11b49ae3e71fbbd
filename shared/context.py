"""The composition root: everything a function invocation needs (shared.app_context), built once per worker process.

Functions call `get_context()`; the first call reads and validates the settings and pipelines.yaml (raising
ConfigError with the fix), creates the clients, the run table and the queues. Tests build their own context with
`create_context` from explicit settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from azure.core.exceptions import HttpResponseError, ResourceExistsError

from shared.app_context import AppContext
from shared.batch_client import make_batch_client
from shared.batcher import Batcher
from shared.image_rules import check_startup
from shared.job_limits import JobLimits
from shared.messages import Messenger
from shared.pipelines import check_containers, load_config
from shared.records import RunStore
from shared.settings import Settings, load_settings
from shared.storage import StorageClients
from shared.submission import release_held, submit_runs
from shared.submitter import Submitter
from shared.task_access import make_task_access

log = logging.getLogger("eventbatch")


def create_context(settings: Settings, *, batch_client=None, ensure_resources: bool | None = None) -> AppContext:
    """Validate the configuration against the settings and build the context (its clients, and the run table,
    queues and containers when `ensure_resources`, default CREATE_STORAGE_RESOURCES)."""
    config = load_config(settings.pipelines_file, settings.environ)
    check_startup(config, settings.environ, settings.pipelines_file)  # the image rules (no registry call)
    check_containers(config, settings.input_container, settings.marker_container)
    storage = StorageClients(settings.storage)
    runs = RunStore(storage.table.get_table_client(settings.runs_table))
    messenger = Messenger(storage.queue, settings.queues)
    if settings.create_storage_resources if ensure_resources is None else ensure_resources:
        runs.ensure()
        messenger.ensure()
        _ensure_containers(storage, {p.outputs.container for p in config.pipelines.values()}
                           | {settings.marker_container})
    batch = batch_client or make_batch_client(settings.batch)
    ctx = AppContext(settings=settings, config=config, storage=storage, runs=runs, messenger=messenger,
                     task_access=make_task_access(storage, settings.sas_validity, settings.node_identity_resource_id,
                                                  hierarchical=settings.hierarchical_namespace),
                     batch=batch, submitter=Submitter(batch, config, create_missing_pools=settings.create_missing_pools,
                                                      retry_budget=settings.batch_retry_budget.total_seconds(),
                                                      limits=JobLimits.from_settings(settings)))
    ctx.batcher = Batcher(lambda pipeline, pending: submit_runs(ctx, pipeline, pending), runs,
                          hold=settings.submit_hold.total_seconds(),
                          priority=lambda p: config.pipelines[p].priority if p in config.pipelines else 0,
                          release=lambda pipeline: release_held(ctx, pipeline))
    return ctx


def _ensure_containers(storage: StorageClients, names: set[str]) -> None:
    """Batch refuses to upload outputs into a missing container (FileUploadContainerNotFound): make sure they exist.
    Failures are left to surface on the first upload (e.g. an identity without the right to create containers)."""
    for name in sorted(names):
        try:
            storage.blob.create_container(name)
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            log.warning("cannot create output container %s: %s", name, exc.reason)


_context: AppContext | None = None
_lock = threading.Lock()


def get_context(environ: Mapping[str, str] | None = None) -> AppContext:
    global _context
    with _lock:
        if _context is None:
            _context = create_context(load_settings(environ))
        return _context


def set_context(context: AppContext | None) -> None:
    """Install (or clear) the process-wide context; tests use it to point the functions at their own stack."""
    global _context
    with _lock:
        _context = context
