"""Well-known local credentials of the offline stack.

These are not secrets: like Azurite's devstoreaccount1 key they are published, fixed values that only ever
unlock services bound to 127.0.0.1 on a developer's machine. Nothing under shared/ or functions/ imports this
module, so they can never reach a deployment on Azure.
"""

from __future__ import annotations

# Azurite's documented development account.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# The local private registry (htpasswd auth, like a private ACR).
REGISTRY_USERNAME = "eventbatch"
REGISTRY_PASSWORD = "eventbatch-local"

# The Batch emulator's account (SharedKey auth, like a real Batch account's key).
BATCH_ACCOUNT_NAME = "eventbatchlocal"
BATCH_ACCOUNT_KEY = "ZXZlbnRiYXRjaC1sb2NhbC1lbXVsYXRvci13ZWxsLWtub3duLWtleS1ub3QtYS1zZWNyZXQ="


def azurite_connection_string(host: str, blob_port: int, queue_port: int, table_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{AZURITE_ACCOUNT};"
    )
