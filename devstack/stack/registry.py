"""The local private registry: CNCF distribution (`docker-registry`) on loopback with htpasswd auth, like ACR."""

from __future__ import annotations

import secrets
from pathlib import Path

import bcrypt

from devstack.common import local_accounts, paths
from devstack.stack.processes import Service, http_status


def registry_service(port: int) -> Service:
    root = paths.state_dir() / "registry"
    config = _write_config(root, port)
    return Service(
        name="registry",
        command=["docker-registry", "serve", str(config)],
        port=port,
        healthy=lambda: _healthy(port),
        hint="with EVENTBATCH_REGISTRY_PORT",
    )


def _healthy(port: int) -> bool:
    answer = http_status(f"http://127.0.0.1:{port}/v2/")
    # A private registry answers /v2/ with 401 and its API version header.
    return bool(answer and answer[0] == 401 and "Docker-Distribution-Api-Version" in answer[1])


def _write_config(root: Path, port: int) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    htpasswd = root / "htpasswd"
    if not _htpasswd_matches(htpasswd):
        hashed = bcrypt.hashpw(local_accounts.REGISTRY_PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
        htpasswd.write_text(f"{local_accounts.REGISTRY_USERNAME}:{hashed}\n")
    secret_file = root / "http-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(16))
    config = root / "config.yml"
    config.write_text(
        "# Written by eventbatch (devstack/stack/registry.py).\n"
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        f"  secret: {secret_file.read_text().strip()}\n"
        "auth:\n"
        "  htpasswd:\n"
        "    realm: eventbatch-local\n"
        f"    path: {htpasswd}\n"
    )
    return config


def _htpasswd_matches(path: Path) -> bool:
    try:
        user, hashed = path.read_text().strip().split(":", 1)
    except (OSError, ValueError):
        return False
    return user == local_accounts.REGISTRY_USERNAME and bcrypt.checkpw(
        local_accounts.REGISTRY_PASSWORD.encode(), hashed.encode()
    )
