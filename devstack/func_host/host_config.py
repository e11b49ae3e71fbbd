"""host.json: the subset of host settings this local host honours, typed and validated once at start-up.

As in the real host, an app setting (environment variable) named ``AzureFunctionsJobHost__<path>`` overrides the
host.json value at that path (``__`` separates levels, names are case-insensitive), for example
``AzureFunctionsJobHost__extensions__queues__maxPollingInterval=00:00:02``: the local stack uses that to poll idle
queues more often than an Azure deployment does, without changing host.json.

Defaults follow the Azure Functions docs for the v2 host (queues/blobs extension v5):
queues.batchSize 16 (max 32), newBatchThreshold batchSize/2 x cores, maxPollingInterval 1 min,
visibilityTimeout 0, maxDequeueCount 5, messageEncoding base64; blobs.poisonBlobThreshold 5,
blobs.maxDegreeOfParallelism 8 x cores; functionTimeout 30 min (Premium/Dedicated default).
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from devstack.func_host.errors import ConfigError
from shared.dotnet_timespan import parse_timespan

log = logging.getLogger("func_host")

DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0


@dataclass(frozen=True)
class QueuesOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class BlobsOptions:
    poison_blob_threshold: int = 5
    max_degree_of_parallelism: int = 8


@dataclass(frozen=True)
class HostConfig:
    queues: QueuesOptions
    blobs: BlobsOptions
    function_timeout: float | None  # seconds; None = unbounded ("-1")
    dynamic_concurrency: bool = False
    log_levels: dict[str, int] = field(default_factory=dict)  # category -> logging level (logging.logLevel)


_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "information": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL, "none": logging.CRITICAL + 10}


def _log_levels(section: object) -> dict[str, int]:
    """host.json logging.logLevel: {"default": "Information", "Function": "Warning", "Function.x": "None", ...}."""
    if not section:
        return {}
    if not isinstance(section, dict):
        raise ConfigError("host.json logging.logLevel: must be an object of category names to levels")
    levels = {}
    for category, name in section.items():
        level = _LEVELS.get(str(name).lower())
        if level is None:
            raise ConfigError(f"host.json logging.logLevel.{category}: {name!r} is not a level; use one of "
                              "Trace, Debug, Information, Warning, Error, Critical, None")
        levels[category] = level
    return levels


def _cores() -> int:
    return os.cpu_count() or 1


def _int(section: dict, key: str, default: int, setting: str, lo: int, hi: int | None = None) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{setting}.{key}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ConfigError(f"{setting}.{key}: {value} is out of range; it must be {bound}")
    return value


def _queues(section: dict) -> QueuesOptions:
    where = "host.json extensions.queues"
    batch = _int(section, "batchSize", 16, where, 1, 32)
    threshold_default = (batch // 2) * _cores()
    if section.get("newBatchThreshold") == -1:  # -1 asks for the computed default, as in the host
        section = {k: v for k, v in section.items() if k != "newBatchThreshold"}
    threshold = _int(section, "newBatchThreshold", threshold_default, where, 0)
    polling = parse_timespan(section.get("maxPollingInterval", "00:01:00"), f"{where}.maxPollingInterval")
    if polling is None or polling < 0.1:
        raise ConfigError(f"{where}.maxPollingInterval: must be at least \"00:00:00.100\"")
    visibility = parse_timespan(section.get("visibilityTimeout", "00:00:00"), f"{where}.visibilityTimeout")
    if visibility is None or visibility > 7 * 86400:
        raise ConfigError(f"{where}.visibilityTimeout: must be between 00:00:00 and 7.00:00:00")
    encoding = str(section.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise ConfigError(f"{where}.messageEncoding: {encoding!r} is not supported; use \"base64\" or \"none\"")
    return QueuesOptions(
        batch_size=batch,
        new_batch_threshold=threshold,
        max_polling_interval=polling,
        visibility_timeout=visibility,
        max_dequeue_count=_int(section, "maxDequeueCount", 5, where, 1),
        message_encoding=encoding,
    )


def _blobs(section: dict) -> BlobsOptions:
    where = "host.json extensions.blobs"
    return BlobsOptions(
        poison_blob_threshold=_int(section, "poisonBlobThreshold", 5, where, 1),
        max_degree_of_parallelism=_int(section, "maxDegreeOfParallelism", 8 * _cores(), where, 1),
    )


def parse_host_json(doc: dict) -> HostConfig:
    """Validate a parsed host.json document; unknown keys are ignored as the real host ignores them."""
    if not isinstance(doc, dict):
        raise ConfigError("host.json: the top level must be a JSON object")
    version = doc.get("version")
    if version is not None and version != "2.0":
        raise ConfigError(f"host.json version: {version!r} is not supported; set \"version\": \"2.0\"")
    extensions = doc.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise ConfigError("host.json extensions: must be an object")
    timeout_raw = doc.get("functionTimeout")
    timeout = DEFAULT_FUNCTION_TIMEOUT if timeout_raw is None else parse_timespan(timeout_raw, "host.json functionTimeout")
    concurrency = doc.get("concurrency") or {}
    dynamic = bool(concurrency.get("dynamicConcurrencyEnabled", False))
    if dynamic:
        log.warning("host.json concurrency.dynamicConcurrencyEnabled=true is not emulated locally; "
                    "static limits (batchSize/newBatchThreshold, maxDegreeOfParallelism) apply")
    return HostConfig(
        queues=_queues(extensions.get("queues") or {}),
        blobs=_blobs(extensions.get("blobs") or {}),
        function_timeout=timeout,
        dynamic_concurrency=dynamic,
        log_levels=_log_levels((doc.get("logging") or {}).get("logLevel")),
    )


OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def _setting_value(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        return text


def apply_overrides(doc: dict, environ) -> dict:
    """host.json with the ``AzureFunctionsJobHost__...`` settings applied (a new document)."""
    out = json.loads(json.dumps(doc))
    for name, value in sorted(environ.items()):
        if not name.lower().startswith(OVERRIDE_PREFIX.lower()):
            continue
        path = [p for p in name[len(OVERRIDE_PREFIX):].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            key = next((k for k in node if k.lower() == part.lower()), part)
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        key = next((k for k in node if k.lower() == path[-1].lower()), path[-1])
        node[key] = _setting_value(value)
    return out


def load_host_json(app_dir: Path, environ=None) -> HostConfig:
    """Read ``<app_dir>/host.json`` with the app settings' overrides; a missing file is an error, as it is for
    the real host."""
    path = app_dir / "host.json"
    if not path.is_file():
        raise ConfigError(f"host.json not found in {app_dir}: a Functions app needs one next to function_app.py")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"host.json: invalid JSON ({exc})") from exc
    if isinstance(doc, dict):
        doc = apply_overrides(doc, os.environ if environ is None else environ)
    return parse_host_json(doc)
