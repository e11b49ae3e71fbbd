"""local.settings.json: app settings applied to the process environment before the app is imported.

Core Tools semantics: a value already set in the environment wins (it logs that it skips the file's value),
so the stack can override settings without editing the file. ``IsEncrypted: true`` files are not supported.
"""

import json
import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from devstack.func_host.errors import ConfigError

log = logging.getLogger("func_host")


def read_settings_file(path: Path) -> dict[str, str]:
    """Return the ``Values`` of a local.settings.json file as strings."""
    if not path.is_file():
        raise ConfigError(f"settings file {path} not found: copy local.settings.sample.json to local.settings.json "
                          "or pass --settings FILE")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object with a \"Values\" object")
    if doc.get("IsEncrypted"):
        raise ConfigError(f"{path}: IsEncrypted=true is not supported locally; store plain values and set "
                          "\"IsEncrypted\": false")
    values = doc.get("Values") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: \"Values\" must be an object of setting names to strings")
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{path}: Values.{key} must be a string, number or boolean, not {type(value).__name__}")
        out[key] = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
    return out


def apply_settings(values: dict[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy settings into ``environ`` unless already present; return the names skipped because of that."""
    env = os.environ if environ is None else environ
    skipped = []
    for key, value in values.items():
        if key in env:
            skipped.append(key)
            continue
        env[key] = value
    for key in skipped:
        log.info("Skipping '%s' from local.settings.json as it's already defined in current environment variables.",
                 key)
    worker = env.get("FUNCTIONS_WORKER_RUNTIME")
    if worker and worker.lower() != "python":
        raise ConfigError(f"FUNCTIONS_WORKER_RUNTIME={worker!r}: this host runs Python apps only; set it to \"python\"")
    return skipped


def resolve_percent_settings(text: str, environ: MutableMapping[str, str] | None = None, where: str = "") -> str:
    """Replace ``%Name%`` with the app setting ``Name`` as binding expressions do; unknown names are errors."""
    env = os.environ if environ is None else environ
    parts = text.split("%")
    if len(parts) % 2 == 0:
        raise ConfigError(f"{where or text}: unbalanced '%' in {text!r}; use %SettingName% to reference a setting")
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
        elif part not in env:
            raise ConfigError(f"{where or text}: app setting {part!r} referenced as %{part}% is not defined; "
                              "add it to local.settings.json Values")
        else:
            out.append(env[part])
    return "".join(out)
