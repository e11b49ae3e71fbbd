"""Image sanity rules: does a pipeline's command line fit the image it runs in? Pure: data in, verdicts out.

Batch creates a container task with `docker create <runOptions> <image> <commandLine>` and runs it in the task
working directory unless the task asks for `containerImageDefault`. Its troubleshooting advice (inspect the image's
WORKDIR and ENTRYPOINT, use absolute paths, set --workdir to the image's WORKDIR) becomes a rule each here, so that
`eventbatch images check` (devstack/tools/image_check.py, which reads ImageFacts from the registry), `make demo`, the azd
hooks and the app at start-up (check_startup) all judge a pipeline the same way.

A rule that needs the image (its config blob or its file list) says `unknown` when it was not given ImageFacts;
the app at start-up has no registry call on its hot path and decides those from a facts file written by the check
(load_facts), when there is one.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.errors import ConfigError
from shared.pipelines import Pipeline, PipelineConfig

PASS, FAIL, NA, UNKNOWN = "pass", "FAIL", "n/a", "unknown"
WRAPPER_SHELL = "/bin/sh"  # what shared.task_spec.INPUT_PATH_WRAPPER runs before the pipeline's command
FACTS_VERSION = 1

# id -> what the rule protects against (printed by `eventbatch images check --rules` and in the docs)
RULES = {
    "untagged-image": "the image reference has a tag or a digest (a bare name pulls whatever `latest` is today)",
    "entrypoint-missing": "an empty commandLine (ENTRYPOINT mode) runs on an image that has an ENTRYPOINT",
    "entrypoint-with-command": "a commandLine on an image with an ENTRYPOINT would be passed to it as arguments",
    "relative-command": "the program that runs (commandLine, or the ENTRYPOINT in ENTRYPOINT mode) is an absolute "
                        "path",
    "relative-input": "workingDirectory: containerImageDefault is not combined with a relative INPUT_PATH",
    "shell-missing": f"the image has {WRAPPER_SHELL}, which the input wrapper runs before a commandLine",
    "workdir-mismatch": "--workdir in containerRunOptions equals the image's WORKDIR with containerImageDefault",
}
# Rules decided from pipelines.yaml alone (the app applies them at start-up even without a facts file).
CONFIG_ONLY = ("untagged-image", "relative-command", "relative-input")


@dataclass(frozen=True)
class ImageFacts:
    """What the rules need to know about one image, as read from its registry."""

    reference: str
    digest: str = ""  # the manifest digest that was read (the linux/amd64 one of an index)
    workdir: str = ""  # "" = the runtime's default, "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    has_shell: bool | None = None  # /bin/sh in the image's filesystem; None = not looked at
    shell_note: str = ""  # how has_shell was decided, or why it was not

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> ImageFacts:
        return cls(reference=str(data["reference"]), digest=str(data.get("digest") or ""),
                   workdir=str(data.get("workdir") or ""), entrypoint=tuple(data.get("entrypoint") or ()),
                   cmd=tuple(data.get("cmd") or ()), user=str(data.get("user") or ""),
                   has_shell=data.get("has_shell"), shell_note=str(data.get("shell_note") or ""))


@dataclass(frozen=True)
class Step:
    """One container a pipeline runs: its per-input task, or its merge task."""

    pipeline: str
    kind: str  # task | merge
    image: str
    command_line: str
    working_directory: str
    container_run_options: str

    @property
    def entrypoint_mode(self) -> bool:
        return not self.command_line.strip()

    @property
    def wrapped(self) -> bool:
        """The per-input task's command goes through the /bin/sh input wrapper (shared.task_spec)."""
        return self.kind == "task" and not self.entrypoint_mode

    @property
    def where(self) -> str:
        return f"pipeline {self.pipeline}" + (" (merge)" if self.kind == "merge" else "")


@dataclass(frozen=True)
class Verdict:
    rule: str
    status: str  # PASS | FAIL | NA | UNKNOWN
    message: str = ""


