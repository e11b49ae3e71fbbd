#!/bin/sh
# azd predeploy hook: `eventbatch images check` on the pipelines about to be deployed, before the app ships.
#
# It reads each pipeline image's config from the registry (az login / azd auth: an Entra ID token exchanged for an
# ACR token; the deploying user has AcrPush on the registry, which includes pull) and applies the image rules
# (shared/image_rules.py). A failed rule stops the deployment. The facts it read are written to image-check.json
# beside pipelines.yaml, which is deployed with the app: at start-up the app refuses a pipeline whose image fails
# a rule (no registry call from the app).
#
# Skippable: EVENTBATCH_SKIP_IMAGE_CHECK=true skips it. A registry that cannot be reached from here (network rules,
# private endpoint, no sign-in) is reported and skipped (exit 3 of the check), and then the app decides only the
# rules that need no image (untagged-image, relative-command, relative-input).
# POSIX sh (macOS /bin/sh is bash 3.2 in POSIX mode; Linux dash).
set -eu
cd "$(dirname "$0")/../.."
if [ "${EVENTBATCH_SKIP_IMAGE_CHECK:-false}" = "true" ]; then
  echo "predeploy: EVENTBATCH_SKIP_IMAGE_CHECK=true, not checking the pipeline images"
  exit 0
fi
py=.venv/bin/python
[ -x "$py" ] || py=python3
# pipelines.yaml's ${REGISTRY_SERVER} is the registry's login server (an azd output as AZURE_CONTAINER_REGISTRY_ENDPOINT).
REGISTRY_SERVER=${REGISTRY_SERVER:-${AZURE_CONTAINER_REGISTRY_ENDPOINT:-}}
export REGISTRY_SERVER
status=0
out=${EVENTBATCH_IMAGE_CHECK_OUT:-image-check.json}
"$py" -m devstack.cli images check --env --skip-unreachable --write "$out" || status=$?
case "$status" in
  0) echo "predeploy: images check passed (image-check.json goes with the app)" ;;
  3) echo "predeploy: a registry was not reachable from here; the image check was SKIPPED for it (the app checks" \
          "only what needs no image). Re-run 'azd hooks run predeploy' once it is reachable." ;;
  *) echo "predeploy: images check failed (above). Fix pipelines.yaml or the image, or set" \
          "EVENTBATCH_SKIP_IMAGE_CHECK=true to deploy anyway (the app will then refuse the failing pipelines at" \
          "start-up if image-check.json says so)" >&2
     exit 1 ;;
esac
