#!/usr/bin/env bash
# Idempotent setup of everything the local stack and the tests need.
#  - system packages (podman, runc, docker-registry, busybox-static, skopeo) via apt-get when missing and root
#  - .venv with the project installed (editable) plus dev tools
#  - Azurite pinned in ./node_modules (Node 20: azurite 3.35.0)
#  - .venv-batch14: an isolated environment with the track-1 azure-batch 14.2 client for compatibility tests
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}

# pip on some machines warns about missing local mirror folders; keep the output readable.
quiet_pip() { "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; return "${PIPESTATUS[0]}"; }
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Python and Node must be there already ---------------------------------------------------------------
command -v "$PY" >/dev/null || die "python3 (3.11+) not found: install Python 3.11 or newer"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python 3.11+ is required; $("$PY" --version) found. Set PYTHON=/path/to/python3.11"
command -v node >/dev/null || die "node (20+) not found: install Node.js 20 (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm not found: install npm"

# --- system packages ------------------------------------------------------------------------------------
need=()
have_engine=0
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then have_engine=1; fi
if [ "$have_engine" = 0 ]; then
  command -v podman >/dev/null || need+=(podman)
  command -v runc >/dev/null || need+=(runc)
fi
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /bin/busybox ] || command -v busybox >/dev/null || need+=(busybox-static)
command -v skopeo >/dev/null || need+=(skopeo)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    die "missing system packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}"
  fi
fi

# --- Python virtual environment ---------------------------------------------------------------------------
stamp=.venv/.eventbatch-installed
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing the project into .venv"
  quiet_pip .venv/bin/python -m pip install -q --upgrade pip
  quiet_pip .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

# --- track-1 client for compatibility tests ---------------------------------------------------------------
stamp14=.venv-batch14/.installed
if [ ! -f "$stamp14" ]; then
  say "creating .venv-batch14 (azure-batch 14.2 compatibility client)"
  "$PY" -m venv .venv-batch14
  quiet_pip .venv-batch14/bin/python -m pip install -q 'azure-batch==14.2.0' 'msrest>=0.7' 'pytest>=8.3'
  touch "$stamp14"
fi

# --- Azurite ----------------------------------------------------------------------------------------------
if [ ! -x node_modules/.bin/azurite ] || [ package.json -nt node_modules/.package-lock.json ]; then
  say "installing Azurite into ./node_modules"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

say "ready: .venv, .venv-batch14, node_modules/.bin/azurite"

# === infra validation tools (owned by the infra engineer; appended section) ===============================
# .venv-checkov: checkov + its Bicep parser, isolated because checkov pins many dependencies that would fight the
# app's. Used by tests/infra (checkov over infra/). Re-installed when the pins below change.
CHECKOV_PINS="checkov==3.3.30 pycep-parser==0.5.1"
stampck=.venv-checkov/.installed
if [ ! -f "$stampck" ] || [ "$(cat "$stampck")" != "$CHECKOV_PINS" ]; then
  say "creating .venv-checkov ($CHECKOV_PINS)"
  [ -x .venv-checkov/bin/python ] || "$PY" -m venv .venv-checkov
  # shellcheck disable=SC2086 # the pins are separate words on purpose
  .venv-checkov/bin/python -m pip install -q $CHECKOV_PINS
  printf '%s' "$CHECKOV_PINS" > "$stampck"
fi
say "ready: .venv-checkov (checkov for tests/infra)"
