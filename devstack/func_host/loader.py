"""Import and index a Python v2 function app the way the Python worker does.

The worker imports the script named by ``PYTHON_SCRIPT_FILE_NAME`` (default ``function_app.py``) from the app
directory, requires exactly one top-level ``FunctionApp`` and calls ``get_functions()`` once (a second call on
the same app raises "does not have a unique function name"). Every function is then checked against what this
host can run, so an unsupported trigger or a declared binding fails at start naming the function.
"""

import importlib.util
import inspect
import logging
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import azure.functions as func
from azure.functions.decorators.function_app import FunctionRegister

from devstack.func_host.errors import AppLoadError, UnsupportedFeatureError

log = logging.getLogger("func_host")

SUPPORTED_TRIGGERS = ("queueTrigger", "blobTrigger", "timerTrigger", "eventGridTrigger")


@dataclass
class LoadedFunction:
    """One indexed function: its trigger, the user callable and how its parameters are bound."""

    name: str
    trigger: typing.Any  # azure.functions.decorators Trigger (Queue/Blob/Timer/EventGrid)
    user_function: Callable[..., typing.Any]
    is_async: bool
    trigger_param: str
    trigger_annotation: typing.Any = None
    context_param: str | None = None
    script_dir: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def function_id(self) -> str:
        """The id the host uses in storage paths (blob receipts, timer status)."""
        return f"Host.Functions.{self.name}"


def import_app_module(app_dir: Path, script_name: str | None = None):
    """Import the app script with the app directory first on sys.path, as the worker arranges."""
    script = script_name or os.environ.get("PYTHON_SCRIPT_FILE_NAME") or "function_app.py"
    path = (app_dir / script).resolve()
    if not path.is_file():
        raise AppLoadError(f"{path} not found: the worker loads PYTHON_SCRIPT_FILE_NAME (default function_app.py) "
                           "from the app directory; pass --app-dir or set PYTHON_SCRIPT_FILE_NAME")
    app_root = str(path.parent)
    if app_root not in sys.path:
        sys.path.insert(0, app_root)
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AppLoadError(f"importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    return module


def find_function_app(module) -> FunctionRegister:
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if not apps:
        raise AppLoadError(f"no top-level FunctionApp found in {module.__file__}: define `app = func.FunctionApp()` "
                           "at module level")
    if len(apps) > 1:
        raise AppLoadError(f"{len(apps)} FunctionApp instances in {module.__file__}: the worker requires exactly one; "
                           "use func.Blueprint() in other modules and app.register_functions(bp)")
    return apps[0]


def _binding_label(binding) -> str:
    direction = getattr(getattr(binding, "_direction", None), "name", "?").lower()
    return f"{direction} binding {binding.name!r} of type {binding.type!r}"


def _describe(function, script_dir: str) -> LoadedFunction:
    name = function.get_function_name()
    trigger = function.get_trigger()
    where = f"function {name!r}"
    if trigger is None:
        raise UnsupportedFeatureError(f"{where} has no trigger; every function needs exactly one")
    if trigger.type not in SUPPORTED_TRIGGERS:
        raise UnsupportedFeatureError(
            f"{where}: trigger type {trigger.type!r} is not supported by the local host (supported: "
            f"{', '.join(SUPPORTED_TRIGGERS)}); remove the function or run it on Azure")
    for binding in function.get_bindings():
        if binding is trigger:
            continue
        raise UnsupportedFeatureError(
            f"{where}: {_binding_label(binding)} is not supported by the local host (only triggers are); "
            "use an SDK client (azure.storage.blob / azure.storage.queue) in the function body instead")
    if function.get_settings_dict("retry_policy"):
        log.warning("%s: the retry policy is not emulated locally; queue and blob triggers retry through dequeue "
                    "counts and poison thresholds, timers run again at their next occurrence", where)
    user = function.get_user_function()
    signature = inspect.signature(user)
    try:
        hints = typing.get_type_hints(user)
    except Exception:  # unresolvable forward refs: fall back to raw annotations
        hints = {k: p.annotation for k, p in signature.parameters.items() if p.annotation is not p.empty}
    loaded = LoadedFunction(name=name, trigger=trigger, user_function=user,
                            is_async=inspect.iscoroutinefunction(user), trigger_param=trigger.name,
                            script_dir=script_dir)
    if trigger.name not in signature.parameters:
        raise AppLoadError(f"{where}: the trigger argument {trigger.name!r} is not a parameter of "
                           f"{user.__name__}(); fix arg_name in the decorator")
    for param in signature.parameters.values():
        annotation = hints.get(param.name)
        if param.name == trigger.name:
            loaded.trigger_annotation = annotation
        elif annotation is func.Context or (isinstance(annotation, type) and issubclass(annotation, func.Context)) \
                or (annotation is None and param.name == "context"):
            loaded.context_param = param.name
        elif param.default is param.empty:
            raise AppLoadError(f"{where}: parameter {param.name!r} is not bound to the trigger "
                               f"({trigger.name!r}) or to func.Context; the worker would reject it too")
    return loaded


def load_functions(app_dir: Path, script_name: str | None = None, environ=None) -> list[LoadedFunction]:
    """Import the app, call get_functions() once and describe every enabled function."""
    env = os.environ if environ is None else environ
    module = import_app_module(app_dir, script_name)
    app = find_function_app(module)
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise AppLoadError(f"indexing the FunctionApp failed: {exc}") from exc
    loaded = []
    for function in functions:
        name = function.get_function_name()
        if env.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1"):
            continue
        loaded.append(_describe(function, str(Path(module.__file__).parent)))
    return loaded
