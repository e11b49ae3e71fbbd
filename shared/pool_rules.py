"""What Batch accepts as a pool of pipelines.yaml: the rules the app (shared.pipelines) and the Azure deployment
(infra/generate_pools.py) both apply, so a pool the app takes is a pool azd can deploy, and the other way round.

Every pool is a container pool (dockerCompatible, shared.pool_spec), so only container-capable Ubuntu images Batch
supports are accepted, with the node agent that matches the image (ListSupportedImages: the DockerCompatible ones).
Rules only Azure has (the autoscale interval range, registries by managed identity, node agent end of support)
stay in the generator; the local emulator runs shorter intervals and a password registry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.errors import ConfigError

POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REQUIRED_KEYS = ("id", "vmSize", "imageReference", "nodeAgentSkuId", "container", "scale")
AGENT_SKU = re.compile(r"^batch\.node\.ubuntu (\d{2})\.04$")
MIN_UBUNTU = 22
# Container-capable (DockerCompatible) images and the node agent each needs (ListSupportedImages).
CONTAINER_IMAGES = {
    ("microsoft-dsvm", "ubuntu-hpc", "2204"): "batch.node.ubuntu 22.04",
    ("microsoft-dsvm", "ubuntu-hpc", "2404"): "batch.node.ubuntu 24.04",
}


def check_pool(pool: Mapping[str, Any], where: str) -> None:
    """One pool after substitution: ConfigError naming `where` (``pools[0]``) and the key for what Batch refuses."""
    missing = [k for k in REQUIRED_KEYS if k not in pool]
    if missing:
        raise ConfigError(f"pipelines.yaml {where} is missing {', '.join(missing)}")
    if not isinstance(pool["id"], str) or not POOL_ID.match(pool["id"]):
        raise ConfigError(f"pipelines.yaml {where}.id must be 1-64 letters, digits, '-' or '_', got {pool['id']!r}")
    check_node_image(pool["imageReference"], pool["nodeAgentSkuId"], f"pipelines.yaml {where}")
    if isinstance(pool["container"], dict) and not pool["container"].get("images"):
        raise ConfigError(f"pipelines.yaml {where}.container.images must list at least one image to prefetch on "
                          "the nodes")


def check_node_image(ref: Any, agent: Any, where: str) -> None:
    """Only current container-capable Ubuntu images: older node agents (20.04 and before) are retired by Batch."""
    if not isinstance(ref, dict) or not all(isinstance(ref.get(k), str | int) and str(ref[k]) for k in
                                            ("publisher", "offer", "sku")):
        raise ConfigError(f"{where}.imageReference needs publisher, offer and sku (for example microsoft-dsvm, "
                          f"ubuntu-hpc, 2204)")
    match = AGENT_SKU.match(agent) if isinstance(agent, str) else None
    if not match or int(match.group(1)) < MIN_UBUNTU:
        raise ConfigError(f"{where}.nodeAgentSkuId must be 'batch.node.ubuntu 22.04' or newer, got {agent!r}")
    image = (str(ref["publisher"]).lower(), str(ref["offer"]).lower(), str(ref["sku"]).lower())
    needed = CONTAINER_IMAGES.get(image)
    if needed is None:
        known = ", ".join(" ".join(k) for k in CONTAINER_IMAGES)
        raise ConfigError(f"{where}.imageReference {' '.join(image)} is not a container (DockerCompatible) image "
                          f"Batch supports for these pools; use one of: {known}")
    if agent != needed:
        raise ConfigError(f"{where}.nodeAgentSkuId must be {needed!r} for image {' '.join(image)}, got {agent!r}")
