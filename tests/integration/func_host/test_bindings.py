"""Blob trigger parameter types built against Azurite exactly as the host hands them to functions."""

from __future__ import annotations

import uuid

import azure.functions as func
import azure.storage.blob as storage_blob
import pytest
from azure.storage.blob import BlobServiceClient
from azurefunctions.extensions.bindings import blob as blobtypes

from devstack.func_host import bindings

pytestmark = pytest.mark.integration


@pytest.fixture
def event(storage, monkeypatch):
    monkeypatch.setenv("FuncHostBindingTest", storage)
    container = f"bind-{uuid.uuid4().hex[:10]}"
    client = BlobServiceClient.from_connection_string(storage).get_container_client(container)
    client.create_container()
    blob = client.upload_blob("dir/data.bin", b"\x00binary\xff", metadata={"origin": "test"})
    props = blob.get_blob_properties()
    return bindings.BlobEvent(connection_setting="FuncHostBindingTest", container=container, name="dir/data.bin",
                              etag=props.etag, length=props.size, uri=blob.url, properties={"Length": props.size},
                              metadata=dict(props.metadata))


def test_sdk_types_are_real_storage_objects(event):
    client = bindings.blob_value(blobtypes.BlobClient, event, None)
    assert type(client) is storage_blob.BlobClient
    assert (client.container_name, client.blob_name) == (event.container, "dir/data.bin")
    container = bindings.blob_value(blobtypes.ContainerClient, event, None)
    assert type(container) is storage_blob.ContainerClient
    assert [b.name for b in container.list_blobs()] == ["dir/data.bin"]
    downloader = bindings.blob_value(blobtypes.StorageStreamDownloader, event, None)
    assert type(downloader) is storage_blob.StorageStreamDownloader
    assert downloader.readall() == b"\x00binary\xff"
    assert not bindings.wants_content(blobtypes.BlobClient), "the host does not download for SDK types"


def test_content_types(event):
    stream = bindings.blob_value(func.InputStream, event, b"\x00binary\xff")
    assert stream.read() == b"\x00binary\xff"
    assert stream.name == f"{event.container}/dir/data.bin"
    assert stream.length == 8 and stream.uri == event.uri and stream.metadata == {"origin": "test"}
    assert bindings.blob_value(None, event, b"abc").read() == b"abc"
    assert bindings.blob_value(bytes, event, b"abc") == b"abc"
    assert bindings.blob_value(str, event, "é".encode()) == "é"
    assert bindings.wants_content(func.InputStream) and bindings.wants_content(bytes)
