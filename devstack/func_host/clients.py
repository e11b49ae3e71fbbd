"""Storage clients for the host's own work (polling, receipts, poison queues), one per connection string.

Queue clients send and receive raw text (no encode/decode policy): the host applies ``messageEncoding`` itself
so that poison copies keep the body byte-for-byte.
"""

import threading

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

_LOCK = threading.Lock()
_BLOB: dict[str, BlobServiceClient] = {}
_QUEUE: dict[str, QueueServiceClient] = {}
_OPTIONS = {"retry_total": 3, "connection_timeout": 5, "read_timeout": 30}


def blob_service(connection_string: str) -> BlobServiceClient:
    with _LOCK:
        client = _BLOB.get(connection_string)
        if client is None:
            client = _BLOB[connection_string] = BlobServiceClient.from_connection_string(connection_string, **_OPTIONS)
        return client


def queue_service(connection_string: str) -> QueueServiceClient:
    with _LOCK:
        client = _QUEUE.get(connection_string)
        if client is None:
            client = _QUEUE[connection_string] = QueueServiceClient.from_connection_string(
                connection_string, **_OPTIONS)
        return client


def queue_client(connection_string: str, queue_name: str):
    return queue_service(connection_string).get_queue_client(queue_name)


def probe_blob_service(connection_string: str) -> None:
    """One quick request without retries, so an unreachable Azurite fails the start in seconds, not minutes."""
    client = BlobServiceClient.from_connection_string(connection_string, retry_total=0, connection_timeout=3,
                                                      read_timeout=10)
    client.get_container_client("azure-webjobs-hosts").exists()
