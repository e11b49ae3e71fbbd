"""Errors the host reports at start-up; each message names the setting or function and the fix."""

from shared.errors import ConfigError as SharedConfigError


class HostError(Exception):
    """A problem that stops the host from starting (bad configuration, unsupported app feature)."""


class ConfigError(HostError, SharedConfigError):
    """host.json, local.settings.json or an app setting is missing or invalid. A shared.errors.ConfigError too: the
    NCRONTAB and TimeSpan parsers the app also uses (shared/ncrontab.py, shared/dotnet_timespan.py) raise that one,
    and the host reports both alike (HOST_ERRORS)."""


class AppLoadError(HostError):
    """function_app.py could not be imported or indexed like the Python worker would."""


class UnsupportedFeatureError(HostError):
    """The app uses a trigger, binding or setting this local host does not emulate."""


class FunctionTimeoutError(Exception):
    """An invocation ran longer than host.json functionTimeout."""


HOST_ERRORS = (HostError, SharedConfigError)  # what stops the host with a message rather than a traceback
