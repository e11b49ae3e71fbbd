"""Sample worker images, built offline from busybox-static and pushed to the local private registry.

No base image is pulled (there is no internet): each image is a root filesystem of /bin/busybox with a link per
applet, plus the image's own /app scripts, imported with `podman import`. A content hash of those inputs is kept
beside the registry state, so running this again costs one manifest check per image when nothing changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from devstack.common import local_accounts, paths
from devstack.stack.engine import Engine
from devstack.stack.processes import StackError

IMAGES_DIR = paths.REPO_ROOT / "samples" / "images"


@dataclass(frozen=True)
class ImageSpec:
    folder: Path
    name: str
    tag: str
    cmd: str | None
    entrypoint: str | None

    @classmethod
    def load(cls, folder: Path) -> ImageSpec:
        conf = {}
        for line in (folder / "image.conf").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                conf[key.strip()] = value.strip()
        return cls(folder, conf["name"], conf.get("tag", "1"), conf.get("cmd"), conf.get("entrypoint"))


def busybox_path() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).exists():
            return Path(candidate)
    raise StackError("busybox not found: install busybox-static (`make setup` does it as root)")


def build_and_push(engine: Engine, registry: str, log=print) -> dict[str, str]:
    """Build every image under samples/images and push it to `registry`. Returns {name: full reference}."""
    refs = {}
    for folder in sorted(p for p in IMAGES_DIR.iterdir() if (p / "image.conf").exists()):
        spec = ImageSpec.load(folder)
        ref = f"{registry}/{spec.name}:{spec.tag}"
        refs[spec.name] = ref
        digest = _inputs_hash(spec)
        stamp = paths.state_dir() / "images" / f"{spec.name.replace('/', '_')}.hash"
        if stamp.exists() and stamp.read_text() == digest and _registry_has(registry, spec.name, spec.tag):
            log(f"  image {ref:<40} up to date")
            continue
        _import(engine, spec, ref)
        engine.run("push", *_tls_args(engine), "--creds",
                   f"{local_accounts.REGISTRY_USERNAME}:{local_accounts.REGISTRY_PASSWORD}", ref)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
        log(f"  image {ref:<40} built and pushed")
    return refs


def _tls_args(engine: Engine) -> list[str]:
    return ["--tls-verify=false"] if engine.name == "podman" else []


def _import(engine: Engine, spec: ImageSpec, ref: str) -> None:
    changes = ["ENV PATH=/bin:/usr/bin", "WORKDIR /"]
    if spec.entrypoint:
        changes.append(f'ENTRYPOINT ["{spec.entrypoint}"]')
    if spec.cmd:
        changes.append(f'CMD ["{spec.cmd}"]')
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    engine.run(*args, "-", ref, input_=_rootfs_tar(spec))


def _rootfs_tar(spec: ImageSpec) -> bytes:
    busybox = busybox_path()
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in ("bin", "usr", "usr/bin", "tmp", "etc", "app"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for script in sorted((spec.folder / "app").iterdir()):
            info = tar.gettarinfo(str(script), arcname=f"app/{script.name}")
            info.mode = 0o755
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with open(script, "rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


def _inputs_hash(spec: ImageSpec) -> str:
    h = hashlib.sha256()
    h.update(busybox_path().read_bytes())
    h.update((spec.folder / "image.conf").read_bytes())
    for script in sorted((spec.folder / "app").iterdir()):
        h.update(script.name.encode() + b"\0" + script.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def _registry_has(registry: str, name: str, tag: str) -> bool:
    auth = b64encode(f"{local_accounts.REGISTRY_USERNAME}:{local_accounts.REGISTRY_PASSWORD}".encode()).decode()
    req = urllib.request.Request(  # noqa: S310 - loopback registry URL we build
        f"http://{registry}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={
            "Authorization": f"Basic {auth}",
            "Accept": ", ".join([
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ]),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def registry_catalog(registry: str) -> list[str]:
    auth = b64encode(f"{local_accounts.REGISTRY_USERNAME}:{local_accounts.REGISTRY_PASSWORD}".encode()).decode()
    req = urllib.request.Request(f"http://{registry}/v2/_catalog", headers={"Authorization": f"Basic {auth}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())["repositories"]


__all__ = ["ImageSpec", "build_and_push", "registry_catalog"]