@dataclass(frozen=True)
class StepReport:
    step: Step
    facts: ImageFacts | None
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.status == FAIL)


# ---- pipelines -> steps ----------------------------------------------------------------------------------
def steps(pipeline: Pipeline) -> list[Step]:
    out = [Step(pipeline.name, "task", pipeline.image, pipeline.command_line, pipeline.working_directory,
                pipeline.container_run_options)]
    if pipeline.merge is not None:
        out.append(Step(pipeline.name, "merge", pipeline.merge.image or pipeline.image, pipeline.merge.command_line,
                        pipeline.working_directory, pipeline.container_run_options))
    return out


def all_steps(config: PipelineConfig) -> list[Step]:
    """The steps of the enabled pipelines: a disabled one (or one on a disabled pool) takes no work, and its image
    may not exist until it is switched on."""
    return [s for p in config.pipelines.values() if p.name not in disabled(config) for s in steps(p)]


def disabled(config: PipelineConfig) -> list[str]:
    """Names of the pipelines switched off in pipelines.yaml (their own `enabled`, or their pool's)."""
    return [p.name for p in config.pipelines.values() if not config.takes_work(p)]


# ---- image references ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port]; docker.io for Docker Hub names
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def pinned(self) -> bool:
        return bool(self.tag or self.digest)

    @property
    def reference(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"


_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Fa-f0-9]{32,}$")


def parse_reference(image: str) -> ImageRef:
    """Split an image reference the way docker does: [registry/]repository[:tag][@digest]."""
    rest, _, digest = image.strip().partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"{image!r}: {digest!r} is not a digest (algorithm:hex)")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "docker.io", rest
    name, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        name, tag = path, ""
    if not name:
        raise ValueError(f"{image!r} names no repository")
    if registry == "docker.io" and "/" not in name:
        name = f"library/{name}"
    return ImageRef(registry=registry, repository=name, tag=tag, digest=digest)


# ---- the rules -------------------------------------------------------------------------------------------
def _program(command_line: str) -> str:
    return shlex.split(command_line)[0]


def run_option_workdir(options: str) -> str | None:
    """The --workdir/-w value in containerRunOptions (the last one wins, as in docker), or None."""
    try:
        argv = shlex.split(options)
    except ValueError:
        return None
    found = None
    for i, arg in enumerate(argv):
        if arg in ("--workdir", "-w") and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--workdir="):
            found = arg.split("=", 1)[1]
    return found


def _has_entrypoint_option(options: str) -> bool:
    try:
        return any(a == "--entrypoint" or a.startswith("--entrypoint=") for a in shlex.split(options))
    except ValueError:
        return False


def _norm_dir(path: str) -> str:
    return (path.rstrip("/") or "/") if path else "/"


def rule_untagged(step: Step, facts: ImageFacts | None) -> Verdict:
    try:
        ref = parse_reference(step.image)
    except ValueError as exc:
        return Verdict("untagged-image", FAIL, str(exc))
    if ref.pinned:
        return Verdict("untagged-image", PASS, ref.digest or f"tag {ref.tag}")
    return Verdict("untagged-image", FAIL, f"image {step.image!r} has neither a tag nor a digest: every pull gets "
                                           "whatever `latest` is then; pin it (name:tag or name@sha256:...)")


def rule_entrypoint_missing(step: Step, facts: ImageFacts | None) -> Verdict:
    if not step.entrypoint_mode:
        return Verdict("entrypoint-missing", NA, "commandLine is set")
    if facts is None:
        return Verdict("entrypoint-missing", UNKNOWN, "needs the image config")
    if facts.entrypoint:
        return Verdict("entrypoint-missing", PASS, f"ENTRYPOINT {list(facts.entrypoint)}")
    return Verdict("entrypoint-missing", FAIL,
                   f"{step.where} has an empty commandLine (ENTRYPOINT mode) but image {step.image} has no "
                   f"ENTRYPOINT{' (only CMD ' + str(list(facts.cmd)) + ')' if facts.cmd else ''}; set commandLine "
                   "to the program to run (an absolute path) or use an image with an ENTRYPOINT")


