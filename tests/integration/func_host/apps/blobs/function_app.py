"""Test app: blob triggers with InputStream, the BlobClient SDK type, and one that always fails."""

import os
import time

import azure.functions as func
from azurefunctions.extensions.bindings import blob as blobtypes
from record import record

app = func.FunctionApp()


@app.blob_trigger(arg_name="stream", path="%IN_CONTAINER%/{name}", connection="AzureWebJobsStorage",
                  source="EventGrid")
def on_blob(stream: func.InputStream) -> None:
    record("start", fn="on_blob", name=stream.name, content=stream.read().decode("utf-8", "replace"),
           length=stream.length, uri=stream.uri)
    time.sleep(float(os.environ.get("BLOB_SLEEP", "0")))
    record("done", fn="on_blob", name=stream.name)


@app.blob_trigger(arg_name="client", path="%SDK_CONTAINER%/in/{name}", connection="AzureWebJobsStorage")
def on_blob_sdk(client: blobtypes.BlobClient) -> None:
    props = client.get_blob_properties()
    record("start", fn="on_blob_sdk", type=f"{type(client).__module__}.{type(client).__name__}",
           container=client.container_name, blob=client.blob_name, etag=props.etag)


@app.blob_trigger(arg_name="data", path="%BAD_CONTAINER%/{name}", connection="AzureWebJobsStorage")
def on_blob_fails(data: bytes) -> None:
    record("start", fn="on_blob_fails", size=len(data))
    raise ValueError("cannot process this blob")
