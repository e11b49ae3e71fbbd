"""Facts about image references and registry servers that the container runtimes need.

Kept apart from the CLI driver because they are pure string rules, tested without an engine.
"""

from __future__ import annotations

import ipaddress


def registry_of(image: str) -> str | None:
    """The registry host[:port] an image reference names, or None for a Docker-Hub-style short name.

    Same rule as the Docker/OCI reference grammar: the first path component is a registry when it contains
    a '.' or a ':' or is 'localhost'.
    """
    first, sep, _rest = image.partition("/")
    if not sep:
        return None
    if "." in first or ":" in first or first == "localhost":
        return first.lower()
    return None


def normalize_server(server: str) -> str:
    """`https://Reg.example:5000/` -> `reg.example:5000`, so credentials keyed by a server match images."""
    text = server.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    return text.split("/", 1)[0].lower()


def is_loopback(server: str) -> bool:
    """True for localhost / 127.0.0.0/8 / ::1 registries, which serve plain HTTP locally (no TLS to verify)."""
    host = normalize_server(server)
    if host.startswith("["):  # [::1]:5000
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
