"""How tools outside the host (the `eventbatch` commands, the demo, e2e tests, benchmarks) reach the app.

They read the same settings the function app reads and go through `shared.settings` / `shared.storage`, so one
code path serves both places:
- the local stack (default): the Values of `.devstack/local.settings.json`, which `eventbatch up` writes for the
  host; variables already set in the environment win, exactly as they do for the host;
- any settings file (`--settings FILE`, the local.settings.json layout);
- the process environment (`--env`): on Azure export the app's identity settings (`EVENTBATCH_STORAGE__accountName`,
  `BATCH_ACCOUNT_URL`, ...) and DefaultAzureCredential (az login, managed identity) does the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from azure.batch import models
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from devstack.common import paths
from shared.batch_client import make_batch_client
from shared.errors import ConfigError
from shared.pipelines import PipelineConfig, load_config
from shared.pool_spec import build_pool
from shared.records import RunStore
from shared.settings import Settings, load_settings
from shared.storage import StorageClients


class AccessError(Exception):
    """Settings cannot be found or read; the message says what to do."""


def local_settings_path() -> Path:
    return paths.state_dir() / "local.settings.json"


def read_values(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AccessError(f"cannot read settings file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise AccessError(f"settings file {path} is not JSON: {exc}") from None
    values = data.get("Values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise AccessError(f"settings file {path} has no \"Values\" object (the local.settings.json layout)")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def resolve_environ(settings_file: Path | None = None, use_env: bool = False,
                    environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The app settings to use, as one flat mapping (see the module docstring for the three sources)."""
    env = dict(os.environ if environ is None else environ)
    if use_env:
        return env
    path = settings_file or local_settings_path()
    if settings_file is None and not path.exists():
        raise AccessError(f"no local stack settings at {path}: start the stack with `make up` (or "
                          "`.venv/bin/eventbatch up`), or pass --settings FILE, or --env to use the environment")
    values = read_values(path)
    values.update({k: env[k] for k in values if env.get(k)})  # the environment wins, as in the host
    return values


@dataclass
class AppAccess:
    """Settings, pipelines and storage clients of one app deployment (local or Azure)."""

    settings: Settings
    config: PipelineConfig
    storage: StorageClients

    @classmethod
    def open(cls, settings_file: Path | None = None, use_env: bool = False,
             environ: Mapping[str, str] | None = None) -> AppAccess:
        try:
            settings = load_settings(resolve_environ(settings_file, use_env, environ))
            config = load_config(settings.pipelines_file, settings.environ)
        except ConfigError as exc:
            raise AccessError(str(exc)) from None
        return cls(settings=settings, config=config, storage=StorageClients(settings.storage))

    @property
    def runs(self) -> RunStore:
        return RunStore(self.storage.table.get_table_client(self.settings.runs_table))

    def describe(self) -> str:
        """Where this points, for messages (no secrets)."""
        return f"storage {self.storage.blob_endpoint}, Batch {self.settings.batch.url}"


def batch_client(access: AppAccess):
    return make_batch_client(access.settings.batch)


def ensure_pool(access: AppAccess, pool_id: str, client=None) -> str:
    """Create the pool from pipelines.yaml with the app's own pool builder when it is missing.

    Returns 'exists' or 'created'. (The app creates missing pools itself on first submission; doing it up front
    lets the nodes start and prefetch the image while inputs are uploaded.)"""
    client = client or batch_client(access)
    try:
        client.get_pool(pool_id, select=["id"])
        return "exists"
    except ResourceNotFoundError:
        pass
    if pool_id not in access.config.pools:
        raise AccessError(f"pool {pool_id!r} is not declared in {access.settings.pipelines_file}")
    if not access.config.pools[pool_id].enabled:
        raise AccessError(f"pool {pool_id!r} has enabled: false in {access.settings.pipelines_file}: not created")
    try:
        client.create_pool(models.BatchPoolCreateOptions(build_pool(access.config.pools[pool_id])))
    except ResourceExistsError:
        return "exists"
    return "created"
