"""The invoker: outcomes, log lines, functionTimeout, and async functions on the event loop."""

import asyncio
import logging
import threading
import time

import pytest

from devstack.func_host.errors import FunctionTimeoutError
from devstack.func_host.invoker import Invoker, default_thread_count
from devstack.func_host.loader import LoadedFunction


class _Trigger:
    type = "queueTrigger"
    name = "msg"


def _function(fn, name="f", context_param=None) -> LoadedFunction:
    return LoadedFunction(name=name, trigger=_Trigger(), user_function=fn, is_async=asyncio.iscoroutinefunction(fn),
                          trigger_param="msg", context_param=context_param)


@pytest.fixture
def invoker():
    inv = Invoker(max_workers=4, function_timeout=0.5)
    inv.start()
    yield inv
    inv.shutdown()


def test_success_and_failure_are_logged_with_id_and_duration(invoker, caplog):
    caplog.set_level(logging.INFO)
    seen = []
    ok = invoker.invoke(_function(lambda msg, context: seen.append((msg, context.invocation_id)), "ok",
                                  "context"), lambda ctx: {"msg": "hi"}, "test").result(5)
    bad = invoker.invoke(_function(lambda msg: 1 / 0, "bad"), lambda ctx: {"msg": "x"}, "test").result(5)
    assert ok.succeeded and seen == [("hi", ok.invocation_id)]
    assert not bad.succeeded and isinstance(bad.error, ZeroDivisionError)
    text = caplog.text
    assert f"Executed 'Functions.ok' (Succeeded, Id={ok.invocation_id}, Duration=" in text
    assert f"Executed 'Functions.bad' (Failed, Id={bad.invocation_id}, Duration=" in text
    assert "ZeroDivisionError" in text
    assert invoker.active == 0


def test_sync_function_past_function_timeout_is_reported_failed(invoker):
    release = threading.Event()
    began = time.monotonic()
    outcome = invoker.invoke(_function(lambda msg: release.wait(5), "slow"), lambda ctx: {"msg": 1}, "t").result(5)
    release.set()
    assert not outcome.succeeded and isinstance(outcome.error, FunctionTimeoutError)
    assert 0.4 < time.monotonic() - began < 2
    assert "Timeout value of 00:00:00 was exceeded by function: Functions.slow" in str(outcome.error)


def test_async_function_past_timeout_is_cancelled(invoker):
    cancelled = threading.Event()

    async def slow(msg):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    outcome = invoker.invoke(_function(slow, "aslow"), lambda ctx: {"msg": 1}, "t").result(5)
    assert isinstance(outcome.error, FunctionTimeoutError)
    assert cancelled.wait(2), "the coroutine was cancelled"


def test_async_functions_share_one_loop_thread_and_overlap(invoker):
    threads = []

    async def fn(msg):
        threads.append(threading.get_ident())
        await asyncio.sleep(0.2)

    began = time.monotonic()
    futures = [invoker.invoke(_function(fn, "a"), lambda ctx, i=i: {"msg": i}, "t") for i in range(8)]
    assert all(f.result(5).succeeded for f in futures)
    assert len(set(threads)) == 1
    assert time.monotonic() - began < 1.0  # 8 x 0.2 s would take 1.6 s if they ran one after another


def test_errors_building_the_input_fail_the_invocation(invoker):
    def build(ctx):
        raise LookupError("blob vanished")

    outcome = invoker.invoke(_function(lambda msg: None), build, "t").result(5)
    assert isinstance(outcome.error, LookupError)


def test_thread_count_setting():
    assert default_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    with pytest.raises(Exception, match="PYTHON_THREADPOOL_THREAD_COUNT"):
        default_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "0"})
