"""Blob intake: Event Grid blob trigger on the input container (the only blob trigger Flex Consumption runs).

The SDK-type binding hands us an azure.storage.blob.BlobClient, not the bytes: the function reads the blob's
properties (a HEAD) and never downloads the content it only forwards to Batch.
"""

from __future__ import annotations

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from shared.context import get_context
from shared.intake import handle_blob

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.blob")


@bp.blob_trigger(arg_name="client", path="%INPUT_CONTAINER%/{name}", connection="EVENTBATCH_STORAGE",
                 source=func.BlobSource.EVENT_GRID)
def blob_intake(client: blob.BlobClient) -> None:
    # The HEAD happens only after the name was routed and found safe (a '..' name would not even sign correctly).
    result = handle_blob(get_context(), client.container_name, client.blob_name, client.get_blob_properties)
    log.info("blob %s/%s: %s %s", client.container_name, client.blob_name, result.status, result.reason or "")
