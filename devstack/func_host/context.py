"""The ``func.Context`` handed to functions that declare one (invocation id, name, directory)."""

import threading

import azure.functions as func
from azure.functions import _abc as azf_abc


class _TraceContext(azf_abc.TraceContext):
    trace_state = ""
    trace_parent = ""
    attributes: dict = {}  # noqa: RUF012 - read-only, matches the worker's empty trace context


class _RetryContext(azf_abc.RetryContext):
    def __init__(self, retry_count: int = 0, max_retry_count: int = 0):
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self):
        return None


class InvocationContext(func.Context):
    _local = threading.local()

    def __init__(self, invocation_id: str, function_name: str, function_directory: str):
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self):
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self):
        return _TraceContext()

    @property
    def retry_context(self):
        return _RetryContext()
