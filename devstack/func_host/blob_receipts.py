"""Blob receipts: which blob versions a function has handled, stored in Azurite like the real host does.

A receipt is the blob ``azure-webjobs-hosts/blobreceipts/{hostId}/{functionId}/{ETag}/{container}/{blob}``.
The WebJobs protocol is followed: create the receipt with metadata ``Incomplete`` (If-None-Match: *), take a
30 s lease on it (renewed while the function runs), re-read it, run the function, and only after success clear
the ``Incomplete`` flag. So a version fires once, also across restarts, and a host killed mid-run leaves an
incomplete receipt whose lease expires, after which the version runs again (at-least-once: function side
effects must be idempotent). Each host instance uses one lease id, recorded in its status file, so a restarted
host can release the leases of a dead predecessor at once instead of waiting for them to expire.
The local addition: a ``FailureCount`` metadata entry stands in for the dequeue count of the host's internal
blob-trigger queue when deciding on ``poisonBlobThreshold``.
"""

import logging
from dataclasses import dataclass

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient

log = logging.getLogger("func_host")

HOSTS_CONTAINER = "azure-webjobs-hosts"
LEASE_SECONDS = 30
INCOMPLETE = "Incomplete"
FAILURES = "FailureCount"


def _meta_get(metadata: dict | None, key: str) -> str | None:
    for k, v in (metadata or {}).items():
        if k.lower() == key.lower():
            return v
    return None


@dataclass
class Claim:
    blob: BlobClient
    lease: BlobLeaseClient
    failures: int


class ReceiptStore:
    def __init__(self, service: BlobServiceClient, host_id: str, lease_id: str):
        self.host_id = host_id
        self.lease_id = lease_id
        self._container = service.get_container_client(HOSTS_CONTAINER)

    def ensure_container(self) -> None:
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass

    def prefix(self, function_id: str) -> str:
        return f"blobreceipts/{self.host_id}/{function_id}/"

    def name(self, function_id: str, etag: str, container: str, blob: str) -> str:
        return f"{self.prefix(function_id)}{etag}/{container}/{blob}"

    def load(self, function_id: str) -> tuple[set[tuple[str, str, str]], list[str]]:
        """Completed (container, blob, etag) versions and the names of incomplete receipts."""
        prefix = self.prefix(function_id)
        done: set[tuple[str, str, str]] = set()
        incomplete: list[str] = []
        for item in self._container.list_blobs(name_starts_with=prefix, include=["metadata"]):
            etag, _, rest = item.name[len(prefix):].partition("/")
            container, _, blob = rest.partition("/")
            if _meta_get(item.metadata, INCOMPLETE) is None:
                done.add((container, blob, etag))
            else:
                incomplete.append(item.name)
        return done, incomplete

    def release_stale(self, receipt_names: list[str], previous_lease_id: str) -> int:
        """Release leases a dead predecessor (same host id, recorded lease id) still holds; returns how many."""
        released = 0
        for name in receipt_names:
            try:
                BlobLeaseClient(self._container.get_blob_client(name), lease_id=previous_lease_id).release()
                released += 1
            except HttpResponseError:
                pass  # not leased, or leased by someone else: leave it alone
        return released

    def try_claim(self, function_id: str, container: str, blob: str, etag: str) -> Claim | str:
        """A Claim to run the function, or "completed" / "busy"."""
        client = self._container.get_blob_client(self.name(function_id, etag, container, blob))
        try:
            client.upload_blob(b"", metadata={INCOMPLETE: "true"}, overwrite=False)
        except ResourceExistsError:
            pass
        lease = BlobLeaseClient(client, lease_id=self.lease_id)
        try:
            lease.acquire(lease_duration=LEASE_SECONDS)
        except HttpResponseError as exc:
            if exc.status_code == 409:
                return "busy"
            raise
        try:  # re-read under the lease: another host may have completed it since we looked (WebJobs does the same)
            metadata = client.get_blob_properties(lease=lease).metadata
        except ResourceNotFoundError:
            return "busy"
        if _meta_get(metadata, INCOMPLETE) is None:
            lease.release()
            return "completed"
        return Claim(client, lease, int(_meta_get(metadata, FAILURES) or 0))

    @staticmethod
    def renew(claim: Claim) -> None:
        claim.lease.renew()

    @staticmethod
    def complete(claim: Claim) -> None:
        claim.blob.set_blob_metadata({}, lease=claim.lease)
        claim.lease.release()

    @staticmethod
    def record_failure(claim: Claim) -> int:
        claim.failures += 1
        claim.blob.set_blob_metadata({INCOMPLETE: "true", FAILURES: str(claim.failures)}, lease=claim.lease)
        claim.lease.release()
        return claim.failures

    @staticmethod
    def release(claim: Claim) -> None:
        claim.lease.release()
