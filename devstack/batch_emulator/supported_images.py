"""What GET /supportedimages answers: the Linux images a container or plain pool is normally built from.

The emulator runs every pool on this machine whatever image is named, so this list only lets clients that
discover images (``list_supported_images``) find the usual ones with their capabilities.
"""

SUPPORTED_IMAGES = [
    {"nodeAgentSKUId": "batch.node.ubuntu 22.04", "imageReference": {"publisher": "microsoft-dsvm",
     "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}, "osType": "linux",
     "capabilities": ["DockerCompatible", "NvidiaTeslaDriverInstalled"], "verificationType": "verified",
     "batchSupportEndOfLife": "2027-06-30T00:00:00.000000Z"},
    {"nodeAgentSKUId": "batch.node.ubuntu 24.04", "imageReference": {"publisher": "microsoft-dsvm",
     "offer": "ubuntu-hpc", "sku": "2404", "version": "latest"}, "osType": "linux",
     "capabilities": ["DockerCompatible", "NvidiaTeslaDriverInstalled"], "verificationType": "verified"},
    {"nodeAgentSKUId": "batch.node.ubuntu 22.04", "imageReference": {"publisher": "canonical",
     "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts", "version": "latest"}, "osType": "linux",
     "verificationType": "verified", "batchSupportEndOfLife": "2027-06-30T00:00:00.000000Z"},
    {"nodeAgentSKUId": "batch.node.ubuntu 24.04", "imageReference": {"publisher": "canonical",
     "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}, "osType": "linux",
     "verificationType": "verified"},
    {"nodeAgentSKUId": "batch.node.debian 12", "imageReference": {"publisher": "debian", "offer": "debian-12",
     "sku": "12", "version": "latest"}, "osType": "linux", "verificationType": "verified"},
]
