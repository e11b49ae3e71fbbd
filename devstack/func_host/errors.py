"""Errors the host reports at start-up; each message names the setting or function and the fix."""


class HostError(Exception):
    """A problem that stops the host from starting (bad configuration, unsupported app feature)."""


class ConfigError(HostError):
    """host.json, local.settings.json or an app setting is missing or invalid."""


class AppLoadError(HostError):
    """function_app.py could not be imported or indexed like the Python worker would."""


class UnsupportedFeatureError(HostError):
    """The app uses a trigger, binding or setting this local host does not emulate."""


class FunctionTimeoutError(Exception):
    """An invocation ran longer than host.json functionTimeout."""
