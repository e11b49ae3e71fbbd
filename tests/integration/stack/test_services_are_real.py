"""The local stack's services are the real thing: Azurite through the azure SDKs, a private registry, containers."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from devstack.common import image_copy

pytestmark = pytest.mark.integration


def test_blob_round_trip_through_azurite(blob_service):
    container = blob_service.get_container_client(f"stack-{uuid.uuid4().hex[:10]}")
    container.create_container()
    try:
        payload = "héllo, eventbatch\n".encode() * 1000
        container.upload_blob("dir/a file.txt", payload, metadata={"origin": "test"})
        blob = container.get_blob_client("dir/a file.txt")
        assert blob.download_blob().readall() == payload
        props = blob.get_blob_properties()
        assert props.size == len(payload) and props.metadata == {"origin": "test"} and props.etag
        assert [b.name for b in container.list_blobs(name_starts_with="dir/")] == ["dir/a file.txt"]
    finally:
        container.delete_container()


def test_queue_round_trip_through_azurite(queue_service):
    queue = queue_service.get_queue_client(f"stack-{uuid.uuid4().hex[:10]}")
    queue.create_queue()
    try:
        queue.send_message('{"pipeline": "transform"}')
        messages = list(queue.receive_messages(max_messages=5, visibility_timeout=5))
        assert [m.content for m in messages] == ['{"pipeline": "transform"}']
        assert messages[0].dequeue_count == 1
        queue.delete_message(messages[0])
        assert queue.get_queue_properties().approximate_message_count == 0
    finally:
        queue.delete_queue()


def _engine(stack, *args, check=True):
    return subprocess.run(image_copy.argv(stack.runtime, args, stack.runtime), env=stack.container_env(), capture_output=True, text=True,
                          timeout=120, check=check)


def _tls(stack):
    return ["--tls-verify=false"] if stack.runtime == "podman" else []


def test_registry_requires_credentials(stack):
    """The registry is private: a pull with credentials works, one without is refused."""
    ref = stack.worker_image
    creds = f"{stack.registry_username}:{stack.registry_password}"
    _engine(stack, "rmi", "-f", ref, check=False)
    pulled = _engine(stack, "pull", *_tls(stack), "--creds", creds, ref, check=False)
    assert pulled.returncode == 0, pulled.stderr
    anonymous = _anonymous_pull(stack, ref)
    assert anonymous.returncode != 0
    assert "unauthorized" in (anonymous.stderr + anonymous.stdout).lower() or \
        "authentication required" in (anonymous.stderr + anonymous.stdout).lower()
    wrong = _engine(stack, "pull", *_tls(stack), "--creds", f"{stack.registry_username}:wrong", ref, check=False)
    assert wrong.returncode != 0


def _anonymous_pull(stack, ref):
    # An empty auth file makes sure no stored login is used.
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json") as authfile:
        authfile.write("{}")
        authfile.flush()
        return _engine(stack, "pull", *_tls(stack), "--authfile", authfile.name, ref, check=False)


def test_registry_push_with_credentials_and_catalog(stack):
    from devstack.stack.sample_images import registry_catalog

    assert {"eventbatch/worker", "eventbatch/hello"} <= set(registry_catalog(stack.registry_server))
    ref = f"{stack.registry_server}/eventbatch/pushtest:{uuid.uuid4().hex[:8]}"
    _engine(stack, "tag", stack.worker_image, ref)
    refused = _engine(stack, "push", *_tls(stack), "--creds", f"{stack.registry_username}:nope", ref, check=False)
    assert refused.returncode != 0
    pushed = _engine(stack, "push", *_tls(stack), "--creds",
                     f"{stack.registry_username}:{stack.registry_password}", ref, check=False)
    assert pushed.returncode == 0, pushed.stderr
    _engine(stack, "rmi", "-f", ref, check=False)


def test_container_runs_with_bind_mount_env_and_exit_code(stack, tmp_path):
    (tmp_path / "in.txt").write_text("three little words\n")
    result = _engine(
        stack, "run", "--rm", "-v", f"{tmp_path}:/data", "-e", "GREETING=hello there", stack.worker_image,
        "/bin/sh", "-c", 'wc -w < /data/in.txt > /data/count.txt; echo "$GREETING" > /data/greeting.txt; exit 7',
        check=False,
    )
    assert result.returncode == 7, result.stderr
    assert (tmp_path / "count.txt").read_text().strip() == "3"
    assert (tmp_path / "greeting.txt").read_text() == "hello there\n"


def _tree(folder):
    """`folder` and what is under it (None when it does not exist): each path, size and modification time.
    The folder's own time changes when a file is made in it, even one deleted again at once."""
    if not folder.exists():
        return None
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in [folder, *folder.rglob("*")])


def _tiny_rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"copy test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_image_push_and_pull_write_nothing_outside_the_repository(stack):
    """Root's podman keeps a blob-info cache in /var/lib/containers/cache on every pull, push and import unless
    told otherwise, and makes a temp file in /var/tmp on every run; the stack's image build, the emulator's pulls
    and a container run leave both folders exactly as they were."""
    from devstack.batch_emulator.runtimes import ContainerCliRuntime, RegistryAuth
    from devstack.stack.engine import Engine

    if stack.runtime != "podman" or not image_copy.namespace_available():
        pytest.skip("needs rootful podman and permission to make a mount namespace")
    watched = [image_copy.BLOB_INFO_CACHE_DIR.parent, Path("/var/tmp")]  # noqa: S108 - watched, not written
    before = [_tree(w) for w in watched]
    engine = Engine("podman", stack.container_env())
    ref = f"{stack.registry_server}/eventbatch/copytest:{uuid.uuid4().hex[:8]}"
    engine.run("import", "-", ref, input_=_tiny_rootfs())
    engine.run("run", "--rm", "--pull", "never", stack.worker_image, "true")
    engine.run("push", "--tls-verify=false", "--creds", f"{stack.registry_username}:{stack.registry_password}", ref)
    engine.run("rmi", ref)
    runtime = ContainerCliRuntime("podman", env=stack.container_env())
    runtime.pull(ref, RegistryAuth(stack.registry_server, stack.registry_username, stack.registry_password))
    assert runtime.has_image(ref)
    engine.run("rmi", ref)
    assert [_tree(w) for w in watched] == before
