"""Storage clients for the host's own work (polling, receipts, poison queues), one per connection string.

Queue clients send and receive raw text (no encode/decode policy): the host applies ``messageEncoding`` itself
so that poison copies keep the body byte-for-byte (``encode_body`` / ``decode_body``).
"""

import base64
import binascii
import threading

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

_LOCK = threading.Lock()
_BLOB: dict[tuple[str, bool], BlobServiceClient] = {}
_QUEUE: dict[tuple[str, bool], QueueServiceClient] = {}
_OPTIONS = {"retry_total": 3, "connection_timeout": 5, "read_timeout": 30}


_POLLING = {**_OPTIONS, "retry_total": 0}


def _cached(cache: dict, key: tuple[str, bool], factory):
    with _LOCK:
        client = cache.get(key)
        if client is None:
            client = cache[key] = factory()
        return client


def blob_service(connection_string: str, polling: bool = False) -> BlobServiceClient:
    """``polling=True``: no SDK retries, for calls the listener repeats anyway (so it recovers at once)."""
    return _cached(_BLOB, (connection_string, polling), lambda: BlobServiceClient.from_connection_string(
        connection_string, **(_POLLING if polling else _OPTIONS)))


def queue_service(connection_string: str, polling: bool = False) -> QueueServiceClient:
    return _cached(_QUEUE, (connection_string, polling), lambda: QueueServiceClient.from_connection_string(
        connection_string, **(_POLLING if polling else _OPTIONS)))


def queue_client(connection_string: str, queue_name: str, polling: bool = False):
    return queue_service(connection_string, polling).get_queue_client(queue_name)


def probe_blob_service(connection_string: str) -> None:
    """One quick request without retries, so an unreachable Azurite fails the start in seconds, not minutes."""
    client = BlobServiceClient.from_connection_string(connection_string, retry_total=0, connection_timeout=3,
                                                      read_timeout=10)
    client.get_container_client("azure-webjobs-hosts").exists()


def encode_body(body: bytes, encoding: str) -> str:
    """The raw text to put on a queue so a listener with ``encoding`` decodes it back to ``body``."""
    if encoding == "none":
        return body.decode("utf-8")
    return base64.b64encode(body).decode("ascii")


def decode_body(raw: str, encoding: str) -> bytes | None:
    """Return the body the function sees, or None when a base64 queue holds a body that is not base64."""
    if encoding == "none":
        return raw.encode("utf-8")
    try:
        return base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
