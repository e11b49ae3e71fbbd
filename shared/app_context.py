"""The AppContext: what every invocation is handed (settings, pipelines, clients, the run table, the queues).

A plain record of parts, made once per worker process by shared.context (the composition root, which sits above
everything it wires); the modules that take a context import only this type.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.messages import Messenger
from shared.pipelines import PipelineConfig
from shared.records import RunStore
from shared.settings import Settings
from shared.storage import StorageClients
from shared.submitter import Submitter


@dataclass
class AppContext:
    settings: Settings
    config: PipelineConfig
    storage: StorageClients
    runs: RunStore
    messenger: Messenger
    task_access: object  # shared.task_spec.BlobAccess: how the Batch tasks reach Storage (shared.task_access)
    batch: object  # azure.batch.BatchClient
    submitter: Submitter
    batcher: object = None  # shared.batcher.Batcher, made with the context
