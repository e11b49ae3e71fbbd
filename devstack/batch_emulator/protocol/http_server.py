"""The HTTP front: a threaded stdlib server that authenticates, routes and writes Batch-shaped responses.

The route table comes from the composition root (server.py), so this layer imports no handler. Each response
goes out in one ``write`` with TCP_NODELAY, keeping a get-task round trip around a millisecond on
loopback (no Nagle/delayed-ACK stalls); task files are streamed in chunks instead. Nothing here knows about
containers or the task state machine.

Robustness before auth: a Content-Length that is not a non-negative integer, or a chunked body, is 400 and the
connection is closed; a body over MAX_BODY is 413; every connection has a socket timeout (``--client-timeout``), so
a client that stops sending mid-request, or an idle keep-alive connection, gives its thread back.
"""

from __future__ import annotations

import logging
import re
import socket
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

from devstack.batch_emulator import errors
from devstack.batch_emulator.protocol import auth
from devstack.batch_emulator.protocol.messages import Request, Response, json_response
from devstack.batch_emulator.protocol.routing import Router

log = logging.getLogger("batch_emulator.http")

MAX_BODY = 16 * 1024 * 1024
DEFAULT_CLIENT_TIMEOUT = 30.0
STREAM_CHUNK = 256 * 1024
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.\d+\.\d+)?(-preview)?$")
SUPPORTED_API_VERSIONS = ("2025-06-01", "2024-07-01.20.0", "2024-02-01.19.0", "2023-11-01.18.0",
                          "2022-10-01.16.0", "2021-06-01.14.0")


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app, router: Router, client_timeout: float = DEFAULT_CLIENT_TIMEOUT):
        self.app = app
        self.router = router
        handler = type("_TimedHandler", (_Handler,), {"timeout": client_timeout})
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BatchEmulator/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):  # quiet: one debug line per request
        log.debug("%s - %s", self.address_string(), fmt % args)

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _send(self, response: Response, request_id: str) -> None:
        headers = {"request-id": request_id, "DataServiceVersion": "3.0", "Date": formatdate(usegmt=True)}
        crid = self.headers.get("client-request-id")
        if crid:
            headers["client-request-id"] = crid
        headers.update(response.headers)
        body = response.body
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(response.stream_length if response.stream is not None else len(body))
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        with_body = self.command != "HEAD" and response.status not in (204, 304)
        if with_body and response.stream is None:
            data += body
        self.wfile.write(data)
        if with_body and response.stream is not None:
            self._copy_stream(response.stream, response.stream_length)
        self.log_request(response.status)

    def _copy_stream(self, stream, length: int) -> None:
        """Send exactly `length` bytes; a file that shrank meanwhile ends the connection (the length is sent)."""
        left = length
        while left > 0:
            chunk = stream.read(min(STREAM_CHUNK, left))
            if not chunk:
                self.close_connection = True
                return
            self.wfile.write(chunk)
            left -= len(chunk)

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        app = self.server.app
        try:
            response = self._dispatch(app, request_id)
        except TimeoutError:
            # The client stopped sending in the middle of its request: give the thread back, answer nothing.
            self.close_connection = True
            return
        except errors.BatchError as exc:
            response = json_response(exc.status, exc.to_body(self._base_url(), request_id), exc.headers)
        except Exception:  # noqa: BLE001 - answer 500 like Batch instead of dropping the connection
            log.exception("unhandled error in %s %s", self.command, self.path)
            exc = errors.BatchError(500, "InternalError", "The server encountered an internal error. Please "
                                    "retry the request.")
            response = json_response(500, exc.to_body(self._base_url(), request_id))
        try:
            self._send(response, request_id)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            if response.stream is not None:
                response.stream.close()

    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        return f"http://{host}"

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise _bad_header("Transfer-Encoding", self.headers["Transfer-Encoding"], "chunked request bodies "
                              "are not supported; send Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return b""
        if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            raise _bad_header("Content-Length", ", ".join(lengths), "Content-Length must be one non-negative "
                              "integer")
        size = int(lengths[0])
        if size > MAX_BODY:
            self.close_connection = True
            raise errors.body_too_large(f"The body is {size} bytes; the limit is {MAX_BODY}")
        body = self.rfile.read(size)
        if len(body) != size:
            self.close_connection = True
            raise errors.invalid_body(f"The body ended after {len(body)} of {size} bytes")
        return body

    def _dispatch(self, app, request_id: str) -> Response:
        raw_path, _, raw_query = self.path.partition("?")
        body = self._read_body()
        if raw_path.rstrip("/") == "/_emulator/health":
            return json_response(200, app.health())
        if app.faults is not None:
            app.faults.before_request()
        headers = dict(self.headers.items())
        account = auth.verify(self.command, raw_path, raw_query, headers, app.keys)
        query = {k.lower(): v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        api_version = query.get("api-version")
        if not api_version:
            raise errors.missing_query("api-version")
        if not _API_VERSION.match(api_version):
            raise errors.invalid_query("api-version", api_version, "Unsupported api-version; the emulator "
                                       f"speaks {', '.join(SUPPORTED_API_VERSIONS)}")
        segments = [unquote(s) for s in raw_path.strip("/").split("/") if s]
        handler, params = self.server.router.match(self.command, segments)
        if handler is None:
            raise errors.BatchError(400, "InvalidUri", "The requested URI does not represent any resource on the "
                                    "server.", {"Uri": raw_path})
        if handler is False:
            raise errors.BatchError(405, "UnsupportedHttpVerb", f"{self.command} is not allowed on this resource.")
        req = Request(self.command, segments, query, headers, body, self._base_url(), api_version,
                      app.services[account], params)
        return handler(req)


def _bad_header(name: str, value: str, reason: str) -> errors.BatchError:
    return errors.BatchError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the "
                             "correct format.", {"HeaderName": name, "HeaderValue": value[:100], "Reason": reason})
