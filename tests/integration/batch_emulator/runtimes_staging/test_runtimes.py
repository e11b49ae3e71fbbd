"""The runtimes against real podman, a real htpasswd registry and real host processes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from devstack.batch_emulator.runtimes import (
    Mount,
    PullError,
    RegistryAuth,
    RunSpec,
    RuntimeUnavailable,
    StartError,
    detect_runtime,
)
from devstack.common import image_copy

pytestmark = pytest.mark.integration


def spec(tmp_path: Path, *, name: str | None = None, command=None, image=None, env=None, workdir=None,
         mounts=(), run_options=(), network=None) -> RunSpec:
    return RunSpec(
        name=name or f"rs-test-{uuid.uuid4().hex[:10]}",
        command=command,
        env=env or {},
        workdir=workdir,
        mounts=list(mounts),
        image=image,
        run_options=list(run_options),
        stdout_path=str(tmp_path / "stdout.txt"),
        stderr_path=str(tmp_path / "stderr.txt"),
        network=network,
    )


def run(runtime, s: RunSpec, timeout: float = 60) -> int:
    handle = runtime.start(s)
    try:
        return handle.wait(timeout)
    finally:
        runtime.cleanup(s.name)


def out(tmp_path: Path) -> str:
    return (tmp_path / "stdout.txt").read_text()


# -- podman: images and registry ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushed_image(podman, podman_env, images, registry) -> str:
    """The busybox image pushed to the private registry, then removed locally so it must be pulled."""
    remote = f"{registry.server}/rs/box:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **podman_env}
    subprocess.run(["podman", "tag", images.plain, remote], env=env, check=True)
    auth = Path(podman_env["CONTAINERS_CONF"]).parent / "push-auth.json"
    podman_auth = f"{registry.username}:{registry.password}".encode()
    auth.write_text(json.dumps({"auths": {registry.server: {"auth": base64.b64encode(podman_auth).decode()}}}))
    subprocess.run(image_copy.argv("podman", ["push", "-q", "--tls-verify=false", "--authfile", str(auth), remote]),
                   env=env, check=True, capture_output=True)
    auth.unlink()
    subprocess.run(["podman", "rmi", remote], env=env, check=True, capture_output=True)
    return remote


def test_pull_is_refused_without_credentials_and_with_wrong_ones(podman, pushed_image, registry):
    with pytest.raises(PullError) as anonymous:
        podman.pull(pushed_image, None, timeout=60)
    assert anonymous.value.code == "ContainerInvalidRegistry"
    with pytest.raises(PullError) as wrong:
        podman.pull(pushed_image, RegistryAuth(registry.server, registry.username, "not-the-password"), timeout=60)
    assert wrong.value.code == "ContainerInvalidRegistry"
    assert "not-the-password" not in str(wrong.value)
    assert not podman.has_image(pushed_image)


def test_pull_with_credentials_makes_the_image_runnable(podman, pushed_image, registry, tmp_path):
    podman.pull(pushed_image, RegistryAuth(f"http://{registry.server}/", registry.username, registry.password))
    assert podman.has_image(pushed_image)
    assert run(podman, spec(tmp_path, image=pushed_image, command=["/bin/echo", "pulled"])) == 0
    assert out(tmp_path) == "pulled\n"


def test_pull_of_a_missing_image_names_the_image(podman, registry):
    missing = f"{registry.server}/rs/does-not-exist:1"
    with pytest.raises(PullError) as err:
        podman.pull(missing, RegistryAuth(registry.server, registry.username, registry.password), timeout=60)
    assert err.value.code == "ContainerInvalidImage"
    assert missing in err.value.message


# -- podman: running containers -----------------------------------------------------------------------------


def test_bind_mount_env_and_workdir(podman, images, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input.txt").write_text("three words here\n")
    env = {"GREETING": "hello world", "TRICKY": "a=b #c 'q'", "MULTI": "line1\nline2"}
    s = spec(tmp_path, image=images.plain, env=env, workdir="/task", mounts=[Mount(str(shared), "/task")],
             command=["/bin/sh", "-c", 'pwd; echo "$GREETING|$TRICKY"; echo "$MULTI"; wc -w < input.txt > result.txt'])
    assert run(podman, s) == 0
    assert out(tmp_path) == "/task\nhello world|a=b #c 'q'\nline1\nline2\n"
    assert (shared / "result.txt").read_text().strip() == "3"


def test_read_only_mount_refuses_writes(podman, images, tmp_path):
    shared = tmp_path / "ro"
    shared.mkdir()
    s = spec(tmp_path, image=images.plain, mounts=[Mount(str(shared), "/data", read_only=True)],
             command=["/bin/sh", "-c", "echo x > /data/f"])
    assert run(podman, s) != 0
    assert not (shared / "f").exists()


def test_nonzero_exit_code_and_stderr_are_reported(podman, images, tmp_path):
    s = spec(tmp_path, image=images.plain, command=["/bin/sh", "-c", "echo oops >&2; exit 3"])
    assert run(podman, s) == 3
    assert (tmp_path / "stderr.txt").read_text() == "oops\n"


def test_empty_command_runs_the_image_entrypoint(podman, images, tmp_path):
    assert run(podman, spec(tmp_path, image=images.entry, command=[])) == 0
    assert out(tmp_path) == "from-entrypoint\n"
    assert run(podman, spec(tmp_path, image=images.entry, command=["extra", "args"])) == 0
    assert out(tmp_path) == "from-entrypoint extra args\n"


def test_run_options_come_last_and_win(podman, images, tmp_path):
    s = spec(tmp_path, image=images.plain, workdir="/task", run_options=["--workdir", "/etc"],
             command=["/bin/pwd"])
    assert run(podman, s) == 0
    assert out(tmp_path) == "/etc\n"


def test_bad_run_option_fails_to_start_with_a_batch_code(podman, images, tmp_path):
    s = spec(tmp_path, image=images.plain, run_options=["--no-such-option"], command=["/bin/true"])
    with pytest.raises(StartError) as err:
        podman.start(s)
    podman.cleanup(s.name)
    assert err.value.code == "ContainerInvalidSettings"
    assert "--no-such-option" in err.value.message
    assert (tmp_path / "stderr.txt").read_text() == ""  # the task never ran


def test_a_container_exiting_125_is_not_mistaken_for_an_engine_error(podman, images, tmp_path):
    assert run(podman, spec(tmp_path, image=images.plain, command=["/bin/sh", "-c", "exit 125"])) == 125


def test_missing_program_in_the_image_is_a_nonzero_exit(podman, images, tmp_path):
    assert run(podman, spec(tmp_path, image=images.plain, command=["/no/such/program"])) == 127
    assert "/no/such/program" in (tmp_path / "stderr.txt").read_text()


def test_image_not_present_is_not_pulled_implicitly(podman, tmp_path):
    s = spec(tmp_path, image="localhost/rs-test/absent:1", command=["/bin/true"])
    with pytest.raises(StartError) as err:
        podman.start(s)
    podman.cleanup(s.name)
    assert err.value.code == "ContainerInvalidImage"


def test_kill_stops_a_long_running_container(podman, images, tmp_path):
    s = spec(tmp_path, image=images.plain, command=["/bin/sleep", "300"])
    handle = podman.start(s)
    try:
        assert handle.wait(0.5) is None
        assert s.name in podman.list_names("rs-test-")
        started = time.monotonic()
        handle.kill()
        code = handle.wait(10)
        assert code is not None and code != 0
        assert time.monotonic() - started < 10
    finally:
        podman.cleanup(s.name)
    assert s.name not in podman.list_names("rs-test-")


def test_podman_without_project_config_is_refused(monkeypatch):
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.delenv("CONTAINERS_STORAGE_CONF", raising=False)
    with pytest.raises(RuntimeUnavailable, match="CONTAINERS_CONF"):
        detect_runtime("podman", {})
    with pytest.raises(RuntimeUnavailable, match="unknown runtime"):
        detect_runtime("kubernetes")


def test_auto_picks_a_working_engine(podman_env):
    runtime = detect_runtime("auto", podman_env)
    docker = shutil.which("docker")
    docker_works = bool(docker) and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    assert runtime.name == ("docker" if docker_works else "podman")


# -- process runtime ----------------------------------------------------------------------------------------


@pytest.fixture()
def process():
    return detect_runtime("process")


def test_process_runs_argv_without_a_shell_in_the_working_dir(process, tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH_EMULATOR_STORAGE_CONNECTION_STRING", "AccountKey=must-not-leak")
    wd = tmp_path / "wd"
    wd.mkdir()
    s = spec(tmp_path, workdir=str(wd), env={"TASK_VAR": "v 1"},
             command=["/bin/sh", "-c", 'pwd; echo "$TASK_VAR"; echo "[$BATCH_EMULATOR_STORAGE_CONNECTION_STRING]"; '
                      'echo "$1"', "sh", "$HOME; echo injected"])
    assert run(process, s) == 0
    assert out(tmp_path) == f"{wd}\nv 1\n[]\n$HOME; echo injected\n"


def test_process_exit_code_and_missing_program(process, tmp_path):
    assert run(process, spec(tmp_path, command=["/bin/sh", "-c", "exit 5"])) == 5
    with pytest.raises(StartError) as err:
        process.start(spec(tmp_path, command=["/no/such/program"]))
    assert err.value.code == "CommandProgramNotFound"
    with pytest.raises(StartError):
        process.start(spec(tmp_path, command=[]))


def test_process_kill_stops_the_whole_process_group(process, tmp_path):
    pid_file = tmp_path / "child.pid"
    s = spec(tmp_path, command=["/bin/sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"])
    handle = process.start(s)
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert handle.wait(0.2) is None
    handle.kill()
    assert handle.wait(10) == 137
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "the background child survived kill()"
        time.sleep(0.05)
    process.cleanup(s.name)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_secrets_never_appear_in_engine_argv(podman, images, pushed_image, registry, tmp_path, monkeypatch):
    """Env values and registry passwords reach the engine through files, not argv (readable in /proc)."""
    seen: list[list[str]] = []
    real_cli = podman.cli

    def recording_cli(args, *a, **kw):
        seen.append(list(args))
        return real_cli(args, *a, **kw)

    real_popen = subprocess.Popen

    def recording_popen(argv, *a, **kw):
        seen.append(list(argv))
        return real_popen(argv, *a, **kw)

    monkeypatch.setattr(podman, "cli", recording_cli)
    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    secret = f"sas-{uuid.uuid4().hex}"
    s = spec(tmp_path, image=images.plain, env={"SECRET_SAS": secret}, command=["/bin/sh", "-c", 'echo "$SECRET_SAS"'])
    assert run(podman, s) == 0
    assert out(tmp_path) == f"{secret}\n"
    podman.pull(pushed_image, RegistryAuth(registry.server, registry.username, registry.password))
    flat = " ".join(" ".join(argv) for argv in seen)
    assert " run " in f" {flat} " and " pull " in f" {flat} "
    assert secret not in flat
    assert registry.password not in flat


def test_process_left_by_an_earlier_emulator_is_found_and_killed(tmp_path):
    """An emulator restarting after a crash finds its predecessor's running tasks through state_dir."""
    from devstack.batch_emulator.runtimes import ProcessRuntime

    state = tmp_path / "state"
    before = ProcessRuntime(state_dir=state)
    s = spec(tmp_path, name="emu-old-task-1", command=["/bin/sleep", "300"])
    handle = before.start(s)
    after = ProcessRuntime(state_dir=state)  # the "restarted" emulator: no handles in memory
    assert after.list_names("emu-") == ["emu-old-task-1"]
    after.cleanup("emu-old-task-1")
    assert handle.wait(10) == 137
    assert after.list_names("emu-") == []


def test_image_removed_behind_the_runtime_is_noticed(podman, podman_env, images, tmp_path):
    """has_image answers from memory for a while; a start that finds the image gone clears that memory."""
    env = {**os.environ, **podman_env}
    doomed = f"localhost/rs-test/doomed:{uuid.uuid4().hex[:6]}"
    subprocess.run(["podman", "tag", images.plain, doomed], env=env, check=True)
    assert podman.has_image(doomed)
    subprocess.run(["podman", "rmi", doomed], env=env, check=True, capture_output=True)
    with pytest.raises(StartError) as err:
        podman.start(spec(tmp_path, image=doomed, command=["/bin/true"]))
    assert err.value.code == "ContainerInvalidImage"
    assert not podman.has_image(doomed)
