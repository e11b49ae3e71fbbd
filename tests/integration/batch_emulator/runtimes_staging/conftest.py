"""Real services for the runtime and staging tests.

- podman runs with a private CONTAINERS_CONF/CONTAINERS_STORAGE_CONF under a temp dir (the settings the
  stack writes: runc, cgroupfs, no default ulimits, overlay storage), so these tests neither see nor disturb
  the stack's images and containers.
- A tiny busybox image is built from /bin/busybox (podman import of a tar rootfs).
- A private htpasswd registry (docker-registry) on a free port, with random credentials, so pulls with and
  without credentials are tested whatever the stack's registry holds.
- Azurite: the stack's (session fixture `stack`).

`make setup` installs podman and docker-registry; a missing one fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import bcrypt
import pytest

from devstack.batch_emulator.launcher import free_port
from devstack.common import image_copy
from devstack.stack.engine import podman_config, remove_outside_runroot

BUSYBOX_APPLETS = ("sh", "cat", "echo", "sleep", "env", "pwd", "ls", "true", "false", "id", "wc")


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory) -> dict[str, str]:
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: run `make setup` (bash devstack/setup.sh installs it)", pytrace=False)
    # The stack's own podman settings (devstack/stack/engine.py), written under a private temp folder.
    # pytest's temp paths are deep, so this also exercises the short outside runroot (see runroot_for).
    state = tmp_path_factory.mktemp("podman")
    env = podman_config(state)
    yield env
    full = {**os.environ, **env}
    # Not `podman system reset`: it also touches root's ~/.config/containers. The temp folder goes with pytest's.
    subprocess.run(["podman", "rm", "-a", "-f", "-t", "0"], env=full, capture_output=True, check=False)
    subprocess.run(["podman", "rmi", "-a", "-f"], env=full, capture_output=True, check=False)
    remove_outside_runroot(state)


@pytest.fixture(scope="session")
def podman(podman_env):
    from devstack.batch_emulator.runtimes import detect_runtime

    return detect_runtime("podman", podman_env)


@dataclass(frozen=True)
class Images:
    plain: str  # /bin/sh and busybox applets, no ENTRYPOINT/CMD
    entry: str  # ENTRYPOINT ["/bin/echo", "from-entrypoint"]


@pytest.fixture(scope="session")
def images(podman_env, tmp_path_factory) -> Images:
    rootfs = tmp_path_factory.mktemp("rootfs")
    (rootfs / "bin").mkdir()
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    for folder in ("tmp", "etc", "task"):
        (rootfs / folder).mkdir()
    tar = rootfs.parent / f"{rootfs.name}.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    env = {**os.environ, **podman_env}
    plain, entry = "localhost/rs-test/box:plain", "localhost/rs-test/box:entry"
    subprocess.run(image_copy.argv("podman", ["import", "-q", str(tar), plain]), env=env, check=True, capture_output=True)
    subprocess.run(image_copy.argv("podman", ["import", "-q", "--change", 'ENTRYPOINT ["/bin/echo", "from-entrypoint"]',
                                                   str(tar), entry]), env=env, check=True, capture_output=True)
    return Images(plain, entry)


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    password: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    if not shutil.which("docker-registry"):
        pytest.fail("docker-registry is not installed: run `make setup` (bash devstack/setup.sh installs it)",
                    pytrace=False)
    base = tmp_path_factory.mktemp("registry")
    user, password = "rs-user", secrets.token_urlsafe(12)
    (base / "htpasswd").write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    port = free_port()
    (base / "config.yml").write_text(json.dumps({  # YAML is a superset of JSON
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(base / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {"htpasswd": {"realm": "rs-test", "path": str(base / "htpasswd")}},
    }))
    log = open(base / "registry.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(["docker-registry", "serve", str(base / "config.yml")], stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        yield Registry(f"127.0.0.1:{port}", user, password)
    finally:
        stop(proc)
        log.close()


@dataclass(frozen=True)
class Storage:
    connection_string: str
    account: str
    key: str
    blob_endpoint: str


@pytest.fixture(scope="session")
def storage(stack) -> Storage:
    conn = stack.storage_connection_string
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    return Storage(conn, parts["AccountName"], parts["AccountKey"], parts["BlobEndpoint"].rstrip("/"))
