"""Storage clients and the ways a Batch task reaches Storage (the BlobAccess used by the task builder).

Clients: a connection string (local, Azurite) or service URLs + DefaultAzureCredential (Azure; `__clientId` picks a
user-assigned identity). Task access, in order of preference:
- IdentityAccess: the pool's user-assigned identity (BATCH_NODE_IDENTITY_RESOURCE_ID) via identityReference;
  plain URLs, no secret in the task.
- KeySasAccess: short-lived service SAS signed with the account key (local stack).
- UserDelegationSasAccess: the app runs with an identity but the pool has none: user-delegation SAS.
SAS start and expiry are rounded to quarter hours, so tasks built in the same quarter carry the same URL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from shared.settings import StorageSettings


def _credential(client_id: str | None):
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


class StorageClients:
    """The three service clients of the app's storage account, built once per process."""

    def __init__(self, settings: StorageSettings):
        from azure.data.tables import TableServiceClient
        from azure.storage.queue import QueueServiceClient

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


def blob_url(endpoint: str, container: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/{quote(container)}/{quote(name, safe='/')}"


def _expiry(now: datetime, validity: timedelta) -> datetime:
    end = now + validity
    quarter = (end.minute // 15 + 1) * 15
    return end.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=quarter)


class IdentityAccess:
    def __init__(self, endpoint: str, resource_id: str):
        self.endpoint, self.resource_id = endpoint, resource_id

    def read_blob_url(self, container: str, name: str) -> str:
        return blob_url(self.endpoint, container, name)

    def list_container_url(self, container: str) -> str:
        return f"{self.endpoint}/{quote(container)}"

    def write_container_url(self, container: str) -> str:
        return f"{self.endpoint}/{quote(container)}"

    def identity_reference(self) -> dict | None:
        return {"resourceId": self.resource_id}


class _SasAccess:
    def __init__(self, endpoint: str, account: str, validity: timedelta, clock=lambda: datetime.now(UTC)):
        self.endpoint, self.account, self.validity, self.clock = endpoint, account, validity, clock

    def _signing(self) -> dict:
        raise NotImplementedError

    def _window(self) -> tuple[datetime, datetime]:
        now = self.clock()
        floor = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0)
        return floor - timedelta(minutes=15), _expiry(now, self.validity)  # start allows for clock skew

    def read_blob_url(self, container: str, name: str) -> str:
        start, expiry = self._window()
        sas = generate_blob_sas(self.account, container, name, permission=BlobSasPermissions(read=True),
                                start=start, expiry=expiry, **self._signing())
        return f"{blob_url(self.endpoint, container, name)}?{sas}"

    def _container(self, container: str, permission: ContainerSasPermissions) -> str:
        start, expiry = self._window()
        sas = generate_container_sas(self.account, container, permission=permission,
                                     start=start, expiry=expiry, **self._signing())
        return f"{self.endpoint}/{quote(container)}?{sas}"

    def list_container_url(self, container: str) -> str:
        return self._container(container, ContainerSasPermissions(read=True, list=True))

    def write_container_url(self, container: str) -> str:
        return self._container(container, ContainerSasPermissions(write=True, create=True, add=True))

    def identity_reference(self) -> dict | None:
        return None


class KeySasAccess(_SasAccess):
    def __init__(self, endpoint: str, account: str, key: str, validity: timedelta, **kw):
        super().__init__(endpoint, account, validity, **kw)
        self._key = key

    def _signing(self) -> dict:
        return {"account_key": self._key}


class UserDelegationSasAccess(_SasAccess):
    """Signs with a user delegation key fetched with the app's identity, refreshed before it runs out."""

    def __init__(self, service: BlobServiceClient, validity: timedelta, **kw):
        super().__init__(service.url.rstrip("/"), service.account_name, validity, **kw)
        self.service = service
        self._key = None
        self._key_expiry = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def _signing(self) -> dict:
        with self._lock:
            now = self.clock()
            if self._key is None or self._key_expiry - now < self.validity + timedelta(minutes=30):
                self._key_expiry = now + min(timedelta(days=7), self.validity * 2 + timedelta(hours=1))
                self._key = self.service.get_user_delegation_key(now - timedelta(minutes=5), self._key_expiry)
            return {"user_delegation_key": self._key}


def make_access(clients: StorageClients, validity: timedelta, node_identity: str | None):
    if node_identity:
        return IdentityAccess(clients.blob_endpoint, node_identity)
    key = clients.account_key
    if key:
        return KeySasAccess(clients.blob_endpoint, clients.account_name, key, validity)
    return UserDelegationSasAccess(clients.blob, validity)
