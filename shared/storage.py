"""The app's Storage clients, and the blob lookups intake and the schedules make (properties and listings only).

Clients: a connection string (local, Azurite) or service URLs + DefaultAzureCredential (Azure; `__clientId` picks a
user-assigned identity). The ways a Batch task reaches Storage are in shared.task_access.
"""

from __future__ import annotations

from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.settings import StorageSettings
from shared.work_items import BlobInfo


def _credential(client_id: str | None):
    # Imported only where an identity is used (Azure): about 70 ms of every cold start the local stack, which
    # connects with a connection string, would pay for nothing.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


class StorageClients:
    """The three service clients of the app's storage account, built once per process."""

    def __init__(self, settings: StorageSettings):
        self.settings = settings
        if settings.connection_string:
            cs = settings.connection_string
            self.blob = BlobServiceClient.from_connection_string(cs)
            self.queue = QueueServiceClient.from_connection_string(cs)
            self.table = TableServiceClient.from_connection_string(cs)
        else:
            cred = _credential(settings.client_id)
            self.blob = BlobServiceClient(settings.blob_url, credential=cred)
            self.queue = QueueServiceClient(settings.queue_url, credential=cred)
            self.table = TableServiceClient(settings.table_url, credential=cred)

    @property
    def account_name(self) -> str:
        return self.blob.account_name

    @property
    def account_key(self) -> str | None:
        cred = self.blob.credential
        return getattr(cred, "account_key", None)

    @property
    def blob_endpoint(self) -> str:
        return self.blob.url.rstrip("/")

    def lookup_blob(self, container: str, name: str) -> BlobInfo | None:
        """HEAD the blob (properties only, never the content); None when it does not exist."""
        try:
            props = self.blob.get_blob_client(container, name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return blob_info(props, container, name)

    def list_blobs(self, container: str, prefix: str, cap: int, keep=None) -> list[BlobInfo]:
        """The blobs under `prefix` that `keep` accepts, with their properties (a listing, page by page, never the
        content); at most `cap` of them (the listing stops there). Empty for a missing container."""
        out = []
        try:
            for b in self.blob.get_container_client(container).list_blobs(name_starts_with=prefix):
                info = BlobInfo(container, b.name, str(b.etag), int(b.size or 0),
                                getattr(b.content_settings, "content_type", None))
                if keep is not None and not keep(info):
                    continue
                out.append(info)
                if len(out) >= cap:
                    break
        except ResourceNotFoundError:
            return []
        return out


def blob_info(props, container: str, name: str) -> BlobInfo:
    """The BlobInfo of a blob's properties (a HEAD's answer)."""
    settings = getattr(props, "content_settings", None)
    return BlobInfo(container=container, name=name, etag=str(props.etag), size=int(props.size or 0),
                    content_type=getattr(settings, "content_type", None))


def blob_url(endpoint: str, container: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/{quote(container)}/{quote(name, safe='/')}"
