"""Read an image's configuration from its registry: the OCI Distribution / Docker Registry HTTP API v2.

    GET /v2/<repository>/manifests/<tag|digest>   an image index / manifest list is resolved to linux/amd64
    GET /v2/<repository>/blobs/<config digest>     the image config: WORKDIR, ENTRYPOINT, CMD, USER
    GET /v2/<repository>/blobs/<layer digest>      only to look for /bin/sh, and only while the layers are small

Authentication follows the registry's 401 challenge (`WWW-Authenticate`):
- `Basic`: the pool's registry username/password from pipelines.yaml (the local stack's htpasswd registry);
- `Bearer realm=...,service=...,scope=...` with a username/password: the token endpoint with basic auth (Docker
  Hub, ACR admin or token users);
- `Bearer` on an Azure Container Registry with an identity (`identityResourceId` in pipelines.yaml): an Entra ID
  token from azure-identity (DefaultAzureCredential: `az login` on a laptop, the managed identity where there is
  one) exchanged at `https://<registry>/oauth2/exchange` for an ACR refresh token, then at `/oauth2/token` for a
  pull token of the repository. The pool's own user-assigned identity lives on the Batch nodes and cannot be used
  from here; the signed-in user (or the app's identity) needs AcrPull on the registry.

stdlib HTTP only (urllib): no new dependency. Redirects to blob storage (ACR, Docker Hub) drop the Authorization
header, which the storage service would otherwise reject.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.image_rules import WRAPPER_SHELL, ImageFacts, ImageRef

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
INDEXES = (OCI_INDEX, DOCKER_LIST)
PLATFORM = ("linux", "amd64")  # what Batch's Linux pools run
ACR_SCOPE = "https://containerregistry.azure.net/.default"
ACR_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
DEFAULT_MAX_LAYER_BYTES = 256 * 1024 * 1024


class RegistryError(Exception):
    """The registry could not be reached or refused; the message says which image and what to do."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


