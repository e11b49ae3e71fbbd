"""What stands in for a pool's managed identity in the emulator.

On Azure a pool's user-assigned identity lets the node read inputs, write outputs and pull images without
secrets in the task. The emulator has no identity service, so an `identityReference` resolves to credentials
the emulator was started with:
  BATCH_EMULATOR_STORAGE_CONNECTION_STRING  one storage account (key) for every identityReference;
  BATCH_EMULATOR_REGISTRY_CREDENTIALS       JSON {"server": {"username": ..., "password": ...}}.
Both are read and validated once, at start-up, with errors naming the setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from azure.core.credentials import AzureNamedKeyCredential

from ..runtimes.base import RegistryAuth
from ..runtimes.images import normalize_server

STORAGE_SETTING = "BATCH_EMULATOR_STORAGE_CONNECTION_STRING"
REGISTRY_SETTING = "BATCH_EMULATOR_REGISTRY_CREDENTIALS"


class ConfigError(ValueError):
    """A start-up setting is malformed; the message names it and the fix."""


class IdentityUnavailable(Exception):
    """An identityReference cannot be honoured (nothing configured, or a different account)."""


@dataclass
class CredentialResolver:
    storage_account: str | None = None
    storage_key: str | None = field(default=None, repr=False)
    blob_endpoint: str | None = None
    registries: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> CredentialResolver:
        resolver = cls()
        conn = (env.get(STORAGE_SETTING) or "").strip()
        if conn:
            resolver.storage_account, resolver.storage_key, resolver.blob_endpoint = _parse_connection_string(conn)
        raw = (env.get(REGISTRY_SETTING) or "").strip()
        if raw:
            resolver.registries = _parse_registry_credentials(raw)
        return resolver

    def storage_credential(self, account_name: str | None) -> AzureNamedKeyCredential:
        """The account-key credential an identityReference stands for, for the account named in a URL."""
        if not self.storage_account or not self.storage_key:
            raise IdentityUnavailable(
                f"identityReference needs a storage credential: start the emulator with {STORAGE_SETTING}"
            )
        if account_name and account_name.lower() != self.storage_account.lower():
            raise IdentityUnavailable(
                f"the emulator's identity only has access to storage account {self.storage_account}, "
                f"not {account_name}"
            )
        return AzureNamedKeyCredential(self.storage_account, self.storage_key)

    def registry_auth(
        self,
        server: str,
        identity_reference: dict | str | None,
        username: str | None,
        password: str | None,
    ) -> RegistryAuth | None:
        """Credentials for a containerRegistries entry: explicit username/password win; an identityReference
        uses the configured credentials for that server; otherwise None (an anonymous pull)."""
        if username and password:
            return RegistryAuth(server, username, password)
        if identity_reference:
            found = self.registries.get(normalize_server(server))
            if found:
                return RegistryAuth(server, found[0], found[1])
        return None


def _parse_connection_string(conn: str) -> tuple[str, str, str | None]:
    parts: dict[str, str] = {}
    for item in conn.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{STORAGE_SETTING}: '{key}' is not a Key=Value pair; use a storage connection string")
        parts[key.strip().lower()] = value.strip()
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        from devstack.common.local_accounts import AZURITE_ACCOUNT, AZURITE_KEY

        return AZURITE_ACCOUNT, AZURITE_KEY, f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"
    account, key = parts.get("accountname"), parts.get("accountkey")
    if not account or not key:
        raise ConfigError(f"{STORAGE_SETTING} needs AccountName and AccountKey (a key-based connection string)")
    endpoint = parts.get("blobendpoint")
    if not endpoint:
        protocol = parts.get("defaultendpointsprotocol", "https")
        suffix = parts.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return account, key, endpoint.rstrip("/")


def _parse_registry_credentials(raw: str) -> dict[str, tuple[str, str]]:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{REGISTRY_SETTING} is not valid JSON ({exc.msg}); expected "
                          '{"server": {"username": "...", "password": "..."}}') from None
    if not isinstance(doc, dict):
        raise ConfigError(f'{REGISTRY_SETTING} must be a JSON object {{"server": {{"username", "password"}}}}')
    result = {}
    for server, cred in doc.items():
        if not isinstance(cred, dict) or not cred.get("username") or not cred.get("password"):
            raise ConfigError(f"{REGISTRY_SETTING}: entry for {server!r} needs non-empty username and password")
        result[normalize_server(server)] = (str(cred["username"]), str(cred["password"]))
    return result
