"""WorkItems and the pure rules that make them: blob routing, request parsing, input policy, overrides.

Both triggers end here. The blob trigger knows a container, a name and the blob's properties; the queue trigger
knows a JSON request. Either way the result is a list of WorkItems (one per input) for one pipeline, or a
Rejection with a reason a person can act on. Nothing here does I/O: the caller looks blobs up (HEAD, never a
download) and passes the properties in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from shared import ids
from shared.code_env import loads_code
from shared.config_reader import ENV_NAME, RESERVED_ENV_PREFIXES
from shared.durations import format_duration, parse_duration
from shared.errors import Rejection
from shared.names import check_blob_name
from shared.pipelines import Pipeline, PipelineConfig

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$|^\$root$")
REQUEST_KEYS = ("pipeline", "inputs", "overrides", "idempotencyKey")


@dataclass(frozen=True)
class BlobRef:
    container: str
    name: str


@dataclass(frozen=True)
class PrefixRef:
    """Every blob under a prefix (one request line for thousands of inputs; a queue message holds at most 64 KiB)."""

    container: str
    prefix: str


@dataclass(frozen=True)
class BlobInfo:
    """What a HEAD on the blob tells us; never the content."""

    container: str
    name: str
    etag: str  # unquoted (shared.ids.etag_of), whichever way it was learnt
    size: int
    content_type: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "etag", ids.etag_of(self.etag))


@dataclass(frozen=True)
class Overrides:
    environment: Mapping[str, str] = field(default_factory=dict)
    retries: int | None = None
    max_wall_clock_time: str | None = None  # ISO 8601

    def as_dict(self) -> dict:
        out: dict[str, Any] = {}
        if self.environment:
            out["environment"] = dict(self.environment)
        if self.retries is not None:
            out["retries"] = self.retries
        if self.max_wall_clock_time:
            out["maxWallClockTime"] = self.max_wall_clock_time
        return out


@dataclass(frozen=True)
class WorkItem:
    pipeline: str
    blob: BlobInfo
    source: str  # blob | queue
    request_id: str | None = None
    idempotency_key: str | None = None
    overrides: Overrides = field(default_factory=Overrides)


@dataclass(frozen=True)
class Request:
    """A parsed queue request, before its blobs were looked up."""

    pipeline: Pipeline
    inputs: tuple[BlobRef | PrefixRef, ...]
    overrides: Overrides
    idempotency_key: str | None


def shown(text: str, limit: int = 64) -> str:
    """An untrusted string as a reason quotes it: repr (control characters escaped), cut to `limit` characters, so
    a huge input cannot crowd out the reason around it (reasons are bounded as a whole too)."""
    return repr(text[:limit]) + (f" (cut, {len(text)} characters)" if len(text) > limit else "")


# ---- blob routing ----------------------------------------------------------------------------------------
def route_blob(config: PipelineConfig, container: str, name: str) -> Pipeline:
    """The first pipeline (in file order) whose blob policy takes container/name; Rejection when none does."""
    check_blob_name(name)
    for pipeline in config.pipelines.values():
        policy = pipeline.blob_input
        if policy and blob_matches(pipeline, container, name):
            check_enabled(config, pipeline)
            return pipeline
    taken = [f"{p.blob_input.container}/{p.blob_input.prefix}{p.blob_input.glob} ({p.name})"
             for p in config.pipelines.values() if p.blob_input]
    raise Rejection("outside-policy", f"no pipeline takes blob {container}/{name}; blob inputs are accepted at "
                                      f"{', '.join(taken) or 'no location'}")


def check_enabled(config: PipelineConfig, pipeline: Pipeline) -> None:
    """Rejection for a pipeline switched off in pipelines.yaml (its own `enabled`, or its pool's): its inputs are
    recorded as rejected with this reason, never run on a pool that was not deployed."""
    pool = config.pools[pipeline.pool]
    if not pipeline.enabled:
        raise Rejection("pipeline-disabled", f"pipeline {pipeline.name} is disabled (enabled: false in "
                                             "pipelines.yaml); enable it to run this input")
    if not pool.enabled:
        raise Rejection("pipeline-disabled", f"pipeline {pipeline.name} is disabled: its pool {pool.id} has "
                                             "enabled: false in pipelines.yaml (its setting, if it names one, "
                                             "switches it on)")


def blob_matches(pipeline: Pipeline, container: str, name: str) -> bool:
    policy = pipeline.blob_input
    if policy is None or container != policy.container or not name.startswith(policy.prefix):
        return False
    return fnmatch.fnmatchcase(name[len(policy.prefix):], policy.glob)


def check_size(pipeline: Pipeline, blob: BlobInfo) -> None:
    if pipeline.max_input_bytes is not None and blob.size > pipeline.max_input_bytes:
        raise Rejection("outside-policy", f"input {blob.container}/{blob.name} is {blob.size} bytes; pipeline "
                                          f"{pipeline.name} accepts at most {pipeline.max_input_bytes} bytes")


# ---- queue requests --------------------------------------------------------------------------------------
def decode_request(body: bytes | str) -> dict:
    """The JSON object of a request message; Rejection('malformed') for anything else."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejection("malformed", "the message is not UTF-8 text; send a JSON object") from None
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise Rejection("malformed", f"the message is not valid JSON ({exc.msg} at line {exc.lineno} column "
                                     f"{exc.colno}); send a JSON object like "
                                     '{"pipeline": "...", "inputs": ["container/name"]}') from None
    except RecursionError:
        raise Rejection("malformed", "the message nests JSON arrays or objects too deeply to read; send a flat "
                                     '{"pipeline": "...", "inputs": [...]}') from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise Rejection("malformed", f"the message cannot be read as JSON ({str(exc)[:120]}); send a JSON "
                                     "object like {\"pipeline\": \"...\", \"inputs\": [...]}") from None
    if not isinstance(data, dict):
        raise Rejection("malformed", f"the message is JSON {type(data).__name__}, not an object; send "
                                     '{"pipeline": "...", "inputs": [...]}')
    return data


def parse_input(value: Any, index: int, account_blob_url: str) -> BlobRef | PrefixRef:
    """A blob URL of this app's storage account, `container/name`, {container, name}, or {container, prefix}."""
    where = f"inputs[{index}]"
    if isinstance(value, dict) and "prefix" in value:
        if set(value) != {"container", "prefix"} or not all(isinstance(v, str) for v in value.values()):
            raise Rejection("schema", f'{where} must be {{"container": "...", "prefix": "..."}}')
        if not _CONTAINER.match(value["container"]):
            raise Rejection("schema", f"{where}: {shown(value['container'])} is not a valid container name")
        check_blob_name(value["prefix"].rstrip("/") or "", f"prefix of {where}")
        return PrefixRef(value["container"], value["prefix"])
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"container", "name"})
        if unknown or not isinstance(value.get("container"), str) or not isinstance(value.get("name"), str):
            raise Rejection("schema", f"{where} must be a blob URL, 'container/name', "
                                      '{"container": "...", "name": "..."} or {"container": "...", "prefix": "..."}')
        ref = BlobRef(value["container"], value["name"])
    elif isinstance(value, str) and value:
        if value.startswith(("http://", "https://")):
            ref = _from_url(value, where, account_blob_url)
        else:
            container, _, name = value.partition("/")
            ref = BlobRef(container, name)
    else:
        raise Rejection("schema", f"{where} must be a non-empty string or object, got {type(value).__name__}")
    if not _CONTAINER.match(ref.container):
        raise Rejection("schema", f"{where}: {shown(ref.container)} is not a valid container name")
    check_blob_name(ref.name, f"name of {where}")
    return ref


