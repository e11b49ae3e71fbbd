"""Run function invocations: a shared thread pool for ``def`` functions, one event loop for ``async def``.

Mirrors the Python worker: sync functions share a ThreadPoolExecutor sized by PYTHON_THREADPOOL_THREAD_COUNT
(default min(32, cores + 4)); coroutines run on a single loop. Every invocation gets an id and two log lines
in the host's format ("Executing 'Functions.x' (Reason=..., Id=...)" / "Executed 'Functions.x' (Succeeded|Failed,
Id=..., Duration=Nms)"). functionTimeout is enforced by a watchdog: a late sync invocation is reported Failed
and its result ignored (Python cannot kill a thread; the real host would restart the worker), a late
coroutine is cancelled.
"""

import asyncio
import heapq
import itertools
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from devstack.func_host.context import InvocationContext
from devstack.func_host.errors import ConfigError, FunctionTimeoutError
from devstack.func_host.loader import LoadedFunction
from shared.dotnet_timespan import format_timespan

log = logging.getLogger("func_host")


@dataclass
class Outcome:
    invocation_id: str
    function: str
    succeeded: bool
    duration_ms: float
    error: BaseException | None = None
    started_at: float = 0.0  # epoch seconds when the function body started


class _Invocation:
    def __init__(self, function: LoadedFunction, reason: str):
        self.id = str(uuid.uuid4())
        self.function = function
        self.reason = reason
        self.future: Future = Future()
        self.lock = threading.Lock()
        self.started = 0.0
        self.started_wall = 0.0
        self.cancel: Callable[[], object] | None = None


def default_thread_count(environ=None) -> int:
    env = os.environ if environ is None else environ
    raw = env.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 32:
            raise ConfigError(f"PYTHON_THREADPOOL_THREAD_COUNT={raw!r}: must be an integer from 1 to 32")
        return int(raw)
    return min(32, (os.cpu_count() or 1) + 4)


class Invoker:
    def __init__(self, max_workers: int, function_timeout: float | None):
        self.function_timeout = function_timeout
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="invoke")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="invoke-async", daemon=True)
        self._deadlines: list[tuple[float, int, _Invocation]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._watchdog = threading.Thread(target=self._watch, name="invoke-timeout", daemon=True)
        self._active = 0
        self._active_lock = threading.Lock()

    def start(self) -> None:
        self._loop_thread.start()
        self._watchdog.start()

    @property
    def active(self) -> int:
        with self._active_lock:
            return self._active

    def invoke(self, function: LoadedFunction, build_kwargs: Callable[[InvocationContext], dict],
               reason: str) -> Future:
        """Queue one invocation; the returned future resolves to an Outcome (never raises)."""
        inv = _Invocation(function, reason)
        with self._active_lock:
            self._active += 1
        self._pool.submit(self._run, inv, build_kwargs)
        return inv.future

    def _run(self, inv: _Invocation, build_kwargs) -> None:
        fn = inv.function
        inv.started = time.monotonic()
        inv.started_wall = time.time()
        _category(fn.name).info("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, inv.reason, inv.id)
        self._arm(inv)
        try:
            context = InvocationContext(inv.id, fn.name, fn.script_dir)
            kwargs = build_kwargs(context)
            if fn.context_param:
                kwargs[fn.context_param] = context
            if fn.is_async:
                cfut = asyncio.run_coroutine_threadsafe(fn.user_function(**kwargs), self._loop)
                inv.cancel = cfut.cancel
                cfut.add_done_callback(lambda f: self._finish(inv, _error_of(f)))
                return
            fn.user_function(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything; it is reported, not re-raised
            self._finish(inv, exc)
            return
        self._finish(inv, None)

    def _finish(self, inv: _Invocation, error: BaseException | None) -> None:
        with inv.lock:
            if inv.future.done():
                return
            duration = (time.monotonic() - inv.started) * 1000 if inv.started else 0.0
            outcome = Outcome(inv.id, inv.function.name, error is None, duration, error, inv.started_wall)
            category = _category(inv.function.name)
            if error is None:
                category.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", inv.function.name, inv.id,
                              duration)
            else:
                category.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s", inv.function.name,
                               inv.id, duration, _format_error(error))
            with self._active_lock:
                self._active -= 1
            inv.future.set_result(outcome)

    def _arm(self, inv: _Invocation) -> None:
        if self.function_timeout is None:
            return
        with self._cond:
            heapq.heappush(self._deadlines, (inv.started + self.function_timeout, next(self._seq), inv))
            self._cond.notify()

    def _watch(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._deadlines
                                              or self._deadlines[0][0] > time.monotonic()):
                    timeout = self._deadlines[0][0] - time.monotonic() if self._deadlines else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, inv = heapq.heappop(self._deadlines)
            if inv.future.done():
                continue
            limit = format_timespan(self.function_timeout or 0)
            log.error("Timeout value of %s exceeded by function 'Functions.%s' (Id: '%s'). Initiating cancellation.",
                      limit, inv.function.name, inv.id)
            if inv.cancel:
                self._loop.call_soon_threadsafe(inv.cancel)
            self._finish(inv, FunctionTimeoutError(
                f"Timeout value of {limit} was exceeded by function: Functions.{inv.function.name}"))

    def shutdown(self) -> None:
        """Stop the watchdog and the loop; running sync threads are abandoned (the process is exiting)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _category(function: str) -> logging.Logger:
    """Invocation lines use the host's category, so host.json logging.logLevel "Function[.<name>]" applies."""
    return logging.getLogger(f"Function.{function}")


def _error_of(fut) -> BaseException | None:
    if fut.cancelled():
        return asyncio.CancelledError("invocation cancelled")
    return fut.exception()


def _format_error(error: BaseException) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return "Result: Failure\nException: " + "".join(lines).rstrip()
