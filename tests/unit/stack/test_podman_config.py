"""The project's podman configuration keeps the storage runroot short enough for conmon's sockets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from devstack.stack import engine
from devstack.stack.engine import RUNROOT_MAX_CHARS, podman_config, remove_outside_runroot, runroot_for


def _storage(env: dict[str, str]) -> dict:
    return tomllib.loads(Path(env["CONTAINERS_STORAGE_CONF"]).read_text())["storage"]


def test_the_stack_runroot_inside_a_shallow_clone_stays_in_the_state_folder():
    state = Path("/w/.devstack")
    assert runroot_for(state) == Path("/w/.devstack/containers/run")


def test_a_deep_state_folder_gets_a_short_private_runroot(tmp_path):
    deep = tmp_path / ("d" * 60) / ".devstack"
    env = podman_config(deep)
    runroot = Path(_storage(env)["runroot"])
    assert len(str(runroot)) <= RUNROOT_MAX_CHARS
    assert runroot.is_dir() and runroot.parent.name.startswith("eventbatch-")
    assert runroot.parent.stat().st_mode & 0o077 == 0, "the runroot folder is private to its user"
    # Stable for one stack, distinct between stacks.
    assert runroot_for(deep) == runroot
    assert runroot_for(tmp_path / ("e" * 60) / ".devstack") != runroot
    # Images and containers still live in the state folder.
    assert _storage(env)["graphroot"] == str(deep / "containers" / "storage")
    remove_outside_runroot(deep)
    assert not runroot.parent.exists()
    assert (deep / "containers" / "storage").is_dir()


def test_clean_never_removes_a_runroot_inside_the_state_folder(tmp_path, monkeypatch):
    state = tmp_path / "s"
    monkeypatch.setattr(engine, "runroot_for", lambda _s: state / "containers" / "run")
    (state / "containers" / "run").mkdir(parents=True)
    remove_outside_runroot(state)
    assert (state / "containers" / "run").is_dir()


@pytest.mark.parametrize("length", [10, RUNROOT_MAX_CHARS])
def test_runroot_never_exceeds_the_limit_when_the_temp_folder_is_short(length, monkeypatch, tmp_path):
    monkeypatch.setattr(engine.tempfile, "gettempdir", lambda: "/tmp")
    state = Path("/" + "x" * length) / ".devstack"
    assert len(str(runroot_for(state))) <= RUNROOT_MAX_CHARS


def test_a_long_temp_folder_falls_back_to_tmp(monkeypatch):
    monkeypatch.setattr(engine.tempfile, "gettempdir", lambda: "/var/" + "t" * 60)
    runroot = runroot_for(Path("/" + "x" * 60) / ".devstack")
    assert runroot.parent.parent == Path("/tmp") and runroot.parent.name.startswith("eventbatch-")
    assert len(str(runroot)) <= RUNROOT_MAX_CHARS
