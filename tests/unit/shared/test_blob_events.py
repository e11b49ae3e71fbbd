"""What a delivered BlobCreated event means to the app (shared/blob_events.py)."""

import pytest

from shared import ids
from shared.blob_events import NotABlobEvent, blob_created, blob_of_event
from shared.work_items import BlobInfo

SUBJECT = "/blobServices/default/containers/input/blobs/transform/a b/ü.txt"


def data(**over):
    return {"api": "PutBlob", "eTag": "0x8DB1", "contentLength": 12, "contentType": "text/plain",
            "url": "https://acct.blob.core.windows.net/input/transform/a%20b/%C3%BC.txt", **over}


def test_a_blob_created_event_names_the_exact_blob_version_with_its_properties():
    blob = blob_created("Microsoft.Storage.BlobCreated", SUBJECT, data())
    assert (blob.container, blob.name, blob.etag, blob.size, blob.content_type) == \
        ("input", "transform/a b/ü.txt", "0x8DB1", 12, "text/plain")
    props = blob.properties()  # what a HEAD would have told the intake
    assert (props.etag, props.size, props.content_settings.content_type) == ("0x8DB1", 12, "text/plain")


@pytest.mark.parametrize("api", ["PutBlob", "PutBlockList", "CopyBlob", "FlushWithClose"])
def test_the_apis_that_commit_a_whole_blob_are_taken(api):
    assert blob_created("Microsoft.Storage.BlobCreated", SUBJECT, data(api=api)).api == api


@pytest.mark.parametrize("event_type, subject, payload, words", [
    ("Microsoft.Storage.BlobDeleted", SUBJECT, data(), "is not Microsoft.Storage.BlobCreated"),
    ("Microsoft.Storage.BlobCreated", SUBJECT, data(api="CreateFile"), "does not commit a whole blob"),
    ("Microsoft.Storage.BlobCreated", SUBJECT, data(api=None), "does not commit a whole blob"),
    ("Microsoft.Storage.BlobCreated", "/blobServices/default/containers/input", data(), "does not name a blob"),
    ("Microsoft.Storage.BlobCreated", None, data(), "does not name a blob"),
    ("Microsoft.Storage.BlobCreated", SUBJECT, "not an object", "no data object"),
    ("Microsoft.Storage.BlobCreated", SUBJECT, data(eTag=""), "carries no eTag"),
    ("Microsoft.Storage.BlobCreated", SUBJECT, data(contentLength="12 bytes"), "bad contentLength"),
])
def test_anything_else_is_refused_with_the_reason(event_type, subject, payload, words):
    with pytest.raises(NotABlobEvent, match=words):
        blob_created(event_type, subject, payload)


def test_an_etag_is_one_value_whichever_way_it_was_learnt():
    """A HEAD quotes the ETag, a listing and an event do not: the run id (and the record) must not depend on it."""
    quoted = blob_created("Microsoft.Storage.BlobCreated", SUBJECT, data(eTag='"0x8DB1"'))
    assert quoted.etag == "0x8DB1"
    assert BlobInfo("input", "x", '"0x8DB1"', 1).etag == "0x8DB1"
    assert ids.blob_task_id("t", "input", "x", '"0x8DB1"') == ids.blob_task_id("t", "input", "x", "0x8DB1")
    assert ids.rejection_id("blob", "input", "x", '"0x1"') == ids.rejection_id("blob", "input", "x", "0x1")
    assert ids.blob_task_id("t", "input", "x", "0x8DB1") != ids.blob_task_id("t", "input", "x", "0x8DB2")


def test_dead_lettered_events_are_read_in_both_schemas():
    grid = {"eventType": "Microsoft.Storage.BlobCreated", "subject": SUBJECT}
    cloud = {"type": "Microsoft.Storage.BlobCreated", "subject": SUBJECT}
    assert blob_of_event(grid) == blob_of_event(cloud) == ("input", "transform/a b/ü.txt")
    assert blob_of_event({**grid, "eventType": "Microsoft.Storage.BlobDeleted"}) is None


def test_a_function_of_one_container_refuses_events_of_another():
    from shared.blob_events import blob_created_in

    assert blob_created_in("input", "Microsoft.Storage.BlobCreated", SUBJECT, data()).container == "input"
    with pytest.raises(NotABlobEvent, match="not in container markers"):
        blob_created_in("markers", "Microsoft.Storage.BlobCreated", SUBJECT, data())
