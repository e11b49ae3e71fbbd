"""HTTP request -> model call -> Batch-shaped response, one function per REST operation.

Handlers see a :class:`Request` (already authenticated, api-version checked) and return a :class:`Response`;
they add what Batch adds around entities (odata.metadata, url, ETag/Last-Modified headers, paging links) and
know nothing about containers or threads.
"""

from __future__ import annotations

import json
import mimetypes
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from devstack.batch_emulator import errors, odata, timeutil
from devstack.batch_emulator.service import AccountService
from devstack.batch_emulator.supported_images import SUPPORTED_IMAGES

JSON_TYPE = "application/json;odata=minimalmetadata"


@dataclass
class Request:
    method: str
    segments: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str
    api_version: str
    service: AccountService
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.invalid_body(f"The body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise errors.invalid_body("The body must be a JSON object")
        return value

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lname:
                return v
        return None

    @property
    def model(self):
        return self.service.model


@dataclass
class Response:
    """`body` is sent as is; or, for task files, `stream` (an open binary file positioned at the first byte)
    supplies `stream_length` bytes that the HTTP layer copies in chunks and then closes."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: object | None = None
    stream_length: int = 0


def json_response(status: int, body: dict, headers: dict | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    h = {"Content-Type": JSON_TYPE}
    h.update(headers or {})
    return Response(status, data, h)


def entity_headers(entity: dict) -> dict:
    h = {}
    if entity.get("eTag"):
        h["ETag"] = entity["eTag"]
    if entity.get("lastModified"):
        h["Last-Modified"] = timeutil.rfc1123(entity["lastModified"])
    return h


def created(req: Request, entity: dict, path: str) -> Response:
    h = entity_headers(entity)
    h["Location"] = req.base_url + path
    h["DataServiceId"] = req.base_url + path
    return Response(201, b"", h)


def accepted(status: int = 202, entity: dict | None = None, path: str | None = None, req: Request | None = None):
    h = entity_headers(entity or {})
    if path and req:
        h["DataServiceId"] = req.base_url + path
    return Response(status, b"", h)


def check_conditions(req: Request, entity: dict) -> Response | None:
    """If-Match / If-None-Match / If-(Un)Modified-Since against an entity; a 304/412 response or None."""
    etag = entity.get("eTag")
    if_match = req.header("If-Match")
    if if_match and if_match != "*" and if_match.strip('"') != etag:
        raise errors.condition_not_met()
    if_none = req.header("If-None-Match")
    if if_none and (if_none == "*" or if_none.strip('"') == etag):
        if req.method in ("GET", "HEAD"):
            return Response(304, b"", entity_headers(entity))
        raise errors.condition_not_met()
    return None


def decorate(req: Request, entity: dict, path: str, metadata: str, select: list[str] | None) -> dict:
    out = {"odata.metadata": f"{req.base_url}/$metadata#{metadata}"}
    out.update(odata.apply_select(entity, select))
    if not select or "url" in select:
        out["url"] = req.base_url + path
    return out


def list_response(req: Request, items: list[dict], path_of, metadata: str) -> Response:
    """$filter, $select, maxresults and stateless $skiptoken paging over wire dicts."""
    token = req.query.get("$skiptoken")
    if token:
        state = odata.read_skiptoken(token)
        flt, sel, maxr, offset = state.get("f"), state.get("s"), int(state.get("m", 1000)), int(state.get("o", 0))
    else:
        flt, sel = req.query.get("$filter"), req.query.get("$select")
        maxr, offset = odata.parse_maxresults(req.query.get("maxresults")), 0
    predicate = odata.parse_filter(flt)
    select = odata.parse_select(sel)
    matched = [i for i in items if predicate is None or predicate(i)]
    page = matched[offset: offset + maxr]
    body = {"odata.metadata": f"{req.base_url}/$metadata#{metadata}",
            "value": [_list_item(req, i, path_of(i), select) for i in page]}
    if offset + maxr < len(matched):
        nxt = odata.make_skiptoken({"f": flt, "s": sel, "m": maxr, "o": offset + maxr})
        path = "/" + "/".join(quote(s, safe="") for s in req.segments)
        body["odata.nextLink"] = f"{req.base_url}{path}?api-version={req.api_version}&$skiptoken={nxt}"
    return json_response(200, body)


def _list_item(req: Request, item: dict, path: str, select):
    out = odata.apply_select(item, select)
    if not select or "url" in select:
        out["url"] = req.base_url + path
    return out


def without_secrets(entity):
    """An entity as Batch shows it: secrets given to it (container registry and user account passwords) are
    write-only; the model keeps them for the nodes, the API never returns them."""
    if isinstance(entity, dict):
        return {k: without_secrets(v) for k, v in entity.items() if k != "password"}
    if isinstance(entity, list):
        return [without_secrets(v) for v in entity]
    return entity


def get_response(req: Request, entity: dict, path: str, metadata: str) -> Response:
    cond = check_conditions(req, entity)
    if cond:
        return cond
    select = odata.parse_select(req.query.get("$select"))
    return json_response(200, decorate(req, entity, path, metadata, select), entity_headers(entity))


# ---- pools -----------------------------------------------------------------------------------------------
def create_pool(req: Request) -> Response:
    body = req.json()
    if body.get("enableAutoScale"):
        _validate_formula(req, body.get("autoScaleFormula"))
    pool = req.model.create_pool(body)
    if pool.get("enableAutoScale"):
        _evaluate_and_apply(req, pool["id"], pool["autoScaleFormula"])
    return created(req, pool, f"/pools/{pool['id']}")


def _validate_formula(req: Request, formula: str) -> None:
    autoscaler = req.service.autoscaler
    if autoscaler is None or not formula:
        return
    problem = autoscaler.validate(formula)
    if problem:
        raise errors.BatchError(400, problem.get("code", "InvalidAutoScalingFormula"),
                                (problem.get("message") or {}).get("value") if isinstance(problem.get("message"),
                                                                                          dict)
                                else problem.get("message", "The autoscale formula is not valid."),
                                {v.get("key", v.get("name", "")): v.get("value", "")
                                 for v in problem.get("values", [])})


def _evaluate_and_apply(req: Request, pool_id: str, formula: str) -> None:
    autoscaler = req.service.autoscaler
    if autoscaler is None:
        req.model.set_autoscale_run(pool_id, _no_autoscaler_run())
        return
    if hasattr(autoscaler, "evaluate_and_apply"):
        autoscaler.evaluate_and_apply(pool_id)
        return
    run = autoscaler.evaluate(pool_id, formula)
    if run.get("error"):
        req.model.set_autoscale_run(pool_id, run)
        return
    values = {}
    for part in (run.get("results") or "").split(";"):
        name, _, value = part.partition("=")
        values[name.strip()] = value.strip()

    def num(key, default):
        try:
            return int(float(values.get(key, default)))
        except ValueError:
            return default
    pool = req.model.get_pool(pool_id)
    option = values.get("$NodeDeallocationOption") or None
    req.model.apply_autoscale(pool_id, num("$TargetDedicatedNodes", pool.get("targetDedicatedNodes", 0)),
                              num("$TargetLowPriorityNodes", pool.get("targetLowPriorityNodes", 0)), option, run)


def _no_autoscaler_run() -> dict:
    return {"timestamp": timeutil.now_iso(), "error": {
        "code": "AutoScaleNotAvailable", "message": "The emulator's autoscale evaluator is not installed; the "
        "formula was stored but not evaluated."}}


def list_pools(req: Request) -> Response:
    return list_response(req, [without_secrets(p) for p in req.model.list_pools()], lambda p: f"/pools/{p['id']}",
                         "pools")


def get_pool(req: Request) -> Response:
    pool = req.model.get_pool(req.params["pool"])
    return get_response(req, without_secrets(pool), f"/pools/{pool['id']}", "pools/@Element")


def pool_exists(req: Request) -> Response:
    try:
        pool = req.model.get_pool(req.params["pool"])
    except errors.BatchError:
        return Response(404)
    cond = check_conditions(req, pool)
    return cond or Response(200, b"", entity_headers(pool))


def delete_pool(req: Request) -> Response:
    pool = req.model.get_pool(req.params["pool"])
    check_conditions(req, pool)
    req.model.delete_pool(req.params["pool"])
    return accepted()


def update_pool(req: Request) -> Response:
    pool = req.model.update_pool(req.params["pool"], req.json(), replace=req.method == "PUT" or
                                 req.segments[-1] == "updateproperties")
    status = 204 if req.segments[-1] == "updateproperties" else 200
    return accepted(status, pool, f"/pools/{pool['id']}", req)


def resize_pool(req: Request) -> Response:
    check_conditions(req, req.model.get_pool(req.params["pool"]))
    req.model.resize_pool(req.params["pool"], req.json())
    pool = req.model.get_pool(req.params["pool"])
    return accepted(202, pool, f"/pools/{pool['id']}", req)


def stop_resize(req: Request) -> Response:
    req.model.stop_resize(req.params["pool"])
    return accepted(202)


def enable_autoscale(req: Request) -> Response:
    body = req.json()
    formula = body.get("autoScaleFormula")
    _validate_formula(req, formula)
    pool = req.model.enable_autoscale(req.params["pool"], formula, body.get("autoScaleEvaluationInterval"))
    _evaluate_and_apply(req, pool["id"], pool["autoScaleFormula"])
    pool = req.model.get_pool(pool["id"])
    return accepted(200, pool, f"/pools/{pool['id']}", req)


def disable_autoscale(req: Request) -> Response:
    req.model.disable_autoscale(req.params["pool"])
    pool = req.model.get_pool(req.params["pool"])
    return accepted(200, pool, f"/pools/{pool['id']}", req)


def evaluate_autoscale(req: Request) -> Response:
    body = req.json()
    formula = body.get("autoScaleFormula")
    if not formula:
        raise errors.missing_property("autoScaleFormula")
    pool = req.model.get_pool(req.params["pool"])
    if not pool.get("enableAutoScale"):
        raise errors.conflict("AutoScalingNotEnabled", "The specified pool does not have automatic scaling "
                              "enabled.")
    autoscaler = req.service.autoscaler
    run = autoscaler.evaluate(pool["id"], formula) if autoscaler is not None else _no_autoscaler_run()
    body = {"odata.metadata": f"{req.base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"}
    body.update(run)
    return json_response(200, body)


def remove_nodes(req: Request) -> Response:
    body = req.json()
    ids = body.get("nodeList")
    if not ids:
        raise errors.missing_property("nodeList")
    if len(ids) > 100:
        raise errors.invalid_property("nodeList", len(ids), "At most 100 nodes can be removed per request")
    req.model.remove_nodes(req.params["pool"], ids, body.get("nodeDeallocationOption"))
    return accepted(202)


# ---- nodes -----------------------------------------------------------------------------------------------
def list_nodes(req: Request) -> Response:
    pool_id = req.params["pool"]
    nodes = req.model.list_nodes(pool_id)
    pool = req.model.get_pool(pool_id)
    return list_response(req, nodes, lambda n: f"/pools/{pool['id']}/nodes/{n['id']}", "nodes")


def get_node(req: Request) -> Response:
    pool = req.model.get_pool(req.params["pool"])
    node = req.model.get_node(req.params["pool"], req.params["node"])
    select = odata.parse_select(req.query.get("$select"))
    return json_response(200, decorate(req, node, f"/pools/{pool['id']}/nodes/{node['id']}", "nodes/@Element",
                                       select))


def node_scheduling(req: Request) -> Response:
    enable = req.segments[-1] == "enablescheduling"
    req.model.set_node_scheduling(req.params["pool"], req.params["node"], enable)
    return Response(200)


# ---- jobs ------------------------------------------------------------------------------------------------
def create_job(req: Request) -> Response:
    job = req.model.create_job(req.json())
    return created(req, job, f"/jobs/{job['id']}")


def list_jobs(req: Request) -> Response:
    return list_response(req, [without_secrets(j) for j in req.model.list_jobs()], lambda j: f"/jobs/{j['id']}",
                         "jobs")


def get_job(req: Request) -> Response:
    job = req.model.get_job(req.params["job"])
    return get_response(req, without_secrets(job), f"/jobs/{job['id']}", "jobs/@Element")


def update_job(req: Request) -> Response:
    check_conditions(req, req.model.get_job(req.params["job"]))
    job = req.model.update_job(req.params["job"], req.json(), replace=req.method == "PUT")
    return accepted(200, job, f"/jobs/{job['id']}", req)


def terminate_job(req: Request) -> Response:
    check_conditions(req, req.model.get_job(req.params["job"]))
    body = req.json()
    req.model.terminate_job(req.params["job"], body.get("terminateReason"))
    job = req.model.get_job(req.params["job"])
    return accepted(202, job, f"/jobs/{job['id']}", req)


def delete_job(req: Request) -> Response:
    check_conditions(req, req.model.get_job(req.params["job"]))
    req.model.delete_job(req.params["job"])
    return accepted(202)


def disable_job(req: Request) -> Response:
    body = req.json()
    req.model.disable_job(req.params["job"], body.get("disableTasks") or "")
    return accepted(202)


def enable_job(req: Request) -> Response:
    req.model.enable_job(req.params["job"])
    return accepted(202)


def task_counts(req: Request) -> Response:
    counts = req.model.task_counts(req.params["job"])
    body = {"odata.metadata": f"{req.base_url}/$metadata#taskcountsresult/@Element"}
    body.update(counts)
    return json_response(200, body)


# ---- tasks -----------------------------------------------------------------------------------------------
def create_task(req: Request) -> Response:
    task = req.model.create_task(req.params["job"], req.json())
    job = req.model.get_job(req.params["job"])
    return created(req, task, f"/jobs/{job['id']}/tasks/{task['id']}")


def add_task_collection(req: Request) -> Response:
    results = req.model.add_task_collection(req.params["job"], req.json(), len(req.body))
    for r in results:
        path = r.pop("_path", None)
        if path:
            r["location"] = req.base_url + path
    return json_response(200, {"odata.metadata": f"{req.base_url}/$metadata#taskaddresult", "value": results})


def list_tasks(req: Request) -> Response:
    job = req.model.get_job(req.params["job"])
    return list_response(req, [without_secrets(t) for t in req.model.list_tasks(job["id"])],
                         lambda t: f"/jobs/{job['id']}/tasks/{t['id']}", "tasks")


def get_task(req: Request) -> Response:
    task = req.model.get_task(req.params["job"], req.params["task"])
    job_id = req.model.get_job(req.params["job"])["id"]  # the id as created, whatever case the URL used
    return get_response(req, without_secrets(task), f"/jobs/{job_id}/tasks/{task['id']}", "tasks/@Element")


def update_task(req: Request) -> Response:
    task = req.model.update_task(req.params["job"], req.params["task"], req.json())
    return accepted(200, task, f"/jobs/{req.params['job']}/tasks/{task['id']}", req)


def terminate_task(req: Request) -> Response:
    check_conditions(req, req.model.get_task(req.params["job"], req.params["task"]))
    req.model.terminate_task(req.params["job"], req.params["task"])
    return accepted(204)


def reactivate_task(req: Request) -> Response:
    req.model.reactivate_task(req.params["job"], req.params["task"])
    return accepted(204)


def delete_task(req: Request) -> Response:
    check_conditions(req, req.model.get_task(req.params["job"], req.params["task"]))
    req.model.delete_task(req.params["job"], req.params["task"])
    return Response(200)


def subtasks(req: Request) -> Response:
    req.model.get_task(req.params["job"], req.params["task"])
    return json_response(200, {"odata.metadata": f"{req.base_url}/$metadata#subtaskinformation", "value": []})


# ---- task files --------------------------------------------------------------------------------------------
def _task_dir(req: Request) -> Path:
    task_dir = req.model.task_paths(req.params["job"], req.params["task"])
    if not task_dir or not Path(task_dir).is_dir():
        raise errors.BatchError(409, "TaskNotStarted" if not task_dir else "TaskFilesUnavailable",
                                "The task has not run on a compute node yet, so it has no files.")
    return Path(task_dir)


def _file_path(req: Request, root: Path) -> Path:
    rel = req.params["path"].replace("\\", "/").strip("/")
    target = (root / rel).resolve()
    if root.resolve() != target and root.resolve() not in target.parents:
        raise errors.invalid_query("filePath", rel, "The path must stay inside the task directory")
    if not target.exists():
        raise errors.BatchError(404, "FileNotFound", "The specified file does not exist.")
    return target


def _file_props(path: Path) -> dict:
    st = path.stat()
    ctime = timeutil.iso(timeutil.datetime.fromtimestamp(st.st_ctime, timeutil.UTC))
    mtime = timeutil.iso(timeutil.datetime.fromtimestamp(st.st_mtime, timeutil.UTC))
    props = {"creationTime": ctime, "lastModified": mtime, "contentLength": str(st.st_size if path.is_file() else 0),
             "fileMode": oct(st.st_mode & 0o7777)[2:].rjust(4, "0")}
    if path.is_file():
        props["contentType"] = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return props


def list_task_files(req: Request) -> Response:
    root = _task_dir(req) if req.model.task_paths(req.params["job"], req.params["task"]) else None
    recursive = (req.query.get("recursive") or "false").lower() == "true"
    job_id, task_id = req.params["job"], req.params["task"]
    items = []
    if root is not None:
        if recursive:
            walker = ((Path(d), dirs, files) for d, dirs, files in os.walk(root))
        else:
            walker = [(root, [p.name for p in root.iterdir() if p.is_dir()],
                       [p.name for p in root.iterdir() if not p.is_dir()])]
        for d, dirs, files in walker:
            for name in sorted(dirs) + sorted(files):
                path = d / name
                rel = path.relative_to(root).as_posix()
                items.append({"name": rel, "isDirectory": path.is_dir(), "properties": _file_props(path),
                              "_url": f"/jobs/{job_id}/tasks/{task_id}/files/{quote(rel)}"})
    for item in items:
        item["url"] = req.base_url + item.pop("_url")
    return list_response(req, items, lambda i: i["url"][len(req.base_url):], "files")


def _file_headers(req: Request, path: Path, root: Path) -> dict:
    st = path.stat()
    rel = path.relative_to(root.resolve()).as_posix()
    return {
        "ocp-creation-time": timeutil.format_datetime(
            timeutil.datetime.fromtimestamp(st.st_ctime, timeutil.UTC), usegmt=True),
        "Last-Modified": timeutil.format_datetime(timeutil.datetime.fromtimestamp(st.st_mtime, timeutil.UTC),
                                                  usegmt=True),
        "ocp-batch-file-isdirectory": "true" if path.is_dir() else "false",
        "ocp-batch-file-url": f"{req.base_url}/jobs/{req.params['job']}/tasks/{req.params['task']}/files/"
                              f"{quote(rel)}",
        "ocp-batch-file-mode": oct(st.st_mode & 0o7777)[2:].rjust(4, "0"),
        "Content-Type": "application/octet-stream",
    }


def get_task_file(req: Request) -> Response:
    """The file is streamed (never read whole into memory), opened without following a final symlink."""
    root = _task_dir(req)
    path = _file_path(req, root)
    headers = _file_headers(req, path, root)
    if req.method == "HEAD":
        headers["Content-Length"] = str(path.stat().st_size if path.is_file() else 0)
        return Response(200, b"", headers)
    if path.is_dir():
        raise errors.BatchError(409, "FileIsDirectory", "The specified path is a directory.")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise errors.BatchError(404, "FileNotFound", "The specified file does not exist.") from None
    fh = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise errors.BatchError(404, "FileNotFound", "The specified path is not a regular file.")
        start, length = _byte_range(req.header("ocp-range"), st.st_size)
        fh.seek(start)
    except BaseException:
        fh.close()
        raise
    headers["Content-Length"] = str(length)
    return Response(200, b"", headers, stream=fh, stream_length=length)


def _byte_range(value: str | None, size: int) -> tuple[int, int]:
    """(first byte, byte count) of an ocp-range `bytes=a-b`, `bytes=a-` or `bytes=-n`, clamped to the file."""
    if not value or not value.startswith("bytes="):
        return 0, size
    start_s, sep, end_s = value[6:].partition("-")
    try:
        if not sep or (not start_s and not end_s):
            raise ValueError
        if not start_s:
            count = int(end_s)
            start, end = max(size - count, 0), size - 1
        else:
            start = int(start_s)
            end = min(int(end_s), size - 1) if end_s else size - 1
        if start < 0 or (end_s and start_s and int(end_s) < start):
            raise ValueError
    except ValueError:
        raise errors.BatchError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the "
                                "correct format.", {"HeaderName": "ocp-range", "HeaderValue": value}) from None
    return min(start, size), max(end - start + 1, 0) if start < size else 0


def delete_task_file(req: Request) -> Response:
    root = _task_dir(req)
    path = _file_path(req, root)
    if path.is_dir():
        if (req.query.get("recursive") or "false").lower() != "true":
            raise errors.BatchError(409, "DirectoryNotEmpty", "Use recursive=true to delete a directory.")
        import shutil
        shutil.rmtree(path)
    else:
        path.unlink()
    return Response(200)


# ---- account ---------------------------------------------------------------------------------------------
def supported_images(req: Request) -> Response:
    return list_response(req, [dict(i) for i in SUPPORTED_IMAGES], lambda i: "/supportedimages",
                         "Microsoft.Azure.Batch.Protocol.Entities.Container.ImageInformationCollection")


def node_counts(req: Request) -> Response:
    items = []
    for pool in req.model.list_pools():
        nodes = req.model.list_nodes(pool["id"])
        dedicated = {"total": 0}
        low = {"total": 0}
        for n in nodes:
            bucket = dedicated if n.get("isDedicated") else low
            key = {"waitingforstarttask": "waitingForStartTask", "starttaskfailed": "startTaskFailed",
                   "leavingpool": "leavingPool"}.get(n["state"], n["state"])
            bucket[key] = bucket.get(key, 0) + 1
            bucket["total"] += 1
        items.append({"poolId": pool["id"], "dedicated": _fill_counts(dedicated), "lowPriority": _fill_counts(low)})
    body = {"odata.metadata": f"{req.base_url}/$metadata#poolnodecounts", "value": items}
    return json_response(200, body)


def _fill_counts(c: dict) -> dict:
    for key in ("creating", "idle", "offline", "preempted", "rebooting", "reimaging", "running", "starting",
                "startTaskFailed", "leavingPool", "unknown", "unusable", "waitingForStartTask", "deallocated",
                "deallocating", "upgradingOS"):
        c.setdefault(key, 0)
    return c
