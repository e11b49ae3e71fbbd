"""How tools outside the host (the `eventbatch` commands, the demo, e2e tests, benchmarks) reach the app.

They read the same settings the function app reads and go through `shared.settings` / `shared.storage`, so one
code path serves both places:
- the local stack (default): the Values of `.devstack/local.settings.json`, which `eventbatch up` writes for the
  host; variables already set in the environment win, exactly as they do for the host;
- any settings file (`--settings FILE`, the local.settings.json layout);
- the process environment (`--env`, also spelled `--env azure`): on Azure export the app's identity settings
  (`EVENTBATCH_STORAGE__accountName`, `BATCH_ACCOUNT_URL`, ...) and DefaultAzureCredential (az login, managed
  identity) does the rest;
- an azd environment (`--azd-env NAME`): the values `azd provision` stored in `.azure/NAME/.env` (or, when that
  file is not here and azd is installed, `azd env get-values -e NAME`), mapped onto the app's settings (AZD_MAP).
A command asks only for what it uses: `needs_batch=False` for commands that read storage only, so `status` on
Azure works with just the storage account.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from azure.batch import models
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)

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


# What a command cannot get past when it reads the app's settings or calls its services: failure_message says it.
SERVICE_ERRORS = (AccessError, ServiceRequestError, ClientAuthenticationError, HttpResponseError)


def failure_message(exc: Exception) -> str:
    """One of SERVICE_ERRORS as the user reads it: what happened and what to do."""
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, ServiceRequestError):
        return (f"cannot reach the service ({first}); is the stack up? Run `make up` (or check --settings / --env / "
                "--azd-env)")
    if isinstance(exc, ClientAuthenticationError):
        return (f"not signed in or no access ({first}); on Azure run `az login` and check your roles on the storage "
                "(and Batch) account")
    if isinstance(exc, HttpResponseError):
        return f"the service refused the request ({getattr(exc, 'error_code', None) or exc.status_code}: {first})"
    return str(exc)


def local_settings_path() -> Path:
    return paths.state_dir() / "local.settings.json"


# azd environment value (infra/main.bicep outputs) -> app setting; other values are passed through unchanged.
AZD_MAP = {
    "AZURE_STORAGE_ACCOUNT_NAME": "EVENTBATCH_STORAGE__accountName",
    "AZURE_BATCH_ACCOUNT_URL": "BATCH_ACCOUNT_URL",
    "AZURE_BATCH_ACCOUNT_RESOURCE_ID": "BATCH_ACCOUNT_RESOURCE_ID",
    "AZURE_CONTAINER_REGISTRY_ENDPOINT": "REGISTRY_SERVER",  # pipelines.yaml names images by ${REGISTRY_SERVER}
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--settings FILE | --env [azure] | --azd-env NAME, for every command that talks to the app."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--settings", type=Path, metavar="FILE",
                       help="a local.settings.json to read the app settings from (default: the local stack's "
                            ".devstack/local.settings.json)")
    where.add_argument("--env", action="store_true",
                       help="(also `--env azure`) read the app settings from the environment (Azure: "
                            "EVENTBATCH_STORAGE__accountName, BATCH_ACCOUNT_URL, ... with DefaultAzureCredential)")
    where.add_argument("--azd-env", metavar="NAME",
                       help="read the app settings from the azd environment NAME (.azure/NAME/.env, or `azd env "
                            "get-values`), with DefaultAzureCredential")


def normalize_argv(argv: list[str]) -> list[str]:
    """`--env azure` and `--env=azure` are `--env` (there is one environment source: the process environment)."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--":
            return out + argv[i:]
        if arg == "--env=azure":
            out.append("--env")
        elif arg == "--env" and i + 1 < len(argv) and argv[i + 1] == "azure":
            out.append("--env")
            skip = True
        else:
            out.append(arg)
    return out


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=value / KEY="value" lines as azd writes them (`#` comments, `\\"`, `\\n` escapes in double quotes)."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip().removeprefix("export ").strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = (value[1:-1].replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n")
                     .replace("\0", "\\"))
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        values[key] = value
    return values


def azd_values(name: str, root: Path | None = None, run=subprocess.run) -> dict[str, str]:
    """The azd environment `name`: `.azure/<name>/.env` under `root` (default: the current directory, then the
    repository), else `azd env get-values -e <name>` when azd is installed."""
    if not name or "/" in name or name.startswith("."):
        raise AccessError(f"--azd-env {name!r}: not an azd environment name")
    roots = [root] if root else [Path.cwd(), paths.REPO_ROOT]
    for base in roots:
        path = base / ".azure" / name / ".env"
        if path.is_file():
            return parse_dotenv(path.read_text(encoding="utf-8"))
    azd = shutil.which("azd")
    if azd is None:
        raise AccessError(f"no azd environment {name!r}: {roots[0] / '.azure' / name / '.env'} does not exist and "
                          "azd is not installed (run `azd env list` where the project was provisioned)")
    done = run([azd, "env", "get-values", "-e", name], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AccessError(f"`azd env get-values -e {name}` failed: {(done.stderr or done.stdout).strip()[:300]}")
    return parse_dotenv(done.stdout)


def azd_settings(values: Mapping[str, str]) -> dict[str, str]:
    """An azd environment's values as app settings (AZD_MAP renames; the rest as they are)."""
    out = {k: v for k, v in values.items() if k not in AZD_MAP}
    out.update({AZD_MAP[k]: v for k, v in values.items() if k in AZD_MAP and v})
    return out


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
                    environ: Mapping[str, str] | None = None, azd_env: str | None = None) -> dict[str, str]:
    """The app settings to use, as one flat mapping (see the module docstring for the four sources)."""
    env = dict(os.environ if environ is None else environ)
    if use_env:
        return env
    if azd_env:
        return azd_settings(azd_values(azd_env))  # not mixed with the environment: a local EVENTBATCH_STORAGE
        # exported for the stack would otherwise win over the account the azd environment names
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
    local_stack: bool = False  # the local stack's own settings: uploads are announced to its host (Event Grid)

    @classmethod
    def open(cls, settings_file: Path | None = None, use_env: bool = False,
             environ: Mapping[str, str] | None = None, azd_env: str | None = None,
             needs_batch: bool = True) -> AppAccess:
        try:
            settings = load_settings(resolve_environ(settings_file, use_env, environ, azd_env),
                                     need_batch=needs_batch)
            config = load_config(settings.pipelines_file, settings.environ)
        except ConfigError as exc:
            raise AccessError(str(exc)) from None
        return cls(settings=settings, config=config, storage=StorageClients(settings.storage),
                   local_stack=settings_file is None and not use_env and not azd_env)

    @classmethod
    def from_args(cls, args: argparse.Namespace, needs_batch: bool = True) -> AppAccess:
        """The access `add_arguments` asked for (--settings / --env / --azd-env)."""
        return cls.open(args.settings, args.env, azd_env=args.azd_env, needs_batch=needs_batch)

    @property
    def runs(self) -> RunStore:
        return RunStore(self.storage.table.get_table_client(self.settings.runs_table))

    def describe(self) -> str:
        """Where this points, for messages (no secrets)."""
        batch = self.settings.batch.url if self.settings.batch else "not used"
        return f"storage {self.storage.blob_endpoint}, Batch {batch}"


def batch_client(access: AppAccess):
    if access.settings.batch is None:
        raise AccessError("this command was opened without the Batch settings (needs_batch=False)")
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
