"""Batch error responses: the codes, HTTP statuses and body shape the azure-batch SDKs parse.

Body: ``{"odata.metadata": ..., "code": ..., "message": {"lang": "en-US", "value": ...}, "values": [...]}``.
The message ends with ``RequestId``/``Time`` lines as Batch's does, so logs copied from either look alike.
"""

from __future__ import annotations

import uuid

from devstack.batch_emulator import timeutil


class ConfigError(ValueError):
    """A start-up setting (a command-line option or an environment variable) is invalid; the message names it
    and the fix. The one such class of the emulator: server.main() prints it and exits 2."""


class BatchError(Exception):
    """A Batch service error; raised anywhere below the HTTP layer and rendered by it."""

    def __init__(self, status: int, code: str, message: str, values: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.values = values or {}
        self.headers = headers or {}  # extra response headers, e.g. Retry-After

    def to_body(self, base_url: str = "", request_id: str | None = None) -> dict:
        rid = request_id or str(uuid.uuid4())
        body = {
            "odata.metadata": f"{base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
            "code": self.code,
            "message": {"lang": "en-US", "value": f"{self.message}\nRequestId:{rid}\nTime:{timeutil.now_iso()}"},
        }
        if self.values:
            body["values"] = [{"key": k, "value": str(v)} for k, v in self.values.items()]
        return body

    def to_detail(self) -> dict:
        """The inline BatchError used inside addTaskCollection results (no odata.metadata)."""
        body = {"code": self.code, "message": {"lang": "en-US", "value": self.message}}
        if self.values:
            body["values"] = [{"key": k, "value": str(v)} for k, v in self.values.items()]
        return body


_KIND = {"pool": "Pool", "job": "Job", "task": "Task", "node": "Node", "file": "File"}


def not_found(kind: str, ident: str = "") -> BatchError:
    name = _KIND[kind]
    return BatchError(404, f"{name}NotFound", f"The specified {kind} does not exist.")


def job_quota_reached(quota: int) -> BatchError:
    """Batch's answer to a job add past the account's active job and schedule quota (409, like JobExists)."""
    return BatchError(409, "ActiveJobAndScheduleQuotaReached", "The number of active jobs and job schedules has "
                      f"reached the quota of the account ({quota}).", {"Quota": str(quota)})


def exists(kind: str) -> BatchError:
    name = _KIND[kind]
    return BatchError(409, f"{name}Exists", f"The specified {kind} already exists.")


def missing_property(name: str) -> BatchError:
    return BatchError(400, "MissingRequiredProperty", "A required property was not specified in the request body.",
                      {"PropertyName": name})


def invalid_property(name: str, value, reason: str) -> BatchError:
    return BatchError(400, "InvalidPropertyValue", "The value provided for one of the properties in the request "
                      "body is invalid.", {"PropertyName": name, "PropertyValue": str(value), "Reason": reason})


def invalid_body(reason: str) -> BatchError:
    return BatchError(400, "InvalidRequestBody", "The specified Request Body is not syntactically valid.",
                      {"Reason": reason})


def body_too_large(reason: str) -> BatchError:
    return BatchError(413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum "
                      "permissible limit.", {"Reason": reason})


def invalid_query(name: str, value: str, reason: str) -> BatchError:
    return BatchError(400, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the "
                      "request URI is invalid.", {"QueryParameterName": name, "QueryParameterValue": value,
                                                  "Reason": reason})


def missing_query(name: str) -> BatchError:
    return BatchError(400, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request "
                      "is not specified.", {"QueryParameterName": name})


def auth_failed(reason: str) -> BatchError:
    return BatchError(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value "
                      "of Authorization header is formed correctly including the signature.",
                      {"AuthenticationErrorDetail": reason})


def conflict(code: str, message: str) -> BatchError:
    return BatchError(409, code, message)


def condition_not_met() -> BatchError:
    return BatchError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")


def unsupported(what: str) -> BatchError:
    return BatchError(400, "UnsupportedOperation", f"The Batch emulator does not support {what}.")
