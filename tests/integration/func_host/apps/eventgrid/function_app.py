"""Test app: eventGridTrigger functions fed by the local Event Grid (subscriptions in the settings) and one that
is fed only through its webhook."""

import os
import time

import azure.functions as func
from record import record

app = func.FunctionApp()


def _fields(event: func.EventGridEvent) -> dict:
    data = event.get_json()
    return {"id": event.id, "subject": event.subject, "event_type": event.event_type, "topic": event.topic,
            "etag": data.get("eTag"), "size": data.get("contentLength"), "url": data.get("url"),
            "content_type": data.get("contentType"), "type": type(event).__name__}


@app.event_grid_trigger(arg_name="event")
def on_event(event: func.EventGridEvent) -> None:
    record("start", fn="on_event", **_fields(event))
    time.sleep(float(os.environ.get("EG_SLEEP", "0")))
    record("done", fn="on_event", **_fields(event))


@app.event_grid_trigger(arg_name="event")
def on_event_fails(event: func.EventGridEvent) -> None:
    record("start", fn="on_event_fails", **_fields(event))
    raise ValueError("cannot process this event")


@app.event_grid_trigger(arg_name="event")
def on_posted(event) -> None:
    record("start", fn="on_posted", **_fields(event))
    if (event.get_json() or {}).get("fail"):
        raise RuntimeError("asked to fail")
