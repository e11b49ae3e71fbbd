"""Telling a Storage blob/container URL from any other URL, and opening it with the right credential.

Two URL styles exist: virtual-host (https://account.blob.core.windows.net/container/blob) and path style
(http://127.0.0.1:10000/account/container/blob, Azurite and other IP/localhost endpoints). The blob endpoint
always comes from the URL itself, so SAS URLs for any account work; a SAS travels in the query. An
identityReference replaces the SAS with the emulator's stand-in credential (see credentials.py).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from azure.storage.blob import BlobClient, ContainerClient

from .credentials import CredentialResolver, IdentityUnavailable

# azure-core logs every request and response at INFO; in the emulator's log that drowns the task events
# (each task's staging makes several requests). Failures still surface, as failureInfo and WARNINGs.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


@dataclass(frozen=True)
class StorageLocation:
    account: str
    container: str
    blob: str
    has_sas: bool


def _path_style(host: str, resolver: CredentialResolver | None) -> bool:
    bare = host.split(":")[0].strip("[]")
    if bare == "localhost":
        return True
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        pass
    if resolver and resolver.blob_endpoint:
        endpoint = urlsplit(resolver.blob_endpoint)
        return endpoint.netloc.lower() == host.lower() and endpoint.path.strip("/") != ""
    return False


def parse_storage_url(url: str, resolver: CredentialResolver | None = None, *, assume_storage: bool = False
                      ) -> StorageLocation | None:
    """The account/container/blob a URL addresses, or None when it does not look like Storage.

    `assume_storage` is for container URLs (storageContainerUrl, containerUrl), which are Storage by
    definition even on a custom domain."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    segments = [unquote(s) for s in parts.path.split("/")]
    segments = segments[1:] if segments and segments[0] == "" else segments
    has_sas = "sig=" in parts.query
    if _path_style(host, resolver):
        if len(segments) < 2 or not segments[0] or not segments[1]:
            return None
        return StorageLocation(segments[0], segments[1], "/".join(segments[2:]), has_sas)
    if ".blob." in host or assume_storage or has_sas:
        if not segments or not segments[0]:
            return None
        return StorageLocation(host.split(".")[0], segments[0], "/".join(segments[1:]), has_sas)
    return None


def check_identity_endpoint(url: str, resolver: CredentialResolver) -> None:
    """The stand-in credential signs requests only to the configured storage endpoint (the one its connection
    string names): a URL on another host with an identityReference would otherwise receive requests signed with
    the emulator's storage key. Raises IdentityUnavailable naming both hosts."""
    if not resolver.blob_endpoint:
        return
    host = urlsplit(url).netloc.rsplit("@", 1)[-1].lower()
    configured = urlsplit(resolver.blob_endpoint).netloc.lower()
    if host != configured:
        raise IdentityUnavailable(f"identityReference is honoured only for the configured storage endpoint "
                                  f"{configured}, not {host}")


def container_client(url: str, location: StorageLocation, identity: bool, resolver: CredentialResolver,
                     timeout: float) -> ContainerClient:
    """A client for the container; with an identityReference (and no SAS) the stand-in credential is used.

    Raises IdentityUnavailable when the identity cannot be honoured."""
    if identity and not location.has_sas:
        check_identity_endpoint(url, resolver)
        cred = resolver.storage_credential(location.account)
        return ContainerClient.from_container_url(url.split("?", 1)[0], credential=cred,
                                                  connection_timeout=10, read_timeout=timeout)
    return ContainerClient.from_container_url(url, connection_timeout=10, read_timeout=timeout)


def blob_client(url: str, location: StorageLocation, identity: bool, resolver: CredentialResolver,
                timeout: float) -> BlobClient:
    if identity and not location.has_sas:
        check_identity_endpoint(url, resolver)
        cred = resolver.storage_credential(location.account)
        return BlobClient.from_blob_url(url.split("?", 1)[0], credential=cred,
                                        connection_timeout=10, read_timeout=timeout)
    return BlobClient.from_blob_url(url, connection_timeout=10, read_timeout=timeout)
