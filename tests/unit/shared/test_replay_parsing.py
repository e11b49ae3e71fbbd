"""shared.replay: reading what the host and Event Grid leave behind (pure parts)."""

import base64
import json

import pytest

from shared.blob_events import blob_of_event
from shared.replay import blob_of_poison_message, parse_dead_letters

POISON = {"Type": "BlobTrigger", "FunctionId": "Host.Functions.blob_intake", "BlobType": "BlockBlob",
          "ContainerName": "input", "BlobName": "transform/a b/ü.txt", "ETag": "\"0x8D\""}


def test_a_blob_trigger_poison_message_as_json_or_base64():
    text = json.dumps(POISON)
    assert blob_of_poison_message(text) == ("input", "transform/a b/ü.txt")
    assert blob_of_poison_message(base64.b64encode(text.encode()).decode()) == ("input", "transform/a b/ü.txt")


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"ContainerName": "input"}), "{" * 100000])
def test_other_messages_are_not_taken_for_blob_events(content):
    assert blob_of_poison_message(content) is None


def test_dead_lettered_events_in_both_schemas():
    grid = {"eventType": "Microsoft.Storage.BlobCreated",
            "subject": "/blobServices/default/containers/input/blobs/transform/x/y.csv"}
    cloud = {"type": "Microsoft.Storage.BlobCreated", "specversion": "1.0",
             "subject": "/blobServices/default/containers/input/blobs/transform/z.csv"}
    events = parse_dead_letters(json.dumps([grid, cloud]).encode())
    assert [blob_of_event(e) for e in events] == [("input", "transform/x/y.csv"), ("input", "transform/z.csv")]
    assert blob_of_event({**grid, "eventType": "Microsoft.Storage.BlobDeleted"}) is None
    assert parse_dead_letters(json.dumps(grid).encode()) == [grid]


@pytest.mark.parametrize("data", [b"nope", b"[1, 2]", b'"text"'])
def test_a_dead_letter_blob_that_is_not_events_is_refused_with_a_reason(data):
    with pytest.raises(ValueError, match="not a JSON array of events"):
        parse_dead_letters(data)
