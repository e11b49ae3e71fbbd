"""Which podman commands run with root's blob-info cache folder read-only, and how the command line is built."""

from __future__ import annotations

import subprocess

import pytest

from devstack.common import image_copy


@pytest.mark.parametrize(("args", "copies"), [
    (["pull", "-q", "reg/img:1"], True),
    (["push", "--tls-verify=false", "reg/img:1"], True),
    (["import", "-", "reg/img:1"], True),
    (["image", "pull", "reg/img:1"], True),
    (["--log-level", "pull"], True),  # a flag value can look like a verb; wrapping a harmless command is fine
    (["run", "--rm", "img", "pull"], False),
    (["image", "exists", "img"], False),
    (["tag", "a", "b"], False),
    ([], False),
])
def test_copy_verbs_are_recognised(args, copies):
    assert image_copy.copies_images(args) is copies


def test_other_commands_and_docker_run_as_they_are(monkeypatch):
    monkeypatch.setattr(image_copy, "namespace_available", lambda: True)
    assert image_copy.argv("/usr/bin/podman", ["run", "--rm", "x"]) == ["/usr/bin/podman", "run", "--rm", "x"]
    assert image_copy.argv("docker", ["pull", "x"], engine="docker") == ["docker", "pull", "x"]


def test_without_a_mount_namespace_copies_run_as_they_are(monkeypatch):
    monkeypatch.setattr(image_copy, "namespace_available", lambda: False)
    assert image_copy.argv("podman", ["pull", "x"]) == ["podman", "pull", "x"]


def test_copies_keep_their_arguments_verbatim(monkeypatch, tmp_path):
    """Arguments reach the command as separate words, never through the shell's parsing."""
    monkeypatch.setattr(image_copy, "BLOB_INFO_CACHE_DIR", tmp_path / "no" / "such" / "cache")
    argv = image_copy._wrapped("printf", ["%s|", "pull", "$(touch pwned)", "a b", "'q'"])
    assert argv[argv.index("sh") + 1] == str(tmp_path)  # the nearest folder that exists
    if not image_copy.namespace_available.__wrapped__():
        pytest.skip("cannot make a mount namespace here")
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out == "pull|$(touch pwned)|a b|'q'|"
    assert not (tmp_path / "pwned").exists()


def test_the_folder_is_read_only_inside_and_writable_outside(monkeypatch, tmp_path):
    if not image_copy.namespace_available.__wrapped__():
        pytest.skip("cannot make a mount namespace here")
    monkeypatch.setattr(image_copy, "BLOB_INFO_CACHE_DIR", tmp_path / "cache")
    inside = subprocess.run(image_copy._wrapped("mkdir", [str(tmp_path / "cache")]),
                            capture_output=True, text=True, check=False)
    assert inside.returncode != 0 and "Read-only" in inside.stderr
    assert not (tmp_path / "cache").exists()
    (tmp_path / "cache").mkdir()  # the host's view is untouched
