"""Environment variables that make a program load or run code: a request may never set them (shared.pipelines
`overridable`, shared.work_items request overrides)."""

from __future__ import annotations

# Variables that make a program load or run code of the caller's choosing (loaders, shells, runtimes): a request may
# never set them, even when a pipeline lists them, or its sender would run code holding the pool's identity.
CODE_LOADING_ENV = frozenset({
    "PATH", "ENV", "BASH_ENV", "BASHOPTS", "SHELLOPTS", "IFS", "PS4", "PROMPT_COMMAND", "CDPATH",
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE", "PYTHONWARNINGS",
    "NODE_OPTIONS", "NODE_PATH", "PERL5LIB", "PERL5OPT", "PERLLIB", "PERL5DB", "RUBYLIB", "RUBYOPT", "GEM_PATH",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "LUA_PATH", "LUA_CPATH", "R_PROFILE",
    "R_PROFILE_USER", "PHPRC", "GIT_SSH_COMMAND", "EDITOR", "VISUAL", "PAGER", "LESSOPEN", "HOME", "TMPDIR",
})
CODE_LOADING_PREFIXES = ("LD_", "DYLD_", "PYTHON", "MALLOC_", "BASH_FUNC_")


def loads_code(name: str) -> bool:
    upper = name.upper()
    return upper in CODE_LOADING_ENV or upper.startswith(CODE_LOADING_PREFIXES)
