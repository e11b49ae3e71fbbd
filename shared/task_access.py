"""The ways a Batch task reaches Storage: the BlobAccess the task builder (shared.task_spec) is given.

In order of preference:
- IdentityAccess: the pool's user-assigned identity (BATCH_NODE_IDENTITY_RESOURCE_ID) via identityReference;
  plain URLs, no secret in the task.
- KeySasAccess: short-lived service SAS signed with the account key (local stack).
- UserDelegationSasAccess: the app runs with an identity but the pool has none: user-delegation SAS.
A SAS is per task: the narrowest resource the service accepts (one input blob; the run's output directory on a
hierarchical namespace, else the output container) with only the permissions the step needs, valid for the task's
wall clock limit times its attempts plus a margin (shared.task_spec.sas_lifetime), at most SAS_VALIDITY
(docs/architecture.md, "Storage access per run"). Start and expiry are rounded to quarter hours, so tasks built in
the same quarter carry the same URL.
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

from shared.errors import ConfigError
from shared.storage import StorageClients, blob_url

USER_DELEGATION_KEY_MAX = timedelta(days=7) - timedelta(minutes=10)  # the service refuses keys beyond 7 days


def _expiry(now: datetime, validity: timedelta) -> datetime:
    end = now + validity
    quarter = (end.minute // 15 + 1) * 15
    return end.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=quarter)


class IdentityAccess:
    """Plain URLs + the pool's identity: what the identity may reach is decided by its role assignments
    (infra/modules/storage.bicep), not by the URL; `prefix` and `lifetime` do not apply."""

    def __init__(self, endpoint: str, resource_id: str):
        self.endpoint, self.resource_id = endpoint, resource_id

    def read_blob_url(self, container: str, name: str, lifetime: timedelta | None = None) -> str:
        return blob_url(self.endpoint, container, name)

    def list_container_url(self, container: str, lifetime: timedelta | None = None) -> str:
        return f"{self.endpoint}/{quote(container)}"

    def write_container_url(self, container: str, prefix: str = "", lifetime: timedelta | None = None) -> str:
        return f"{self.endpoint}/{quote(container)}"

    def identity_reference(self) -> dict | None:
        return {"resourceId": self.resource_id}


class _SasAccess:
    """Service SAS per task: read one blob (sp=r, sr=b); list and read a container for merge tasks (sp=rl, sr=c:
    Batch lists with List Blobs, a container operation); write outputs (sp=cw: create and overwrite, no read, list
    or delete) under the task's own output prefix (sr=d, a directory SAS) when the account has a hierarchical
    namespace, else container-scoped (sr=c: a flat namespace has no narrower SAS that Batch can upload with).
    Each SAS lives for the task's `lifetime`, at most `validity` (SAS_VALIDITY)."""

    def __init__(self, endpoint: str, account: str, validity: timedelta, clock=lambda: datetime.now(UTC),
                 hierarchical: bool = False):
        self.endpoint, self.account, self.validity, self.clock = endpoint, account, validity, clock
        self.hierarchical = hierarchical

    def _signing(self, start: datetime, expiry: datetime) -> tuple[dict, datetime]:
        """Signing arguments for a SAS valid from `start` to `expiry`, and the expiry to sign (never later than the
        signing key's own)."""
        raise NotImplementedError

    def _window(self, lifetime: timedelta | None) -> tuple[datetime, datetime]:
        now = self.clock()
        floor = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0)
        validity = self.validity if lifetime is None else min(lifetime, self.validity)
        return floor - timedelta(minutes=15), _expiry(now, validity)  # start allows for clock skew

    def _signed(self, lifetime: timedelta | None) -> dict:
        start, expiry = self._window(lifetime)
        signing, expiry = self._signing(start, expiry)
        return {"start": start, "expiry": expiry, **signing}

    def read_blob_url(self, container: str, name: str, lifetime: timedelta | None = None) -> str:
        sas = generate_blob_sas(self.account, container, name, permission=BlobSasPermissions(read=True),
                                **self._signed(lifetime))
        return f"{blob_url(self.endpoint, container, name)}?{sas}"

    def _container(self, container: str, permission: ContainerSasPermissions, lifetime: timedelta | None) -> str:
        sas = generate_container_sas(self.account, container, permission=permission, **self._signed(lifetime))
        return f"{self.endpoint}/{quote(container)}?{sas}"

    def list_container_url(self, container: str, lifetime: timedelta | None = None) -> str:
        return self._container(container, ContainerSasPermissions(read=True, list=True), lifetime)

    def write_container_url(self, container: str, prefix: str = "", lifetime: timedelta | None = None) -> str:
        """The container URL Batch uploads OutputFiles to (it appends each file's path): sp=cw, scoped to the
        directory `prefix` on a hierarchical namespace, to the container otherwise."""
        prefix = prefix.strip("/")
        if not (self.hierarchical and prefix):
            return self._container(container, ContainerSasPermissions(write=True, create=True), lifetime)
        sas = generate_blob_sas(self.account, container, prefix, permission=BlobSasPermissions(create=True,
                                write=True), is_directory=True, **self._signed(lifetime))
        if "sr=d" not in sas.split("&"):
            raise ConfigError("setting STORAGE_HIERARCHICAL_NAMESPACE: the installed azure-storage-blob cannot sign a "
                              "directory SAS (sr=d); install azure-storage-blob>=12.31 (requirements.txt)")
        return f"{self.endpoint}/{quote(container)}?{sas}"

    def identity_reference(self) -> dict | None:
        return None


class KeySasAccess(_SasAccess):
    def __init__(self, endpoint: str, account: str, key: str, validity: timedelta, **kw):
        super().__init__(endpoint, account, validity, **kw)
        self._key = key

    def _signing(self, start: datetime, expiry: datetime) -> tuple[dict, datetime]:
        return {"account_key": self._key}, expiry


class UserDelegationSasAccess(_SasAccess):
    """Signs with a user delegation key fetched with the app's identity. A SAS never outlives its key (Azure
    refuses it), and a key lasts at most 7 days: a new key is fetched only when the held one ends before the SAS
    being signed and a new one would end later, so SAS_VALIDITY=P7D does not mean a key per task."""

    def __init__(self, service: BlobServiceClient, validity: timedelta, **kw):
        super().__init__(service.url.rstrip("/"), service.account_name, validity, **kw)
        self.service = service
        self._key = None
        self._key_expiry = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def _signing(self, start: datetime, expiry: datetime) -> tuple[dict, datetime]:
        with self._lock:
            now = self.clock()
            longest = now + USER_DELEGATION_KEY_MAX
            if self._key is None or self._key_expiry < min(expiry, longest - timedelta(minutes=30)):
                self._key_expiry = min(longest, expiry + self.validity)
                self._key = self.service.get_user_delegation_key(min(start, now - timedelta(minutes=5)),
                                                                 self._key_expiry)
            return {"user_delegation_key": self._key}, min(expiry, self._key_expiry)


def make_task_access(clients: StorageClients, validity: timedelta, node_identity: str | None, *,
                hierarchical: bool = False):
    if node_identity:
        return IdentityAccess(clients.blob_endpoint, node_identity)
    key = clients.account_key
    if key:
        return KeySasAccess(clients.blob_endpoint, clients.account_name, key, validity, hierarchical=hierarchical)
    return UserDelegationSasAccess(clients.blob, validity, hierarchical=hierarchical)
