"""devstack/common/registry_client.py without a registry: layer file lists (whiteouts, symlinks), index resolution, and the
authentication flows a loopback stand-in can answer: Bearer tokens with basic auth, and the ACR token exchange
(Entra ID token -> /oauth2/exchange -> /oauth2/token), which cannot be reached offline. The local registry's Basic
flow is covered for real in tests/integration/stack/test_images_check.py."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.common.registry_client import (
    OCI_INDEX,
    RegistryAuth,
    RegistryClient,
    RegistryError,
    apply_layer,
    parse_challenge,
    read_facts,
    resolve,
)
from shared.image_rules import parse_reference


def layer(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, link
            tar.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    return buf.getvalue()


def fs_of(*layers) -> dict:
    fs = {}
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
            apply_layer(fs, tar)
    return fs


def test_shell_through_symlinks_merged_usr_and_alternatives():
    fs = fs_of(layer(("usr/bin/dash", "file", ""), ("bin", "sym", "usr/bin"), ("usr/bin/sh", "sym", "dash")))
    assert resolve(fs, "/bin/sh") == ("file", "")
    busybox = fs_of(layer(("bin/busybox", "file", ""), ("bin/sh", "sym", "busybox")))
    assert resolve(busybox, "/bin/sh") == ("file", "")
    alt = fs_of(layer(("etc/alternatives/sh", "sym", "/bin/bash"), ("bin/bash", "file", ""),
                      ("bin/sh", "sym", "/etc/alternatives/sh")))
    assert resolve(alt, "/bin/sh") == ("file", "")
    assert resolve(fs_of(layer(("bin/sh", "sym", "sh"))), "/bin/sh") is None  # a loop
    assert resolve(fs_of(layer(("app/run", "file", ""))), "/bin/sh") is None  # distroless-like


def test_whiteouts_remove_a_lower_layers_shell():
    base = layer(("bin/sh", "file", ""), ("bin/ls", "file", ""))
    assert resolve(fs_of(base, layer(("bin/.wh.sh", "file", ""))), "/bin/sh") is None
    opaque = fs_of(base, layer(("bin/.wh..wh..opq", "file", ""), ("bin/ls", "file", "")))
    assert resolve(opaque, "/bin/sh") is None and "bin/ls" in opaque
    assert resolve(fs_of(base, layer(("./bin/x", "hard", "bin/sh"))), "bin/x") == ("file", "bin/sh")


def test_parse_challenge():
    assert parse_challenge('Bearer realm="https://r.io/oauth2/token",service="r.io",scope="repository:a:pull"') == (
        "bearer", {"realm": "https://r.io/oauth2/token", "service": "r.io", "scope": "repository:a:pull"})
    assert parse_challenge('Basic realm="eventbatch-local"')[0] == "basic"


# ---- a loopback registry that answers like ACR / Docker Hub ----------------------------------------------
class FakeRegistry:
    """Serves one image (an OCI index -> linux/amd64 manifest -> config + one layer) behind a Bearer challenge.
    Tokens come from /token (basic auth) or, ACR-style, from /oauth2/exchange + /oauth2/token."""

    def __init__(self, acr: bool):
        self.acr = acr
        self.calls: list[tuple[str, str, dict]] = []
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "config": {
            "WorkingDir": "/srv", "Entrypoint": ["/srv/start"], "Cmd": ["--fast"], "User": "1000"}}).encode()
        self.layer = layer(("bin/sh", "file", ""))
        d = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                    "config": {"digest": d(self.config), "size": len(self.config)},
                                    "layers": [{"digest": d(self.layer), "size": len(self.layer),
                                                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]}).encode()
        self.index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": d(self.manifest), "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
        self.blobs = {d(self.config): self.config, d(self.layer): self.layer, d(self.manifest): self.manifest}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_port}"

    def _handler(self):
        reg = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                reg.calls.append(("POST", self.path, form))
                if self.path == "/oauth2/exchange" and form.get("access_token") == "aad-token":
                    return self._send(200, json.dumps({"refresh_token": "acr-refresh"}).encode())
                if self.path == "/oauth2/token" and form.get("refresh_token") == "acr-refresh":
                    return self._send(200, json.dumps({"access_token": "pull-token"}).encode())
                self._send(401)

            def do_GET(self):
                reg.calls.append(("GET", self.path, dict(self.headers)))
                if self.path.startswith("/token"):
                    ok = self.headers.get("Authorization") == RegistryAuth("u", "p").basic
                    return self._send(200 if ok else 401, json.dumps({"token": "pull-token"}).encode())
                if self.headers.get("Authorization") != "Bearer pull-token":
                    realm = f"http://{reg.host}/oauth2/token" if reg.acr else f"http://{reg.host}/token"
                    return self._send(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="{reg.host}'
                                                                        '",scope="repository:team/app:pull"'})
                if self.path == "/v2/team/app/manifests/2":
                    return self._send(200, reg.index, {"Content-Type": OCI_INDEX})
                name = self.path.rsplit("/", 1)[-1]
                if name in reg.blobs:
                    return self._send(200, reg.blobs[name])
                self._send(404)

        return Handler

    def close(self):
        self.server.shutdown()


@pytest.fixture
def fake_registry(request):
    reg = FakeRegistry(acr=request.param == "acr")
    yield reg
    reg.close()


class FakeCredential:
    """Stands in for azure-identity (Entra ID is not reachable offline); records the scope asked for."""

    def __init__(self):
        self.scopes = []

    def get_token(self, *scopes, **kw):
        from azure.core.credentials import AccessToken

        self.scopes += scopes
        return AccessToken("aad-token", 2**31)


@pytest.mark.parametrize("fake_registry", ["token"], indirect=True)
def test_bearer_token_with_basic_auth_and_index_resolved_to_amd64(fake_registry):
    image = f"{fake_registry.host}/team/app:2"
    client = RegistryClient(fake_registry.host, RegistryAuth("u", "p"))
    facts = read_facts(client, parse_reference(image), image)
    assert (facts.workdir, facts.entrypoint, facts.cmd, facts.user) == ("/srv", ("/srv/start",), ("--fast",), "1000")
    assert facts.has_shell is True
    assert facts.digest == "sha256:" + hashlib.sha256(fake_registry.manifest).hexdigest()
    accepts = [h.get("Accept", "") for m, p, h in fake_registry.calls if m == "GET" and "/manifests/" in p]
    assert all("application/vnd.oci.image.index.v1+json" in a and
               "application/vnd.docker.distribution.manifest.v2+json" in a for a in accepts)
    with pytest.raises(RegistryError, match="token service"):
        RegistryClient(fake_registry.host, RegistryAuth("u", "wrong")).manifest("team/app", "2")


@pytest.mark.parametrize("fake_registry", ["acr"], indirect=True)
def test_acr_token_exchange_with_an_entra_id_credential(fake_registry):
    cred = FakeCredential()
    image = f"{fake_registry.host}/team/app:2"
    facts = read_facts(RegistryClient(fake_registry.host, RegistryAuth(credential=cred)), parse_reference(image),
                       image, layers=False)
    assert facts.entrypoint == ("/srv/start",) and facts.has_shell is None
    assert cred.scopes == ["https://containerregistry.azure.net/.default"]
    posts = [(p, f) for m, p, f in fake_registry.calls if m == "POST"]
    assert posts[0] == ("/oauth2/exchange", {"grant_type": "access_token", "service": fake_registry.host,
                                             "access_token": "aad-token"})
    assert posts[1][0] == "/oauth2/token" and posts[1][1]["scope"] == "repository:team/app:pull"
    assert posts[1][1]["grant_type"] == "refresh_token" and len(posts) == 2  # one exchange, token reused


def test_unreachable_registry_is_reported_as_such():
    with pytest.raises(RegistryError) as info:
        RegistryClient("127.0.0.1:9", timeout=2).manifest("a", "1")
    assert info.value.unreachable
