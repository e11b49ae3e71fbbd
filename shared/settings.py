"""App settings, read and validated once at start-up.

Every setting the app reads is here, with its default. A wrong or missing value raises ConfigError naming the
setting and the fix, so a misconfigured deployment fails at its first invocation with a readable message instead
of half-working (for example rejecting every blob).

Storage: the connection named by STORAGE_CONNECTION (default `EVENTBATCH_STORAGE`, falling back to
`AzureWebJobsStorage` like the host) is either a connection string (local: Azurite) or an identity section:
`<NAME>__blobServiceUri` / `__queueServiceUri` / `__tableServiceUri` with `<NAME>__credential=managedidentity` and
`<NAME>__clientId` for a user-assigned identity (DefaultAzureCredential), as infra/ sets them. Not `__accountName`
alone on Azure: the blob trigger's SDK-type binding (`blob.BlobClient`) rejects that form, although this module
still derives the service URIs from it for the app's own clients.
Batch: BATCH_ACCOUNT_URL plus BATCH_ACCOUNT_NAME + BATCH_ACCOUNT_KEY (local emulator), or no key: Microsoft Entra
ID through DefaultAzureCredential (Azure; needs https, token credentials refuse plain http).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from shared.durations import parse_duration
from shared.errors import ConfigError

# Azurite's published key, kept here on purpose: shared/ is deployed and may not import devstack/.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={AZURITE_KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
APP_ROOT = Path(__file__).resolve().parent.parent
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_JOB_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")


@dataclass(frozen=True)
class StorageSettings:
    """Either `connection_string`, or service URLs + identity (client_id None = system-assigned/default)."""

    setting: str
    connection_string: str | None = None
    blob_url: str | None = None
    queue_url: str | None = None
    table_url: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class BatchSettings:
    url: str
    account_name: str | None = None
    account_key: str | None = None  # None: DefaultAzureCredential
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.account_key is None


@dataclass(frozen=True)
class QueueNames:
    requests: str = "requests"
    submit: str = "submit"
    rejected: str = "rejected"
    completions: str = "completions"
    failures: str = "failures"
    check: str = "taskcheck"
    control: str = "control"  # cancel / retry messages (shared.control)

    def all(self) -> list[str]:
        return [self.requests, self.submit, self.rejected, self.completions, self.failures, self.check, self.control]


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    batch: BatchSettings | None  # None only when loaded with need_batch=False (CLI commands that use no Batch)
    pipelines_file: Path
    queues: QueueNames = field(default_factory=QueueNames)
    runs_table: str = "runs"
    job_prefix: str = "eb"
    job_period: str = "day"  # day | hour: one job per pipeline and period
    task_retention: timedelta = timedelta(0)
    job_retention: timedelta = timedelta(hours=1)
    sas_validity: timedelta = timedelta(hours=12)
    node_identity_resource_id: str | None = None  # set: resource/output files by identityReference
    hierarchical_namespace: bool = False  # ADLS Gen2 account: output SAS scoped to the run's directory (sr=d)
    create_missing_pools: bool = True
    create_storage_resources: bool = True  # false on Azure: infra/ creates the queues, table and containers
    input_container: str = "input"  # the container whose BlobCreated events reach blob_intake
    marker_container: str = "markers"
    submit_max_attempts: int = 8
    submit_hold: timedelta = timedelta(seconds=5)
    resubmit_after: timedelta = timedelta(minutes=2)
    notify_repair_after: timedelta = timedelta(minutes=1)
    run_stuck_after: timedelta = timedelta(days=2)
    batch_retry_budget: timedelta = timedelta(minutes=2)
    deadletter_container: str = "eventgrid-deadletter"
    batch_account_resource_id: str | None = None  # for portal links to tasks (CLI status); not used by the app
    batch_active_job_quota: int = 100  # the account's active job and schedule quota (Azure's default: 100)
    active_job_quota_share: float = 0.8  # the share of that quota this app may fill with its own jobs
    job_max_wall_clock: timedelta | None = None  # a job's maxWallClockTime; None: sized per pipeline (quotas)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return default
    return value.strip()


def _duration(env: Mapping[str, str], name: str, default: str) -> timedelta:
    text = _get(env, name, default)
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"setting {name}: {exc}; fix the value or remove it to use {default}") from None
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = _get(env, name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"setting {name}: {text!r} is not a whole number; use {low}..{high}") from None
    if not low <= value <= high:
        raise ConfigError(f"setting {name}: {value} is out of range; use {low}..{high}")
    return value


def _bounded(env: Mapping[str, str], name: str, default: str, low: timedelta, high: timedelta) -> timedelta:
    value = _duration(env, name, default)
    if not low <= value <= high:
        raise ConfigError(f"setting {name}: {_get(env, name)} is out of range; use a duration between "
                          f"{low} and {high} (ISO 8601, e.g. {default})")
    return value


_CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    text = _get(env, name, str(default))
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"setting {name}: {text!r} is not a number; use a fraction from 0.05 to 1, e.g. "
                          f"{default}") from None
    if not 0.05 <= value <= 1:
        raise ConfigError(f"setting {name}: {value:g} is out of range; use a fraction from 0.05 to 1, e.g. {default}")
    return value


def _job_wall_clock(env: Mapping[str, str]) -> timedelta | None:
    """JOB_MAX_WALL_CLOCK: `auto` (the default: sized from the job's period and its pipeline's task limits) or a
    duration of at least PT1H."""
    text = _get(env, "JOB_MAX_WALL_CLOCK", "auto")
    if text.lower() == "auto":
        return None
    value = _duration(env, "JOB_MAX_WALL_CLOCK", "auto")
    if not timedelta(hours=1) <= value <= timedelta(days=180):
        raise ConfigError(f"setting JOB_MAX_WALL_CLOCK: {text} is out of range; use auto or a duration between "
                          "PT1H and P180D (it must outlast the job's period, or the job ends while it takes tasks)")
    return value


def _container(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default)
    if not _CONTAINER_NAME.match(value):
        raise ConfigError(f"setting {name}: {value!r} is not a valid container name (3-63 lower-case letters, "
                          "digits and single hyphens)")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = _get(env, name)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"setting {name}: {text!r} is not a boolean; use true or false")


def _storage(env: Mapping[str, str]) -> StorageSettings:
    name = _get(env, "STORAGE_CONNECTION", "EVENTBATCH_STORAGE")
    candidates = [name] if name != "EVENTBATCH_STORAGE" else [name, "AzureWebJobsStorage"]
    for setting in candidates:
        value = _get(env, setting)
        if value:
            if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
                value = AZURITE_CONNECTION_STRING
            if "AccountName=" not in value and "SharedAccessSignature=" not in value:
                raise ConfigError(f"setting {setting}: not a storage connection string (no AccountName=); set a "
                                  "connection string, or remove it and use the identity settings "
                                  f"{setting}__blobServiceUri / __queueServiceUri / __tableServiceUri "
                                  "(+ __credential, __clientId)")
            return StorageSettings(setting=setting, connection_string=value)
        account = _get(env, f"{setting}__accountName")
        blob = _get(env, f"{setting}__blobServiceUri")
        if account or blob:
            queue = _get(env, f"{setting}__queueServiceUri")
            table = _get(env, f"{setting}__tableServiceUri")
            if account:
                blob = blob or f"https://{account}.blob.core.windows.net"
                queue = queue or f"https://{account}.queue.core.windows.net"
                table = table or f"https://{account}.table.core.windows.net"
            missing = [f"{setting}__{k}" for k, v in (("queueServiceUri", queue), ("tableServiceUri", table))
                       if not v]
            if missing:
                raise ConfigError(f"settings {', '.join(missing)} are missing: with {setting}__blobServiceUri set "
                                  f"them too (the blob trigger's binding needs the service URIs, not "
                                  f"{setting}__accountName)")
            return StorageSettings(setting=setting, blob_url=blob.rstrip("/"), queue_url=queue.rstrip("/"),
                                   table_url=table.rstrip("/"), client_id=_get(env, f"{setting}__clientId"))
    raise ConfigError(f"setting {name} is missing: set it to a storage connection string (local: "
                      f"UseDevelopmentStorage=true) or, for a managed identity, set {name}__blobServiceUri, "
                      f"{name}__queueServiceUri, {name}__tableServiceUri, {name}__credential=managedidentity and "
                      f"{name}__clientId")


def _batch(env: Mapping[str, str]) -> BatchSettings:
    url = _get(env, "BATCH_ACCOUNT_URL")
    if not url:
        raise ConfigError("setting BATCH_ACCOUNT_URL is missing: set the Batch account endpoint, e.g. "
                          "https://<account>.<region>.batch.azure.com (local: http://127.0.0.1:8095)")
    if not url.startswith(("http://", "https://")):
        url = "https://" + url
    name = _get(env, "BATCH_ACCOUNT_NAME")
    key = _get(env, "BATCH_ACCOUNT_KEY")
    if key and not name:
        raise ConfigError("setting BATCH_ACCOUNT_NAME is missing: shared-key auth (BATCH_ACCOUNT_KEY) needs the "
                          "account name too")
    if not key and url.startswith("http://"):
        raise ConfigError(f"setting BATCH_ACCOUNT_KEY is missing: {url} is plain http and Microsoft Entra tokens are "
                          "only sent over https; set BATCH_ACCOUNT_NAME + BATCH_ACCOUNT_KEY (local emulator) or an "
                          "https BATCH_ACCOUNT_URL")
    return BatchSettings(url=url.rstrip("/"), account_name=name, account_key=key,
                         client_id=_get(env, "BATCH_CLIENT_ID") or _get(env, "AZURE_CLIENT_ID"))


def _queue_names(env: Mapping[str, str]) -> QueueNames:
    values = {}
    for attr in ("requests", "submit", "rejected", "completions", "failures", "check", "control"):
        setting = f"{attr.upper()}_QUEUE"
        value = _get(env, setting, getattr(QueueNames, attr))
        if not _QUEUE_NAME.match(value):
            raise ConfigError(f"setting {setting}: {value!r} is not a valid queue name (3-63 lower-case letters, "
                              "digits and single hyphens)")
        values[attr] = value
    names = QueueNames(**values)
    if len(set(names.all())) != len(names.all()):
        raise ConfigError("settings *_QUEUE: the queues must have different names")
    return names


def load_settings(environ: Mapping[str, str] | None = None, need_batch: bool = True) -> Settings:
    """Read every setting from `environ` (default: os.environ); ConfigError names the first bad one.
    `need_batch=False` (tools that only read storage): the Batch settings are not read and `batch` is None."""
    env = dict(os.environ if environ is None else environ)
    table = _get(env, "RUNS_TABLE", "runs")
    if not _TABLE_NAME.match(table):
        raise ConfigError(f"setting RUNS_TABLE: {table!r} is not a valid table name (3-63 letters and digits, "
                          "starting with a letter)")
    prefix = _get(env, "JOB_ID_PREFIX", "eb")
    if not _JOB_PREFIX.match(prefix):
        raise ConfigError(f"setting JOB_ID_PREFIX: {prefix!r} must be 1-16 letters, digits, '-' or '_'")
    period = _get(env, "JOB_PERIOD", "day").lower()
    if period not in ("day", "hour"):
        raise ConfigError(f"setting JOB_PERIOD: {period!r} is not supported; use day or hour")
    pipelines_file = Path(_get(env, "PIPELINES_FILE", "pipelines.yaml"))
    if not pipelines_file.is_absolute():
        pipelines_file = APP_ROOT / pipelines_file
    if not pipelines_file.is_file():
        raise ConfigError(f"setting PIPELINES_FILE: {pipelines_file} does not exist; deploy pipelines.yaml with the "
                          "app or point PIPELINES_FILE at it")
    sas = _duration(env, "SAS_VALIDITY", "PT12H")
    if not timedelta(minutes=5) <= sas <= timedelta(days=7):
        raise ConfigError("setting SAS_VALIDITY: must be between PT5M and P7D (user delegation keys last 7 days)")
    return Settings(
        storage=_storage(env),
        batch=_batch(env) if need_batch else None,
        pipelines_file=pipelines_file,
        queues=_queue_names(env),
        runs_table=table,
        job_prefix=prefix,
        job_period=period,
        task_retention=_duration(env, "TASK_RETENTION", "PT0S"),
        job_retention=_duration(env, "JOB_RETENTION", "PT1H"),
        sas_validity=sas,
        node_identity_resource_id=_get(env, "BATCH_NODE_IDENTITY_RESOURCE_ID"),
        hierarchical_namespace=_bool(env, "STORAGE_HIERARCHICAL_NAMESPACE", False),
        create_missing_pools=_bool(env, "CREATE_MISSING_POOLS", True),
        create_storage_resources=_bool(env, "CREATE_STORAGE_RESOURCES", True),
        input_container=_container(env, "INPUT_CONTAINER", "input"),
        marker_container=_container(env, "MARKER_CONTAINER", "markers"),
        submit_max_attempts=_int(env, "SUBMIT_MAX_ATTEMPTS", 8, 1, 50),
        submit_hold=_bounded(env, "SUBMIT_BATCH_HOLD", "PT5S", timedelta(0), timedelta(seconds=60)),
        resubmit_after=_bounded(env, "RESUBMIT_AFTER", "PT2M", timedelta(seconds=5), timedelta(days=1)),
        notify_repair_after=_bounded(env, "NOTIFY_REPAIR_AFTER", "PT1M", timedelta(seconds=5), timedelta(days=1)),
        run_stuck_after=_bounded(env, "RUN_STUCK_AFTER", "P2D", timedelta(minutes=5), timedelta(days=180)),
        batch_retry_budget=_bounded(env, "BATCH_RETRY_BUDGET", "PT2M", timedelta(seconds=1), timedelta(minutes=10)),
        deadletter_container=_container(env, "DEADLETTER_CONTAINER", "eventgrid-deadletter"),
        batch_account_resource_id=_get(env, "BATCH_ACCOUNT_RESOURCE_ID"),
        batch_active_job_quota=_int(env, "BATCH_ACTIVE_JOB_QUOTA", 100, 1, 100000),
        active_job_quota_share=_share(env, "ACTIVE_JOB_QUOTA_SHARE", 0.8),
        job_max_wall_clock=_job_wall_clock(env),
        environ=env,
    )
