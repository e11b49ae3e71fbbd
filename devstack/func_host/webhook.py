"""The host's Event Grid endpoint for blob triggers (source EventGrid), as the real host serves it.

    POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>&code=<key>
    body: an Event Grid event array (EventGridSchema)

On Azure, the Event Grid subscription (infra/modules/blob-events-subscription.bicep) posts each BlobCreated event of
the watched container here, with the host's blobs_extension key. Locally nothing in Azurite emits events, so the
stack's own uploaders (devstack.func_host.events: the demo, `eventbatch submit`, the benchmarks) post the same
events after each upload, in the place of Event Grid; every other upload is found by the container scan, which
stays on as the fallback (and is what delivers the Batch emulator's completion markers). The endpoint answers the
subscription validation handshake, checks the key (written with the port to the host's status file, mode 0600),
listens on loopback only and hands each BlobCreated event to the function's blob listener, which claims and
invokes it exactly as it does a blob found by a scan (receipts make a blob seen both ways run once).
The same server (same port, same key) serves the eventGridTrigger webhook (devstack.func_host.eventgrid_webhook)
and the local Event Grid's publish endpoint (devstack.func_host.eventgrid_local).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("func_host")
PATH = "/runtime/webhooks/blobs"
MAX_BODY = 1024 * 1024  # Event Grid batches are at most 1 MB
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


def blob_of(url: str) -> tuple[str, str] | None:
    """(container, blob name) of a blob URL: https://<account>.blob.../<container>/<name> or the path-style
    http://127.0.0.1:10000/<account>/<container>/<name> of Azurite."""
    parts = urlsplit(url)
    segments = parts.path.lstrip("/").split("/")
    host = parts.hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or host.replace(".", "").isdigit():
        segments = segments[1:]  # path style: the account comes first
    if len(segments) < 2 or not segments[0]:
        return None
    return unquote(segments[0]), unquote("/".join(segments[1:]))


def read_json_body(headers, body_stream) -> tuple[int, dict] | tuple[None, object]:
    """(None, parsed JSON) or (status, error body): the size and JSON checks every endpoint of the server makes."""
    try:
        length = int(headers.get("Content-Length") or "0")
    except ValueError:
        return 400, {"error": "bad Content-Length"}
    if not 0 < length <= MAX_BODY:
        return 413 if length > MAX_BODY else 400, {"error": "the body must be an Event Grid event array"}
    try:
        return None, json.loads(body_stream.read(length))
    except ValueError:
        return 400, {"error": "the body is not JSON"}


def header(headers, name: str) -> str | None:
    """A request header, case-insensitively (http.server's message object, or a plain dict in tests)."""
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # listen backlog: a burst of publishers must not find the port refusing connections


class WebhookServer:
    """One loopback server and key for every endpoint of the host: the blobs extension's webhook (this module),
    the eventGridTrigger webhook and the local Event Grid's publish endpoint (added with ``add_route``)."""

    def __init__(self, listeners: dict, key: str, port: int = 0):
        self.listeners = listeners  # function name -> BlobListener
        self.key = key
        self._routes = {PATH: self._handle_blobs}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # noqa: D401 - the host logs invocations, not requests
                return

            def _answer(self, status: int, body: dict | list | str | None = None) -> None:
                if isinstance(body, str):  # the real host answers a failed notification with the error's text
                    data, kind = body.encode(), "text/plain; charset=utf-8"
                else:
                    data, kind = (json.dumps(body).encode() if body is not None else b""), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server API name
                status, body = server.handle(self.path, self.headers, self.rfile)
                self._answer(status, body)

        self._httpd = _Server(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + PATH

    def add_route(self, path: str, handler) -> None:
        """``handler(query: dict[str, list[str]], headers, body_stream) -> (status, body)``; the key is checked
        before it is called."""
        self._routes[path.rstrip("/")] = handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, path: str, headers, body_stream) -> tuple[int, dict | list | str | None]:
        parts = urlsplit(path)
        route = self._routes.get(parts.path.rstrip("/"))
        if route is None:
            return 404, {"error": f"no such endpoint: {parts.path}"}
        query = parse_qs(parts.query)
        code = (query.get("code") or [""])[0]
        if not hmac.compare_digest(code.encode(), self.key.encode()):
            return 401, {"error": "missing or wrong code (the host's extension key)"}
        return route(query, headers, body_stream)

    def _handle_blobs(self, query: dict, headers, body_stream) -> tuple[int, dict | list | None]:
        name = (query.get("functionName") or [""])[0].removeprefix("Host.Functions.")
        listener = self.listeners.get(name)
        if listener is None:
            return 404, {"error": f"functionName {name!r} is not a blob trigger of this host with source EventGrid"}
        status, events = read_json_body(headers, body_stream)
        if status is not None:
            return status, events
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list):
            return 400, {"error": "the body must be an Event Grid event array"}
        for event in events:
            if not isinstance(event, dict):
                return 400, {"error": "every event must be an object"}
            data = event.get("data") or {}
            if event.get("eventType") == VALIDATION:
                return 200, {"validationResponse": data.get("validationCode")}
            if event.get("eventType") != BLOB_CREATED or not isinstance(data, dict):
                continue
            where = blob_of(str(data.get("url") or ""))
            if where is None or where[0] != listener.path.container:
                continue
            listener.notify(where[1], etag=data.get("eTag"), size=data.get("contentLength"),
                            content_type=data.get("contentType"))
        return 202, None
