"""The local stack's services are the real thing: Azurite through the azure SDKs, a private registry, containers."""

from __future__ import annotations

import subprocess
import uuid

import pytest

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
    return subprocess.run([stack.runtime, *args], env=stack.container_env(), capture_output=True, text=True,
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
    from devstack.images import registry_catalog

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
