"""Read every pipeline image's config from its registry and judge it by shared/image_rules.py.

`run_check` is what `eventbatch images check` (devstack/tools/image_check.py) reports on; `up()` keeps what it
read in `.devstack/image-check.json` (`write_image_facts`), which the app reads at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.common import paths
from devstack.common.registry_client import (
    DEFAULT_MAX_LAYER_BYTES,
    RegistryError,
    clients_for,
    default_credential,
    read_facts,
)
from devstack.stack.host import LOCAL_DEFAULTS
from shared.errors import ConfigError
from shared.image_rules import (
    ImageFacts,
    StepReport,
    all_steps,
    check_config,
    disabled,
    dump_facts,
    failures,
    parse_reference,
)
from shared.pipelines import PipelineConfig, load_config


@dataclass
class CheckResult:
    reports: list[StepReport]
    facts: dict[str, ImageFacts] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # image -> why its facts could not be read
    unreachable: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)  # disabled pipelines: not checked

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.reports) or bool(set(self.errors) - self.unreachable)


def run_check(config: PipelineConfig, *, layers: bool = True, max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES,
              credential_factory: Callable[[], object] | None = default_credential) -> CheckResult:
    """Read the facts of every image the pipelines use (once each), then apply the rules."""
    registries = [r for pool in config.pools.values() for r in pool.registries]
    client_for = clients_for(registries, credential_factory)
    facts: dict[str, ImageFacts] = {}
    errors: dict[str, str] = {}
    unreachable: set[str] = set()
    images = dict.fromkeys(s.image for s in all_steps(config))
    for image in images:
        try:
            ref = parse_reference(image)
            facts[image] = read_facts(client_for(ref.registry), ref, image, layers=layers,
                                      max_layer_bytes=max_layer_bytes)
        except ValueError as exc:
            errors[image] = str(exc)
        except RegistryError as exc:
            errors[image] = str(exc)
            if exc.unreachable:
                unreachable.add(image)
    return CheckResult(check_config(config, facts), facts, errors, unreachable, skipped=disabled(config))


def write_image_facts(env: dict[str, str], log=print) -> Path:
    """Read the sample pipelines' images from the registry (`eventbatch images check`) and keep what was read in
    .devstack/image-check.json, which the local host's IMAGE_CHECK_FILE names: the app judges its pipelines with it
    at start-up. Verdicts are only summarised here; `eventbatch images check` prints them."""
    out = paths.image_facts_file()
    try:
        config = load_config(paths.REPO_ROOT / "pipelines.yaml", {**LOCAL_DEFAULTS, **env})
    except ConfigError as exc:
        log(f"  image check     skipped: {exc}")
        out.write_text(dump_facts([]))
        return out
    result = run_check(config, credential_factory=None)
    out.write_text(dump_facts(result.facts.values()))
    bad = failures(result.reports)
    verdict = (f"{len(bad)} rule(s) FAILED ({', '.join(sorted({v.rule for _, v in bad}))}): run "
               "`eventbatch images check`" if bad else "passed")
    log(f"  image check    {verdict} ({len(result.facts)} image(s); facts in {out})")
    return out
