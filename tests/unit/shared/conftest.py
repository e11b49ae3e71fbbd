"""Pure fixtures for the app's unit tests: the repo's pipelines.yaml with local settings, and a BlobAccess that
produces recognisable SAS-style URLs (the task builder is pure; the access object is one of its inputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.pipelines import load_config

REPO = Path(__file__).resolve().parents[3]
LOCAL = {"WORKER_IMAGE": "127.0.0.1:5055/eventbatch/worker:1", "REGISTRY_SERVER": "127.0.0.1:5055",
         "REGISTRY_USERNAME": "eventbatch", "REGISTRY_PASSWORD": "eventbatch-local"}


class UrlAccess:
    endpoint = "http://127.0.0.1:10000/devstoreaccount1"

    def read_blob_url(self, container, name, lifetime=None):
        from shared.storage import blob_url

        return blob_url(self.endpoint, container, name) + "?sig=read"

    def list_container_url(self, container, lifetime=None):
        return f"{self.endpoint}/{container}?sig=list"

    def write_container_url(self, container, prefix="", lifetime=None):
        return f"{self.endpoint}/{container}?sig=write"

    def identity_reference(self):
        return None


@pytest.fixture
def config():
    return load_config(REPO / "pipelines.yaml", LOCAL)


@pytest.fixture
def access():
    return UrlAccess()
