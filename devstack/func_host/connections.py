"""Resolve a binding's ``connection`` to a storage connection string the way the host does.

For ``connection="X"`` the host reads ``AzureWebJobsX`` and then ``X``; an empty connection means
``AzureWebJobsStorage``. ``UseDevelopmentStorage=true`` means Azurite on the default loopback ports.
Identity-based sections (``X__blobServiceUri`` ...) need a token source that Azurite does not offer over
plain HTTP, so they are reported as unsupported locally with the fix.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from devstack.common.local_accounts import azurite_connection_string
from devstack.func_host.errors import ConfigError, UnsupportedFeatureError

# What UseDevelopmentStorage=true means: Azurite on its default loopback ports.
AZURITE_CONNECTION_STRING = azurite_connection_string("127.0.0.1", 10000, 10001, 10002)


@dataclass(frozen=True)
class ResolvedConnection:
    setting_name: str  # the app setting that held the value (what the SDK-type binding is told)
    connection_string: str


def _expand(value: str) -> str:
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return AZURITE_CONNECTION_STRING
    return value


def resolve_connection(connection: str | None, where: str, environ: Mapping[str, str] | None = None
                       ) -> ResolvedConnection:
    """Return the connection string for a trigger; ``where`` names the function for error messages."""
    env = os.environ if environ is None else environ
    name = (connection or "").strip()
    if name.startswith("%") and name.endswith("%") and len(name) > 2:
        name = name[1:-1]
    candidates = ["AzureWebJobsStorage"] if not name else [f"AzureWebJobs{name}", name]
    for candidate in candidates:
        value = env.get(candidate)
        if value:
            return ResolvedConnection(candidate, _expand(value))
    for candidate in candidates:
        section = sorted(k for k in env if k.startswith(candidate + "__"))
        if section:
            raise UnsupportedFeatureError(
                f"{where}: connection {name or 'AzureWebJobsStorage'!r} is an identity-based section "
                f"({', '.join(section)}); the local host cannot obtain tokens for Azurite. Set "
                f"{candidate}=UseDevelopmentStorage=true (or a connection string) in local.settings.json")
    raise ConfigError(
        f"{where}: connection {name or 'AzureWebJobsStorage'!r} is not defined; set one of "
        f"{' or '.join(candidates)} in local.settings.json Values (e.g. \"UseDevelopmentStorage=true\")")
