"""Test app: queue triggers (a recorder, a function that always raises, an async recorder)."""

import asyncio
import os
import time

import azure.functions as func
from record import record

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="%OK_QUEUE%", connection="AzureWebJobsStorage")
def records(msg: func.QueueMessage) -> None:
    record("start", fn="records", id=msg.id, body=msg.get_body().decode("utf-8", "replace"),
           dequeue_count=msg.dequeue_count)
    time.sleep(float(os.environ.get("QUEUE_SLEEP", "0")))
    record("done", fn="records", id=msg.id)


@app.queue_trigger(arg_name="msg", queue_name="%FAIL_QUEUE%", connection="")
def always_fails(msg: func.QueueMessage) -> None:
    record("start", fn="always_fails", id=msg.id, body=msg.get_body().decode("utf-8", "replace"),
           dequeue_count=msg.dequeue_count)
    raise RuntimeError("this function always fails")


@app.queue_trigger(arg_name="body", queue_name="%ASYNC_QUEUE%", connection="AzureWebJobsStorage")
async def async_records(body: str) -> None:
    record("start", fn="async_records", body=body)
    await asyncio.sleep(float(os.environ.get("QUEUE_SLEEP", "0")))
    record("done", fn="async_records", body=body)
