"""Everything a function invocation needs, built once per worker process from the settings.

Functions call `get_context()`; the first call reads and validates the settings and pipelines.yaml (raising
ConfigError with the fix), creates the clients, the run table and the queues. Tests build their own AppContext
from explicit settings.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.image_rules import check_startup
from shared.messages import Messenger
from shared.pipelines import PipelineConfig, load_config
from shared.records import RunStore
from shared.settings import Settings, load_settings
from shared.storage import StorageClients, make_access
from shared.submitter import Submitter


@dataclass
class AppContext:
    settings: Settings
    config: PipelineConfig
    storage: StorageClients
    runs: RunStore
    messenger: Messenger
    access: object  # shared.task_spec.BlobAccess
    batch: object  # azure.batch.BatchClient
    submitter: Submitter
    batcher: object = None  # shared.batcher.Batcher, made with the context

    @classmethod
    def create(cls, settings: Settings, *, batch_client=None, ensure_resources: bool | None = None) -> AppContext:
        from shared.batch_client import make_batch_client

        config = load_config(settings.pipelines_file, settings.environ)
        check_startup(config, settings.environ, settings.pipelines_file)  # the image rules (no registry call)
        watched = settings.input_container
        for p in config.pipelines.values():
            if p.blob_input and p.blob_input.container != watched:
                raise ConfigError(f"pipelines.yaml pipeline {p.name}: inputs.blob.container is "
                                  f"{p.blob_input.container!r} but the blob trigger watches INPUT_CONTAINER="
                                  f"{watched!r}; make them the same")
            if p.blob_input and p.outputs.container == p.blob_input.container:
                raise ConfigError(f"pipelines.yaml pipeline {p.name}: outputs.container must differ from the input "
                                  "container, or every output would trigger the pipeline again")
            if settings.marker_container in (p.outputs.container, p.blob_input and p.blob_input.container):
                raise ConfigError(f"setting MARKER_CONTAINER: {settings.marker_container!r} is a container of "
                                  f"pipeline {p.name}; completion markers need a container of their own")
        storage = StorageClients(settings.storage)
        runs = RunStore(storage.table.get_table_client(settings.runs_table))
        messenger = Messenger(storage.queue, settings.queues)
        if settings.create_storage_resources if ensure_resources is None else ensure_resources:
            runs.ensure()
            messenger.ensure()
            _ensure_containers(storage, {p.outputs.container for p in config.pipelines.values()}
                               | {settings.marker_container})
        batch = batch_client or make_batch_client(settings.batch)
        ctx = cls(settings=settings, config=config, storage=storage, runs=runs, messenger=messenger,
                  access=make_access(storage, settings.sas_validity, settings.node_identity_resource_id,
                                     hierarchical=settings.hierarchical_namespace),
                  batch=batch, submitter=Submitter(batch, config, create_missing_pools=settings.create_missing_pools,
                                                   retry_budget=settings.batch_retry_budget.total_seconds()))
        from shared.batcher import Batcher

        ctx.batcher = Batcher(ctx, hold=settings.submit_hold.total_seconds())
        return ctx


def _ensure_containers(storage: StorageClients, names: set[str]) -> None:
    """Batch refuses to upload outputs into a missing container (FileUploadContainerNotFound): make sure they exist.
    Failures are left to surface on the first upload (e.g. an identity without the right to create containers)."""
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    for name in sorted(names):
        try:
            storage.blob.create_container(name)
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            import logging

            logging.getLogger("eventbatch").warning("cannot create output container %s: %s", name, exc.reason)


_context: AppContext | None = None
_lock = threading.Lock()


def get_context(environ: Mapping[str, str] | None = None) -> AppContext:
    global _context
    with _lock:
        if _context is None:
            _context = AppContext.create(load_settings(environ))
        return _context


def set_context(context: AppContext | None) -> None:
    """Install (or clear) the process-wide context; tests use it to point the functions at their own stack."""
    global _context
    with _lock:
        _context = context