def _from_url(url: str, where: str, account_blob_url: str) -> BlobRef:
    parts = urlsplit(url)
    base = urlsplit(account_blob_url)
    base_path = base.path.rstrip("/")
    if (parts.scheme, parts.netloc.lower()) != (base.scheme, base.netloc.lower()) or \
            not parts.path.startswith(base_path + "/"):
        raise Rejection("outside-policy", f"{where} is not in this app's storage account ({account_blob_url}); "
                                          "copy the blob there first")
    if parts.query:
        raise Rejection("schema", f"{where}: leave the query string (SAS) off the URL; the app has its own access")
    container, _, name = parts.path[len(base_path) + 1:].partition("/")
    return BlobRef(unquote(container), unquote(name))


def parse_overrides(pipeline: Pipeline, data: Any) -> Overrides:
    if data is None:
        return Overrides()
    if not isinstance(data, dict):
        raise Rejection("schema", "overrides must be an object")
    not_allowed = sorted(set(data) - set(pipeline.overridable))
    if not_allowed:
        allowed = ", ".join(pipeline.overridable) or "nothing"
        raise Rejection("outside-policy", f"pipeline {pipeline.name} does not allow overriding "
                                          f"{', '.join(not_allowed)} (allowed: {allowed})")
    raw_env = data.get("environment") or {}
    if not isinstance(raw_env, dict):
        raise Rejection("schema", "overrides.environment must be an object of NAME: value")
    env: dict[str, str] = {}
    allowed_env = pipeline.overridable_environment
    for name, value in raw_env.items():
        if (not isinstance(name, str) or not ENV_NAME.match(name) or name.upper().startswith(RESERVED_ENV_PREFIXES)
                or loads_code(name) or name not in allowed_env):
            quoted = name[:64] if isinstance(name, str) else type(name).__name__
            raise Rejection("outside-policy", f"overrides.environment: {quoted!r} may not be set by a request; "
                                              f"pipeline {pipeline.name} allows {', '.join(allowed_env) or 'none'}")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or len(str(value)) > 4096:
            raise Rejection("schema", f"overrides.environment.{name} must be a string of at most 4096 characters "
                                      "(its value is not shown)")
        env[name] = str(value)
    retries = data.get("retries")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10):
        raise Rejection("outside-policy", "overrides.retries must be a whole number 0..10")
    wall = data.get("maxWallClockTime")
    if wall is not None:
        try:
            duration = parse_duration(str(wall))
        except ValueError as exc:
            raise Rejection("schema", f"overrides.maxWallClockTime: {exc}") from None
        if duration > pipeline.max_wall_clock_time:
            raise Rejection("outside-policy", f"overrides.maxWallClockTime {wall} exceeds the pipeline's limit "
                                              f"{format_duration(pipeline.max_wall_clock_time)}")
        wall = format_duration(duration)
    return Overrides(environment=env, retries=retries, max_wall_clock_time=wall)


