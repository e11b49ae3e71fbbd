#!/bin/sh
# azd preprovision hook: refuse to provision pools that drifted from pipelines.yaml.
# infra/pools.generated.json (what main.bicep deploys) must match what infra/generate_pools.py makes of
# pipelines.yaml now; if not, regenerate and commit it before `azd provision`. The check also warns when a pool's
# node agent is within a year of its end of support in Batch.
# POSIX sh (macOS /bin/sh is bash 3.2 in POSIX mode; Linux dash).
set -eu
cd "$(dirname "$0")/../.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "preprovision: PyYAML is missing for $py; run 'make setup' (or pip install PyYAML) so the pool check can run" >&2
  exit 1
fi
"$py" infra/generate_pools.py --check
