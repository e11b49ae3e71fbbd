"""podman and docker through their command-line interfaces, as Batch drives docker on a node.

Batch runs `docker create` with the task's image, containerRunOptions and command line, then starts the
container and waits for it. We do the same with either CLI (as one attached `run`, see start()) (they share the verbs and flags used here), so
that run options, ENTRYPOINT handling and exit codes behave as they will on Azure.

Choices worth knowing:
- Default network is `host` unless the spec names a network or the run options carry --network/--net.
  The local stack's services (Azurite, the registry, the emulator) listen on 127.0.0.1; with host networking
  a task reaches them at the same addresses the app uses, the way a Batch node reaches Storage directly. It is
  also cheaper: measured here `podman run` takes ~0.17 s with host networking and ~0.40 s with the default
  bridge (netavark setup/teardown per container).
- Environment values travel in a 0600 `--env-file` in a private temp folder that exists only until the
  container is created, never on the command line (which any local user can read in /proc). Multi-line
  values cannot go in an env file; they are named bare in it and handed over in the CLI's environment.
- Registry credentials go in a temporary auth file (podman --authfile; docker: a temporary DOCKER_CONFIG),
  never in argv. Without credentials an empty auth file is used, so a pull is anonymous exactly as on Batch,
  whatever `podman login` state the machine has.
- `--rm`: the engine removes the container when it exits, as Batch cleans up task containers; the
  exit code still comes back from the attached `run`. `cleanup()` removes whatever is left.
- Every task container is labelled `eventbatch.emulator=<name>`: a restarted emulator removes its own
  leftovers (by name prefix) before it requeues their tasks, and `make down` removes all labelled ones.
- `--pull never`: images are pulled only by `pull()`, with the pool's credentials, so a task cannot
  silently pull anonymously what the pool was meant to prefetch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

from devstack.common import image_copy

from .base import Mount, PullError, RegistryAuth, RunSpec, StartError
from .errors import brief, classify_create_error, classify_pull_error
from .images import is_loopback, normalize_server, registry_of

# Variables that steer the engine CLI itself; a task variable with one of these names may not be passed
# through the CLI's environment (only through the env file, which is fine for single-line values).
_CLI_STEERING_PREFIXES = ("CONTAINERS_", "DOCKER_", "XDG_", "REGISTRY_AUTH_FILE", "BUILDAH_", "PODMAN_")
_CLI_STEERING_NAMES = {"PATH", "HOME", "TMPDIR", "LD_LIBRARY_PATH", "LD_PRELOAD"}

_CLI_TIMEOUT = 120.0
# Every container the emulator starts carries this label, so that leftovers of a killed emulator can be found
# (its restart, and `make down`, which filters on `label=eventbatch.emulator`).
EMULATOR_LABEL = "eventbatch.emulator"
IMAGE_CACHE_SECONDS = 30.0


class ContainerHandle:
    """A container started with an attached `run`; that process ends when the container does."""

    def __init__(self, runtime: ContainerCliRuntime, name: str, container_id: str, proc: subprocess.Popen):
        self._runtime = runtime
        self.name = name
        self.container_id: str | None = container_id
        self._proc = proc
        self._exit_code: int | None = None
        self._lock = threading.Lock()
        self.removed = False

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            rc = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        with self._lock:
            if self._exit_code is None:
                # A negative code means the attach process itself died of a signal, not the container:
                # ask the engine for the container's own exit code (if it is still there to ask).
                self._exit_code = rc if rc >= 0 else self._runtime.exit_code_of(self.name, default=128 - rc)
                # An attached `run --rm` returns after the engine removed the container.
                self.removed = rc >= 0
            return self._exit_code

    def kill(self) -> None:
        self._runtime.cli(["kill", self.name], timeout=30)
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


class ContainerCliRuntime:
    """One implementation for both engines; `engine` is 'podman' or 'docker'."""

    def __init__(self, engine: str, executable: str | None = None, env: dict[str, str] | None = None):
        if engine not in ("podman", "docker"):
            raise ValueError(f"engine must be 'podman' or 'docker', not {engine!r}")
        self.name = engine
        self.executable = executable or shutil.which(engine) or engine
        self.env = {**os.environ, **(env or {})}
        self._handles: dict[str, ContainerHandle] = {}
        self._known_images: dict[str, float] = {}

    # -- CLI plumbing ---------------------------------------------------------------------------------------

    def cli(
        self, args: list[str], timeout: float = _CLI_TIMEOUT, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run the engine CLI with argv (never a shell). Callers must not put secrets in `args`."""
        return subprocess.run(  # noqa: S603 - argv list
            image_copy.argv(self.executable, args, self.name),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def exit_code_of(self, name: str, default: int) -> int:
        res = self.cli(["inspect", "--format", "{{.State.ExitCode}}", name], timeout=30)
        try:
            return int(res.stdout.strip())
        except ValueError:
            return default

    # -- images ---------------------------------------------------------------------------------------------

    def has_image(self, image: str) -> bool:
        """Whether the image is local. A positive answer is remembered for IMAGE_CACHE_SECONDS: the scheduler
        asks before every task, and each engine call costs ~70 ms on these machines."""
        seen = self._known_images.get(image)
        if seen is not None and time.monotonic() - seen < IMAGE_CACHE_SECONDS:
            return True
        args = ["image", "exists", image] if self.name == "podman" else ["image", "inspect", image]
        present = self.cli(args, timeout=60).returncode == 0
        if present:
            self._known_images[image] = time.monotonic()
        else:
            self._known_images.pop(image, None)
        return present

    def pull(self, image: str, auth: RegistryAuth | None, timeout: float = 300) -> None:
        server = registry_of(image)
        with tempfile.TemporaryDirectory(prefix="eb-pull-") as tmp:
            args = ["pull", "-q"]
            env = dict(self.env)
            auth_doc = _auth_document(image, auth)
            if self.name == "podman":
                authfile = Path(tmp) / "auth.json"
                _write_private(authfile, json.dumps(auth_doc))
                args += ["--authfile", str(authfile)]
                if server and is_loopback(server):
                    args.append("--tls-verify=false")
            else:
                _write_private(Path(tmp) / "config.json", json.dumps(auth_doc))
                env["DOCKER_CONFIG"] = tmp
            args.append(image)
            try:
                res = self.cli(args, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                raise PullError("ContainerMiscError", f"Pulling image {image} timed out after {timeout:g} s") from None
        if res.returncode != 0:
            code = classify_pull_error(res.stderr)
            raise PullError(code, f"Pulling image {image} failed: {brief(res.stderr)}")
        self._known_images[image] = time.monotonic()

    # -- containers -----------------------------------------------------------------------------------------

    def start(self, spec: RunSpec) -> ContainerHandle:
        """Create and start the container with one `run` (one engine process instead of `create` + `start -a`,
        ~70 ms less per task here), returning once the container exists.

        `--cidfile` tells creation apart from running: the engine writes it right after `create`, so an engine
        that exits without having written it never created the container, and that is a StartError with its
        message, as `docker create` failing is on Batch. Exit codes after that are the container's own."""
        if not spec.image:
            raise StartError("ContainerInvalidImage", "a container task needs an image name")
        private = Path(tempfile.mkdtemp(prefix="eb-ctr-"))
        try:
            cli_env = dict(self.env)
            env_file, cidfile = private / "env", private / "cid"
            _write_private(env_file, _env_file_text(spec.env, cli_env))
            args = self._run_args(spec, env_file, cidfile)
            with open(spec.stdout_path, "wb") as out, open(spec.stderr_path, "wb") as err:
                proc = subprocess.Popen(  # noqa: S603 - argv list; no secrets in it
                    [self.executable, *args],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=cli_env,
                    start_new_session=True,
                )
            try:
                container_id = self._await_created(proc, cidfile, spec)
            except StartError as exc:
                if exc.code == "ContainerInvalidImage":
                    self._known_images.pop(spec.image, None)  # removed behind our back: ask the engine again
                raise
        finally:
            # The engine has read the env file by now (it copies the variables into the container's config
            # at create time), so nothing holding task values is left behind in /tmp.
            shutil.rmtree(private, ignore_errors=True)
        handle = ContainerHandle(self, spec.name, container_id, proc)
        self._handles[spec.name] = handle
        return handle

    def _run_args(self, spec: RunSpec, env_file: Path, cidfile: Path) -> list[str]:
        args = ["run", "--rm", "--name", spec.name, "--label", f"{EMULATOR_LABEL}={spec.name}", "--cidfile",
                str(cidfile), "--pull", "never", "--env-file", str(env_file)]
        if spec.network:
            args += ["--network", spec.network]
        elif not _names_network(spec.run_options):
            args += ["--network", "host"]
        for mount in spec.mounts:
            args += ["-v", _volume_arg(mount)]
        if spec.workdir:
            args += ["-w", spec.workdir]
        if spec.user:
            args += ["--user", spec.user]
        # Run options last among the flags so that, as on Batch, the user's --workdir etc. win.
        return [*args, *spec.run_options, spec.image, *(spec.command or [])]

    @staticmethod
    def _await_created(proc: subprocess.Popen, cidfile: Path, spec: RunSpec) -> str:
        deadline = time.monotonic() + _CLI_TIMEOUT
        delay = 0.002
        while True:
            cid = _read_text(cidfile)
            if len(cid) >= 64:
                return cid
            rc = proc.poll()
            if rc is not None:
                cid = _read_text(cidfile)
                if cid:
                    return cid  # created, and already finished
                err_path = Path(spec.stderr_path)
                stderr = err_path.read_text(errors="replace")
                err_path.write_bytes(b"")  # the task never ran: its stderr.txt stays empty, as on Batch
                raise StartError(classify_create_error(stderr), f"Creating the container failed: {brief(stderr)}")
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=10)
                raise StartError("ContainerMiscError", f"creating container {spec.name} timed out")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def cleanup(self, name: str) -> None:
        """Remove the container (running or not) and its private files; missing ones are fine.

        A container whose `run --rm` returned normally is already gone, which saves one engine call (~60 ms)
        per task."""
        handle = self._handles.pop(name, None)
        if handle is None or not handle.removed:
            args = ["rm", "-f", "-t", "0", name] if self.name == "podman" else ["rm", "-f", name]
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cli(args, timeout=60)

    def list_names(self, prefix: str) -> list[str]:
        """Names of containers (any state) starting with `prefix`: lets the emulator find leftovers after a
        restart and remove them before it requeues their tasks."""
        res = self.cli(["ps", "-a", "--format", "{{.Names}}"], timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"{self.name} ps failed: {brief(res.stderr)}")
        return sorted(n for n in res.stdout.split() if n.startswith(prefix))


# -- helpers ------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _auth_document(image: str, auth: RegistryAuth | None) -> dict:
    """containers-auth.json / docker config.json: {"auths": {server: {"auth": b64(user:pass)}}}."""
    if auth is None:
        return {"auths": {}}
    token = b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    servers = {normalize_server(auth.server)}
    image_server = registry_of(image)
    if image_server:
        servers.add(image_server)
    return {"auths": {server: {"auth": token} for server in servers}}


def _env_file_text(env: dict[str, str], cli_env: dict[str, str]) -> str:
    """Env-file lines are taken literally (KEY=VALUE, no quoting). Multi-line values are named bare and put
    into `cli_env`, from where the engine copies them."""
    lines = []
    for key, value in env.items():
        if not key or "=" in key or "\n" in key or "\0" in key or key.startswith("#"):
            raise StartError("ContainerInvalidSettings", f"invalid environment variable name {key!r}")
        if "\n" in value or "\r" in value:
            if key in _CLI_STEERING_NAMES or key.startswith(_CLI_STEERING_PREFIXES):
                raise StartError(
                    "ContainerInvalidSettings",
                    f"environment variable {key} has a multi-line value, which the emulator can only pass "
                    "through the engine's own environment, where this name would change the engine's behaviour",
                )
            cli_env[key] = value
            lines.append(key)
        else:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def _names_network(run_options: list[str]) -> bool:
    return any(
        opt in ("--network", "--net") or opt.startswith(("--network=", "--net=")) for opt in run_options
    )


def _volume_arg(mount: Mount) -> str:
    for part in (mount.source, mount.target):
        if ":" in part or "," in part or not part:
            raise StartError("ContainerInvalidSettings", f"mount path {part!r} cannot contain ':' or ','")
    return f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")