def parse_request(config: PipelineConfig, data: dict, account_blob_url: str) -> Request:
    """Validate a decoded request against the schema and the pipeline's policy (no I/O)."""
    unknown = sorted(set(data) - set(REQUEST_KEYS))
    if unknown:
        names = ", ".join(shown(u, 40) if len(u) > 40 or not u.isprintable() else u for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise Rejection("schema", f"unknown field(s) {names}{more}; a request has {', '.join(REQUEST_KEYS)}")
    name = data.get("pipeline")
    if not isinstance(name, str) or not name:
        raise Rejection("schema", "field 'pipeline' is required and must be a pipeline name")
    pipeline = config.pipeline(name)
    if pipeline is None:
        raise Rejection("unknown-pipeline", f"pipeline {shown(name)} does not exist; known pipelines: "
                                            f"{', '.join(sorted(config.pipelines))}")
    check_enabled(config, pipeline)
    if not pipeline.queue_input:
        raise Rejection("outside-policy", f"pipeline {name} does not take queue requests (inputs.queue is false)")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise Rejection("schema", "field 'inputs' is required: a non-empty list of blob URLs or 'container/name'")
    if len(inputs) > pipeline.max_inputs:
        raise Rejection("outside-policy", f"{len(inputs)} inputs; pipeline {name} takes at most "
                                          f"{pipeline.max_inputs} per request")
    key = data.get("idempotencyKey")
    if key is not None and (not isinstance(key, str) or not IDEMPOTENCY_KEY.match(key)):
        raise Rejection("schema", "idempotencyKey must be 1-128 letters, digits or ._:@-")
    refs = []
    seen = set()
    for i, value in enumerate(inputs):
        ref = parse_input(value, i, account_blob_url)
        if isinstance(ref, PrefixRef):
            policy = pipeline.blob_input
            if policy and (ref.container != policy.container or not (ref.prefix.startswith(policy.prefix)
                                                                      or policy.prefix.startswith(ref.prefix))):
                raise Rejection("outside-policy", f"inputs[{i}] {ref.container}/{ref.prefix}* is outside pipeline "
                                                  f"{name}'s inputs ({policy.container}/{policy.prefix}{policy.glob})")
        elif pipeline.blob_input and not blob_matches(pipeline, ref.container, ref.name):
            p = pipeline.blob_input
            raise Rejection("outside-policy", f"inputs[{i}] {ref.container}/{ref.name} is outside pipeline "
                                              f"{name}'s inputs ({p.container}/{p.prefix}{p.glob})")
        if ref in seen:
            raise Rejection("schema", f"inputs[{i}] {ref.container}/{ref.name} is listed twice")
        seen.add(ref)
        refs.append(ref)
    return Request(pipeline=pipeline, inputs=tuple(refs), overrides=parse_overrides(pipeline, data.get("overrides")),
                   idempotency_key=key)


def canonical_request(request: Request) -> str:
    """The request as one text that does not depend on how it was written: sorted-keys JSON of the pipeline, the
    inputs in the form parsing gave them (a URL, 'container/name' and {container, name} are the same input; their
    order does not matter) and the overrides; the idempotency key itself is left out."""
    inputs = sorted(({"container": r.container, "prefix": r.prefix} if isinstance(r, PrefixRef)
                     else {"container": r.container, "name": r.name} for r in request.inputs),
                    key=lambda d: json.dumps(d, sort_keys=True))
    doc = {"pipeline": request.pipeline.name, "inputs": inputs, "overrides": request.overrides.as_dict()}
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_digest(request: Request) -> str:
    """SHA-256 (hex) of canonical_request: what an idempotency key is bound to."""
    return hashlib.sha256(canonical_request(request).encode("utf-8")).hexdigest()


def resolve_inputs(request: Request, lookup: Callable[[BlobRef], BlobInfo | None],
                   lister: Callable[..., list[BlobInfo]] | None = None, workers: int = 8) -> list[BlobInfo]:
    """Look every input up (HEAD, `workers` at a time; prefixes are listed, which also gives the properties);
    Rejection('missing-blob') naming what is missing, and the pipeline's rules for every blob found."""
    pipeline = request.pipeline
    names = [r for r in request.inputs if isinstance(r, BlobRef)]
    if len(names) > 1 and workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            infos = list(pool.map(lookup, names))
    else:
        infos = [lookup(ref) for ref in names]
    found: dict[tuple[str, str], BlobInfo] = {}
    missing = [f"{ref.container}/{ref.name}" for ref, info in zip(names, infos, strict=True) if info is None]
    for info in infos:
        if info is not None:
            found[(info.container, info.name)] = info
    def keep(info: BlobInfo) -> bool:
        return not pipeline.blob_input or blob_matches(pipeline, info.container, info.name)

    for ref in (r for r in request.inputs if isinstance(r, PrefixRef)):
        # The policy filter comes first and the cap counts what it keeps: a prefix holding more blobs than the
        # pipeline takes is rejected with the count, never cut short.
        listed = lister(ref, pipeline.max_inputs + 1, keep) if lister else []
        if not listed:
            missing.append(f"{ref.container}/{ref.prefix}*")
        for info in listed:
            check_blob_name(info.name)
            found.setdefault((info.container, info.name), info)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise Rejection("missing-blob", f"input blob(s) not found: {', '.join(missing[:3])}{more}; upload them "
                                        "before sending the request")
    if len(found) > pipeline.max_inputs:
        counted = "more than" if any(isinstance(r, PrefixRef) for r in request.inputs) else "exactly"
        raise Rejection("outside-policy", f"the request names {counted} {len(found) - (counted != 'exactly')} "
                                          f"input blobs; pipeline {pipeline.name} takes at most "
                                          f"{pipeline.max_inputs} per request: split it (no input was dropped)")
    for info in found.values():
        check_size(pipeline, info)
    return list(found.values())
