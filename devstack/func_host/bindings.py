"""Turn trigger data into the value a function parameter asks for, as the worker's converters do.

Queue: ``func.QueueMessage`` (or no annotation) gets the full message object, ``str``/``bytes`` get the body.
Blob: an SDK type from ``azurefunctions.extensions.bindings.blob`` (BlobClient, ContainerClient,
StorageStreamDownloader) is built by that package's own converter from model-binding data, exactly as the worker
calls ``get_sdk_type()``, so the function receives real ``azure.storage.blob`` objects and the host never
downloads the blob; ``func.InputStream`` (or no annotation) gets the blob's bytes in an
``azure.functions.blob.InputStream``; ``bytes``/``str`` get the content.
Timer: ``azure.functions.timer.TimerRequest``.
Event Grid: ``azure.functions.EventGridEvent`` built by the worker's own converter (EventGridEventInConverter.decode
on a ``json`` Datum of one event), so id, data, topic, subject, event_type, event_time and data_version are exactly
what the function gets on Azure.
"""

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.blob import InputStream
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from devstack.func_host.errors import UnsupportedFeatureError

try:  # optional package; only needed by apps that use SDK-type blob bindings
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob.blobClientConverter import BlobClientConverter
except ImportError:  # pragma: no cover - the dev install has it
    BlobClientConverter = None
    Datum = None


def queue_value(annotation: Any, message: Any, body: bytes) -> Any:
    """``message`` is an azure.storage.queue QueueMessage; ``body`` its decoded bytes."""
    if annotation is bytes:
        return body
    if annotation is str:
        return body.decode("utf-8")
    return QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                        expiration_time=message.expires_on, insertion_time=message.inserted_on,
                        time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)


def is_sdk_blob_type(annotation: Any) -> bool:
    return (BlobClientConverter is not None and isinstance(annotation, type)
            and BlobClientConverter.check_input_type_annotation(annotation))


def wants_content(annotation: Any) -> bool:
    """True if the parameter needs the blob's bytes (so the host must download it)."""
    return not is_sdk_blob_type(annotation)


@dataclass(frozen=True)
class BlobEvent:
    """One blob version the trigger fires for."""

    connection_setting: str
    container: str
    name: str
    etag: str
    length: int
    uri: str
    properties: dict
    metadata: dict


def blob_value(annotation: Any, event: BlobEvent, content: bytes | None) -> Any:
    if is_sdk_blob_type(annotation):
        model = SimpleNamespace(
            version="1.0", source="AzureStorageBlobs", content_type="application/json",
            content=json.dumps({"Connection": event.connection_setting, "ContainerName": event.container,
                                "BlobName": event.name}))
        return BlobClientConverter.decode(Datum(value=model, type="model_binding_data"), trigger_metadata={},
                                          pytype=annotation)
    data = content or b""
    if annotation is bytes:
        return data
    if annotation is str:
        return data.decode("utf-8")
    if annotation in (None, func.InputStream, InputStream) or (
            isinstance(annotation, type) and issubclass(annotation, func.InputStream)):
        return InputStream(data=data, name=f"{event.container}/{event.name}", uri=event.uri, length=len(data),
                           blob_properties=event.properties, metadata=event.metadata)
    raise TypeError(f"blob trigger parameter type {annotation!r} is not supported; use func.InputStream, bytes, "
                    "str or an azurefunctions.extensions.bindings.blob SDK type")


def timer_value(past_due: bool, status: dict, adjust_for_dst: bool = True) -> TimerRequest:
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": adjust_for_dst})


def event_grid_value(event: dict) -> func.EventGridEvent:
    """One Event Grid event (a JSON object of the delivered array), converted as the Python worker converts it."""
    return EventGridEventInConverter.decode(meta.Datum(value=json.dumps(event), type="json"), trigger_metadata={})


def check_trigger_annotation(function: str, trigger_type: str, annotation: Any) -> None:
    """Reject, at start, a trigger parameter type the worker could not convert (instead of failing per call)."""
    where = f"function {function!r}"
    if trigger_type == "queueTrigger":
        if annotation not in (None, str, bytes) and not (
                isinstance(annotation, type) and issubclass(annotation, func.QueueMessage)):
            raise UnsupportedFeatureError(f"{where}: queue trigger parameter type {annotation!r} is not supported; "
                                          "use func.QueueMessage, str or bytes")
    elif trigger_type == "blobTrigger":
        if not (annotation in (None, str, bytes) or is_sdk_blob_type(annotation)
                or (isinstance(annotation, type) and issubclass(annotation, func.InputStream))):
            raise UnsupportedFeatureError(f"{where}: blob trigger parameter type {annotation!r} is not supported; use "
                                          "func.InputStream, bytes, str or an azurefunctions.extensions.bindings.blob "
                                          "type (BlobClient, ContainerClient, StorageStreamDownloader)")
    elif trigger_type == "timerTrigger":
        if annotation is not None and not (isinstance(annotation, type) and issubclass(annotation, func.TimerRequest)):
            raise UnsupportedFeatureError(f"{where}: timer trigger parameter type {annotation!r} is not supported; "
                                          "use func.TimerRequest")
    elif trigger_type == "eventGridTrigger":
        if annotation is not None and not (isinstance(annotation, type) and issubclass(annotation, func.EventGridEvent)):
            raise UnsupportedFeatureError(f"{where}: event grid trigger parameter type {annotation!r} is not "
                                          "supported; use func.EventGridEvent (the local Event Grid delivers the "
                                          "Event Grid schema)")
