"""The emulator's container runtimes and file staging against podman, a registry and Azurite."""
