#!/bin/sh
# azd preprovision hook: refuse to provision pools that drifted from pipelines.yaml, and (when the registry exists)
# pipelines whose images fail `eventbatch images check`.
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

# The image check (`eventbatch images check`), when the registry exists already (a re-provision): on the first
# `azd provision` there is no registry and no image yet (postprovision builds it), so it is skipped, and the
# predeploy hook checks before the app is deployed. EVENTBATCH_SKIP_IMAGE_CHECK=true skips it here too.
REGISTRY_SERVER=${REGISTRY_SERVER:-${AZURE_CONTAINER_REGISTRY_ENDPOINT:-}}
if [ "${EVENTBATCH_SKIP_IMAGE_CHECK:-false}" = "true" ]; then
  echo "preprovision: EVENTBATCH_SKIP_IMAGE_CHECK=true, not checking the pipeline images"
elif [ -z "$REGISTRY_SERVER" ] || [ -z "${WORKER_IMAGE:-}" ]; then
  echo "preprovision: image check skipped: no registry yet (first provision); the predeploy hook runs it"
else
  export REGISTRY_SERVER
  status=0
  "$py" -m devstack.cli images check --env --skip-unreachable || status=$?
  case "$status" in
    0) ;;
    3) echo "preprovision: image check skipped: the registry $REGISTRY_SERVER is not reachable yet" ;;
    *) echo "preprovision: images check failed (above); fix it or set EVENTBATCH_SKIP_IMAGE_CHECK=true" >&2
       exit 1 ;;
  esac
fi
