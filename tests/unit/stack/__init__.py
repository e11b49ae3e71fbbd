"""Unit tests of the local stack manager (image copy, podman config, host fingerprint)."""
