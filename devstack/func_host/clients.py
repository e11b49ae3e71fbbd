"""Storage clients for the host's own work (polling, receipts, poison queues), one per connection string.

Queue clients send and receive raw text (no encode/decode policy): the host applies ``messageEncoding`` itself
so that poison copies keep the body byte-for-byte.
"""

import threading

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

_LOCK = threading.Lock()
_BLOB: dict[tuple[str, bool], BlobServiceClient] = {}
_QUEUE: dict[tuple[str, bool], QueueServiceClient] = {}
_OPTIONS = {"retry_total": 3, "connection_timeout": 5, "read_timeout": 30}


_POLLING = {**_OPTIONS, "retry_total": 0}


def blob_service(connection_string: str, polling: bool = False) -> BlobServiceClient:
    """``polling=True``: no SDK retries, for calls the listener repeats anyway (so it recovers at once)."""
    key = (connection_string, polling)
    with _LOCK:
        client = _BLOB.get(key)
        if client is None:
            client = _BLOB[key] = BlobServiceClient.from_connection_string(
                connection_string, **(_POLLING if polling else _OPTIONS))
        return client


def queue_service(connection_string: str, polling: bool = False) -> QueueServiceClient:
    key = (connection_string, polling)
    with _LOCK:
        client = _QUEUE.get(key)
        if client is None:
            client = _QUEUE[key] = QueueServiceClient.from_connection_string(
                connection_string, **(_POLLING if polling else _OPTIONS))
        return client


def queue_client(connection_string: str, queue_name: str, polling: bool = False):
    return queue_service(connection_string, polling).get_queue_client(queue_name)


def probe_blob_service(connection_string: str) -> None:
    """One quick request without retries, so an unreachable Azurite fails the start in seconds, not minutes."""
    client = BlobServiceClient.from_connection_string(connection_string, retry_total=0, connection_timeout=3,
                                                      read_timeout=10)
    client.get_container_client("azure-webjobs-hosts").exists()
