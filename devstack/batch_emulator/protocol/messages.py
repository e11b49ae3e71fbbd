"""The envelope of every Batch operation: the Request a handler sees and the Response it returns, plus what
Batch adds around entities (odata.metadata, url, ETag/Last-Modified headers, conditional requests, paging links).

Handlers build their answers from these; the HTTP server (http_server.py) turns a Response into bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.protocol import odata

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
    service: Any  # the account's AccountService (the model, autoscaler and preempter of the account)
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