@dataclass
class RegistryAuth:
    """What to answer a registry's challenge with: a username/password, or an azure-identity credential."""

    username: str | None = None
    password: str | None = None
    credential: object | None = None  # azure.core.credentials.TokenCredential, for ACR token exchange

    @property
    def basic(self) -> str | None:
        if self.username and self.password:
            return "Basic " + b64encode(f"{self.username}:{self.password}".encode()).decode()
        return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="https://x/token",service="x",scope="repository:a:pull"` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class _NoAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


def _scheme_for(server: str) -> str:
    host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server
    return "http" if host in ("127.0.0.1", "localhost", "::1", "[::1]") else "https"


def api_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == "docker.io" else registry


@dataclass
class RegistryClient:
    """One registry; tokens are kept per scope for the client's life."""

    server: str
    auth: RegistryAuth = field(default_factory=RegistryAuth)
    timeout: float = 20.0
    scheme: str = ""
    _tokens: dict[str, str] = field(default_factory=dict)
    _acr_refresh: str | None = None

    def __post_init__(self):
        self.scheme = self.scheme or _scheme_for(self.server)
        self._opener = urllib.request.build_opener(_NoAuthOnRedirect())

    @property
    def base(self) -> str:
        return f"{self.scheme}://{api_host(self.server)}"

    # ---- HTTP with the challenge dance --------------------------------------------------------------------
    def _open(self, url: str, headers: dict[str, str], data: bytes | None = None):
        req = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - registry URL from config
        return self._opener.open(req, timeout=self.timeout)

    def get(self, repository: str, path: str, accept: str = "*/*"):
        """GET /v2/<repository>/<path>, answering one 401 challenge; returns the open response."""
        url = f"{self.base}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept": accept}
        if scope in self._tokens:
            headers["Authorization"] = self._tokens[scope]
        try:
            return self._open(url, headers)
        except urllib.error.HTTPError as exc:
            if exc.code != 401:  # (a 401 with a cached token: it expired; answer the challenge again)
                raise self._http_error(exc, repository, path) from None
            challenge = exc.headers.get("WWW-Authenticate", "")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"registry {self.server} is not reachable ({reason}); is it up? (local stack: "
                                "`make up`)", unreachable=True) from None
        headers["Authorization"] = self._authorize(challenge, scope)
        self._tokens[scope] = headers["Authorization"]
        try:
            return self._open(url, headers)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, repository, path) from None
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryError(f"registry {self.server}: {getattr(exc, 'reason', exc)}", unreachable=True) from None

    def _http_error(self, exc: urllib.error.HTTPError, repository: str, path: str) -> RegistryError:
        what = f"{self.server}/{repository} ({path.split('/')[0]} {path.split('/')[-1][:24]})"
        if exc.code == 401:
            return RegistryError(f"registry {self.server} refused the credentials for {repository}: check the "
                                 "pool's registry username/password in pipelines.yaml (Azure: `az login`, and "
                                 "AcrPull for you on the registry)")
        if exc.code == 403:
            return RegistryError(f"registry {self.server}: no pull access to {repository} (403)")
        if exc.code == 404:
            return RegistryError(f"{what} not found (404): is the image pushed? (local stack: `eventbatch "
                                 "images`; Azure: the postprovision hook builds it)")
        return RegistryError(f"registry {self.server} answered {exc.code} for {what}")

    def _authorize(self, challenge: str, scope: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.auth.basic:
                raise RegistryError(f"registry {self.server} wants a username and password: set the pool's "
                                    "registries[].username/password in pipelines.yaml")
            return self.auth.basic
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"registry {self.server}: unsupported authentication challenge {challenge!r}")
        scope = params.get("scope") or scope
        if self.auth.credential is not None:
            return "Bearer " + self._acr_token(params, scope)
        query = urllib.parse.urlencode({k: v for k, v in (("service", params.get("service")), ("scope", scope))
                                        if v})
        headers = {"Authorization": self.auth.basic} if self.auth.basic else {}
        try:
            with self._open(f"{params['realm']}?{query}", headers) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RegistryError(f"registry {self.server}: the token service {params['realm']} answered {exc.code} "
                                "(check the pool's registry credentials in pipelines.yaml)") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(f"registry {self.server}: token service {params['realm']}: {exc}",
                                unreachable=True) from None
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"registry {self.server}: the token service returned no token")
        return f"Bearer {token}"

    def _acr_token(self, params: dict[str, str], scope: str) -> str:
        """Entra ID token -> ACR refresh token (/oauth2/exchange) -> access token for `scope` (the realm)."""
        service = params.get("service") or self.server
        if self._acr_refresh is None:
            try:
                aad = self.auth.credential.get_token(ACR_SCOPE).token
            except Exception as exc:  # noqa: BLE001 - azure-identity raises several types; the message is what matters
                raise RegistryError(f"registry {self.server}: no Entra ID token ({str(exc).splitlines()[0]}); run "
                                    "`az login`, or set registry username/password") from None
            body = self._post_form(f"{self.base}/oauth2/exchange",
                                   {"grant_type": "access_token", "service": service, "access_token": aad})
            self._acr_refresh = body.get("refresh_token")
            if not self._acr_refresh:
                raise RegistryError(f"registry {self.server}: /oauth2/exchange returned no refresh_token")
        body = self._post_form(params["realm"], {"grant_type": "refresh_token", "service": service,
                                                 "scope": scope, "refresh_token": self._acr_refresh})
        token = body.get("access_token")
        if not token:
            raise RegistryError(f"registry {self.server}: {params['realm']} returned no access_token for {scope}")
        return token

    def _post_form(self, url: str, form: dict[str, str]) -> dict:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self._open(url, {"Content-Type": "application/x-www-form-urlencoded"}, data) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RegistryError(f"registry {self.server}: {url} answered {exc.code}; does your identity have "
                                "AcrPull on the registry?") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(f"registry {self.server}: {url}: {exc}", unreachable=True) from None

    # ---- the API ------------------------------------------------------------------------------------------
    def manifest(self, repository: str, reference: str) -> tuple[dict, str]:
        """The image manifest (an index resolved to linux/amd64) and its digest."""
        with self.get(repository, f"manifests/{reference}", MANIFEST_ACCEPT) as resp:
            raw = resp.read()
            digest = resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(raw).hexdigest()
            media = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        doc = json.loads(raw)
        media = doc.get("mediaType") or media
        if media in INDEXES or "manifests" in doc:
            entry = pick_platform(doc.get("manifests") or [])
            if entry is None:
                found = [f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                         for m in doc.get("manifests") or []]
                raise RegistryError(f"{self.server}/{repository}:{reference} has no linux/amd64 image (it has "
                                    f"{', '.join(found) or 'none'}); Batch pools run linux/amd64")
            return self.manifest(repository, entry["digest"])
        return doc, digest

    def blob(self, repository: str, digest: str) -> bytes:
        with self.get(repository, f"blobs/{digest}") as resp:
            return resp.read()


def pick_platform(manifests: list[dict]) -> dict | None:
    for m in manifests:
        p = m.get("platform") or {}
        if (p.get("os"), p.get("architecture")) == PLATFORM:
            return m
    return None


