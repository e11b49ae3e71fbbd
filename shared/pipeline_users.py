"""Per-pipeline task user, bind mounts and registry, and the pool start task's user (pipelines.yaml).

    userIdentity: {autoUser: {scope: pool|task, elevationLevel: nonadmin|admin}}
    containerHostBatchBindMounts: [{source: Shared|Startup|VfsMounts|Task|JobPrep|Applications, isReadOnly: bool}]
    registry: {server, username, password} or {server, identityResourceId}     (pipelines only)

Batch's advice: a container task runs as the task user mapped into the container; use elevationLevel admin (pool
scope) only where the task needs root inside the container, e.g. to write root-owned paths of the image. A start
task that mounts a file server needs admin. Omitted, Batch runs a task as a non-admin auto-user.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config_reader import Reader

SCOPES = ("pool", "task")
ELEVATIONS = ("nonadmin", "admin")
BIND_SOURCES = ("Shared", "Startup", "VfsMounts", "Task", "JobPrep", "Applications")


@dataclass(frozen=True)
class Registry:
    server: str
    username: str | None = None
    password: str | None = None
    identity_resource_id: str | None = None

    def wire(self) -> dict:
        """The registry as Batch takes it (a pool's containerRegistries[i], a task's containerSettings.registry)."""
        out = {"registryServer": self.server}
        if self.username:
            out.update(username=self.username, password=self.password)
        elif self.identity_resource_id:
            out["identityReference"] = {"resourceId": self.identity_resource_id}
        return out


@dataclass(frozen=True)
class AutoUser:
    scope: str = "pool"
    elevation_level: str = "nonadmin"

    def wire(self) -> dict:
        return {"autoUser": {"scope": self.scope, "elevationLevel": self.elevation_level}}


@dataclass(frozen=True)
class TaskUserOptions:
    user: AutoUser | None = None
    bind_mounts: tuple[tuple[str, bool], ...] | None = None  # None: Batch's default (the whole node folder)
    registry: Registry | None = None


def _fold(value: str, choices: tuple[str, ...]) -> str | None:
    return next((c for c in choices if c.lower() == str(value).lower()), None)


def auto_user(r) -> AutoUser | None:
    """userIdentity of a pipeline or start task, from its Reader (r.sub)."""
    ui = r.sub("userIdentity")
    if ui is None:
        return None
    ui.known("autoUser")
    au = ui.sub("autoUser", required=True)
    au.known("scope", "elevationLevel")
    scope = _fold(au.data.get("scope", "pool"), SCOPES)
    if scope is None:
        raise au.fail("scope", f"{au.data.get('scope')!r} is not one of {', '.join(SCOPES)}")
    level = _fold(au.data.get("elevationLevel", "nonadmin"), ELEVATIONS)
    if level is None:
        raise au.fail("elevationLevel", f"{au.data.get('elevationLevel')!r} is not one of {', '.join(ELEVATIONS)}")
    return AutoUser(scope, level)


def task_user_options(r) -> TaskUserOptions | None:
    user = auto_user(r)
    binds = None
    raw = r.data.get("containerHostBatchBindMounts")
    if raw is not None:
        if not isinstance(raw, list):
            raise r.fail("containerHostBatchBindMounts", "must be a list of {source, isReadOnly}")
        entries = []
        for i, item in enumerate(raw):
            br = Reader(item, f"{r.where}.containerHostBatchBindMounts[{i}]")
            br.known("source", "isReadOnly")
            source = _fold(br.str("source", required=True), BIND_SOURCES)
            if source is None:
                raise br.fail("source", f"{item.get('source')!r} is not one of {', '.join(BIND_SOURCES)}")
            entries.append((source, br.bool("isReadOnly", False)))
        binds = tuple(entries)
    registry = None
    rr = r.sub("registry")
    if rr is not None:
        registry = parse_registry(rr)
    if user is None and binds is None and registry is None:
        return None
    return TaskUserOptions(user, binds, registry)


def parse_registry(rr: Reader) -> Registry:
    """A container registry entry (a pool's `container.registries[i]`, a pipeline's per-task `registry`)."""
    rr.known("server", "username", "password", "identityResourceId")
    reg = Registry(server=rr.str("server", required=True), username=rr.str("username") or None,
                   password=rr.str("password") or None, identity_resource_id=rr.str("identityResourceId") or None)
    if bool(reg.username) != bool(reg.password):
        raise rr.fail("username", "username and password go together (or use identityResourceId)")
    return reg


def identity(options: TaskUserOptions | None) -> dict:
    """{"userIdentity": ...} for a task body, or {} (Batch's default: a non-admin auto-user)."""
    return {"userIdentity": options.user.wire()} if options and options.user else {}


def apply_to_container_settings(options: TaskUserOptions | None, settings: dict) -> None:
    """containerSettings.containerHostBatchBindMounts and .registry of a task body."""
    if options is None:
        return
    if options.bind_mounts is not None:
        settings["containerHostBatchBindMounts"] = [{"source": s, "isReadOnly": ro} for s, ro in options.bind_mounts]
    if options.registry is not None:
        settings["registry"] = options.registry.wire()