def rule_entrypoint_with_command(step: Step, facts: ImageFacts | None) -> Verdict:
    if step.entrypoint_mode:
        return Verdict("entrypoint-with-command", NA, "ENTRYPOINT mode")
    if facts is None:
        return Verdict("entrypoint-with-command", UNKNOWN, "needs the image config")
    if not facts.entrypoint or _has_entrypoint_option(step.container_run_options):
        return Verdict("entrypoint-with-command", PASS, "")
    return Verdict("entrypoint-with-command", FAIL,
                   f"{step.where}: image {step.image} has ENTRYPOINT {list(facts.entrypoint)}, so docker would run "
                   "it with the commandLine as its arguments; leave commandLine empty to run the ENTRYPOINT, or add "
                   "--entrypoint to containerRunOptions")


def rule_relative_command(step: Step, facts: ImageFacts | None) -> Verdict:
    if step.entrypoint_mode:
        if facts is None:
            return Verdict("relative-command", UNKNOWN, "ENTRYPOINT mode: needs the image config")
        if not facts.entrypoint:
            return Verdict("relative-command", NA, "no ENTRYPOINT (see entrypoint-missing)")
        program = facts.entrypoint[0]
        if program.startswith("/"):
            return Verdict("relative-command", PASS, program)
        return Verdict("relative-command", FAIL,
                       f"{step.where} runs the ENTRYPOINT of {step.image}, whose program {program!r} is not an "
                       "absolute path; Batch starts it in the task working directory, not the image's WORKDIR")
    try:
        program = _program(step.command_line)
    except ValueError as exc:
        return Verdict("relative-command", FAIL, f"{step.where}: commandLine cannot be split into words: {exc}")
    if program.startswith("/"):
        return Verdict("relative-command", PASS, program)
    return Verdict("relative-command", FAIL,
                   f"{step.where}: commandLine program {program!r} is not an absolute path; Batch starts the "
                   f"container in the task working directory, so write it in full (for example /app/{program})")


def rule_relative_input(step: Step, facts: ImageFacts | None) -> Verdict:
    if step.working_directory != "containerImageDefault":
        return Verdict("relative-input", NA, "taskWorkingDirectory")
    if step.kind == "task" and step.entrypoint_mode:
        return Verdict("relative-input", FAIL,
                       f"{step.where}: workingDirectory containerImageDefault with an empty commandLine: INPUT_PATH "
                       "is then relative to the task working directory (no wrapper makes it absolute) while the "
                       "container starts in the image's WORKDIR; use taskWorkingDirectory, or a commandLine (the "
                       "wrapper exports an absolute INPUT_PATH)")
    return Verdict("relative-input", PASS, "INPUT_PATH is absolute (input wrapper)" if step.wrapped else
                   "merge inputs are under $AZ_BATCH_TASK_WORKING_DIR/in")


def rule_shell_missing(step: Step, facts: ImageFacts | None) -> Verdict:
    if not step.wrapped:
        return Verdict("shell-missing", NA, "no input wrapper")
    if facts is None or facts.has_shell is None:
        note = facts.shell_note if facts is not None and facts.shell_note else "needs the image's file list"
        return Verdict("shell-missing", UNKNOWN, note)
    if facts.has_shell:
        return Verdict("shell-missing", PASS, facts.shell_note)
    return Verdict("shell-missing", FAIL,
                   f"{step.where}: image {step.image} has no {WRAPPER_SHELL}, which the input wrapper runs before "
                   "the commandLine; use an image with a shell, or ENTRYPOINT mode (empty commandLine)")