# ---- layers: is /bin/sh there? ------------------------------------------------------------------------------
def _norm(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return "" if name == "." else name


def apply_layer(fs: dict[str, tuple[str, str]], tar: tarfile.TarFile) -> None:
    """Overlay one layer's entries on `fs` (path -> (kind, link target)), with OCI whiteouts."""
    for member in tar:
        path = _norm(member.name)
        folder, base = posixpath.split(path)
        if base == ".wh..wh..opq":
            prefix = folder + "/" if folder else ""
            for key in [k for k in fs if k.startswith(prefix) and k != folder]:
                del fs[key]
            continue
        if base.startswith(".wh."):
            gone = posixpath.join(folder, base[4:])
            for key in [k for k in fs if k == gone or k.startswith(gone + "/")]:
                del fs[key]
            continue
        if member.issym():
            fs[path] = ("symlink", member.linkname)
        elif member.islnk():
            fs[path] = ("file", member.linkname)
        elif member.isdir():
            fs[path] = ("dir", "")
        else:
            fs[path] = ("file" if member.isfile() else "other", "")


def resolve(fs: dict[str, tuple[str, str]], path: str, hops: int = 0) -> tuple[str, str] | None:
    """Follow symlinks (absolute or relative, in any component) to the entry `path` names, or None."""
    if hops > 40:
        return None
    parts = [p for p in _norm(path).split("/") if p]
    current = ""
    for i, part in enumerate(parts):
        current = posixpath.join(current, part) if current else part
        entry = fs.get(current)
        if entry is None:
            if i == len(parts) - 1:
                return None
            continue  # a folder the layers never list by itself (tars often omit parent entries)
        if entry[0] == "symlink":
            target = entry[1]
            base = "" if target.startswith("/") else posixpath.dirname(current)
            rest = "/".join(parts[i + 1:])
            return resolve(fs, posixpath.join(base, target, rest) if rest else posixpath.join(base, target),
                           hops + 1)
    return fs.get(current) if current else ("dir", "")


def _layer_stream(raw, media_type: str):
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        raise RegistryError("zstd layers cannot be read here (Python 3.14 adds zstd); /bin/sh not checked")
    return raw  # tarfile's stream mode detects gzip (and none) itself


def shell_in_layers(client: RegistryClient, repository: str, manifest: dict,
                    max_bytes: int = DEFAULT_MAX_LAYER_BYTES, shell: str = WRAPPER_SHELL) -> tuple[bool | None, str]:
    """(True/False, how) when the layers were read; (None, why not) when they are too big or unreadable.
    Only names are kept, never contents; each layer is streamed once."""
    layers = manifest.get("layers") or []
    total = sum(int(layer.get("size") or 0) for layer in layers)
    if total > max_bytes:
        return None, (f"not checked: the layers are {total / 2**20:.0f} MB, more than --max-layer-mb "
                      f"{max_bytes / 2**20:.0f}")
    fs: dict[str, tuple[str, str]] = {}
    try:
        for layer in layers:
            with client.get(repository, f"blobs/{layer['digest']}") as resp:
                stream = _layer_stream(resp, layer.get("mediaType") or "")
                with tarfile.open(fileobj=stream, mode="r|*") as tar:
                    apply_layer(fs, tar)
    except RegistryError as exc:
        return None, f"not checked: {exc}"
    except (tarfile.TarError, OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return None, f"not checked: a layer could not be read as a tar ({exc})"
    entry = resolve(fs, shell)
    if entry is not None and entry[0] == "file":
        link = fs.get(_norm(shell), ("", ""))
        how = f" -> {link[1]}" if link[0] == "symlink" else ""
        return True, f"{shell}{how} found in {len(layers)} layer(s)"
    return False, f"{shell} not in the image's {len(layers)} layer(s) ({len(fs)} paths)"


# ---- one image ------------------------------------------------------------------------------------------------
def read_facts(client: RegistryClient, ref: ImageRef, image: str, *, layers: bool = True,
               max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES) -> ImageFacts:
    manifest, digest = client.manifest(ref.repository, ref.reference)
    config_desc = manifest.get("config") or {}
    if not config_desc.get("digest"):
        raise RegistryError(f"{image}: the manifest has no config (schema 1 manifests are not supported)")
    config = json.loads(client.blob(ref.repository, config_desc["digest"]))
    c = config.get("config") or {}
    if layers:
        has_shell, note = shell_in_layers(client, ref.repository, manifest, max_layer_bytes)
    else:
        has_shell, note = None, "not checked (--no-layers)"
    return ImageFacts(reference=image, digest=digest, workdir=c.get("WorkingDir") or "",
                      entrypoint=tuple(c.get("Entrypoint") or ()), cmd=tuple(c.get("Cmd") or ()),
                      user=c.get("User") or "", has_shell=has_shell, shell_note=note)


def clients_for(registries, credential_factory: Callable[[], object] | None = None) -> Callable[[str], RegistryClient]:
    """A cached RegistryClient per registry server, with the pool's credentials for that server (pipelines.yaml
    registries: username/password, or identityResourceId -> azure-identity via credential_factory)."""
    by_server = {r.server: r for r in registries}
    cache: dict[str, RegistryClient] = {}

    def get(server: str) -> RegistryClient:
        if server not in cache:
            reg = by_server.get(server)
            auth = RegistryAuth()
            if reg is not None and reg.username:
                auth = RegistryAuth(reg.username, reg.password)
            elif credential_factory is not None and (reg is not None and reg.identity_resource_id
                                                     or server.lower().endswith(ACR_SUFFIXES)):
                # The pool pulls with its identity; from here it is whoever is signed in (az login, azd auth).
                auth = RegistryAuth(credential=credential_factory())
            cache[server] = RegistryClient(server, auth)
        return cache[server]

    return get


def default_credential():
    """DefaultAzureCredential (az login, environment, managed identity), imported only when an identity is used."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


__all__ = ["RegistryAuth", "RegistryClient", "RegistryError", "apply_layer", "clients_for", "read_facts",
           "resolve", "shell_in_layers"]