def rule_workdir_mismatch(step: Step, facts: ImageFacts | None) -> Verdict:
    wanted = run_option_workdir(step.container_run_options)
    if step.working_directory != "containerImageDefault" or wanted is None:
        return Verdict("workdir-mismatch", NA, "no --workdir with containerImageDefault")
    if facts is None:
        return Verdict("workdir-mismatch", UNKNOWN, "needs the image config")
    image_dir = _norm_dir(facts.workdir)
    if _norm_dir(wanted) == image_dir:
        return Verdict("workdir-mismatch", PASS, image_dir)
    return Verdict("workdir-mismatch", FAIL,
                   f"{step.where}: containerRunOptions --workdir {wanted} differs from the WORKDIR of {step.image} "
                   f"({image_dir}) with workingDirectory containerImageDefault; set --workdir {image_dir} or drop it")


ALL_RULES = (rule_untagged, rule_entrypoint_missing, rule_entrypoint_with_command, rule_relative_command,
             rule_relative_input, rule_shell_missing, rule_workdir_mismatch)


def check_step(step: Step, facts: ImageFacts | None) -> StepReport:
    return StepReport(step, facts, tuple(rule(step, facts) for rule in ALL_RULES))


def check_config(config: PipelineConfig, facts: Mapping[str, ImageFacts]) -> list[StepReport]:
    """Every step of every pipeline against every rule; `facts` by image reference (missing: rules say unknown)."""
    return [check_step(s, facts.get(s.image)) for s in all_steps(config)]


def failures(reports: Iterable[StepReport]) -> list[tuple[Step, Verdict]]:
    return [(r.step, v) for r in reports for v in r.failed]


# ---- the app at start-up ---------------------------------------------------------------------------------
def check_startup(config: PipelineConfig, environ: Mapping[str, str], pipelines_file: Path | None = None) -> None:
    """ConfigError naming the pipeline and the rule when a pipeline fails a rule the app can decide without a
    registry call: the CONFIG_ONLY rules always, the others from the facts file that `eventbatch images check
    --write` leaves (setting IMAGE_CHECK_FILE; default image-check.json beside pipelines.yaml, when present)."""
    facts = load_facts(facts_path(environ, pipelines_file))
    bad = [(s, v) for s, v in failures(check_config(config, facts)) if s.image in facts or v.rule in CONFIG_ONLY]
    if bad:
        lines = "; ".join(f"{s.where}: rule {v.rule}: {v.message}" for s, v in bad)
        raise ConfigError(f"pipelines.yaml: {len(bad)} image check(s) failed, the app will not start these "
                          f"pipelines: {lines} (run `eventbatch images check` for the whole report)")


def facts_path(environ: Mapping[str, str], pipelines_file: Path | None) -> Path | None:
    """IMAGE_CHECK_FILE when set (then it must exist); else image-check.json beside pipelines.yaml if present."""
    explicit = (environ.get("IMAGE_CHECK_FILE") or "").strip()
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"setting IMAGE_CHECK_FILE: {path} does not exist; run `eventbatch images check "
                              f"--write {path}` or unset IMAGE_CHECK_FILE")
        return path
    if pipelines_file is not None:
        beside = Path(pipelines_file).parent / "image-check.json"
        if beside.is_file():
            return beside
    return None


def load_facts(path: Path | None) -> dict[str, ImageFacts]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != FACTS_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FACTS_VERSION}")
        return {ref: ImageFacts.from_json(item) for ref, item in data["images"].items()}
    except OSError as exc:
        raise ConfigError(f"setting IMAGE_CHECK_FILE: cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"setting IMAGE_CHECK_FILE: {path} is not an image check file ({exc}); write it again "
                          "with `eventbatch images check --write`") from None


def dump_facts(facts: Iterable[ImageFacts]) -> str:
    return json.dumps({"version": FACTS_VERSION, "images": {f.reference: f.to_json() for f in facts}},
                      indent=2, sort_keys=True) + "\n"
