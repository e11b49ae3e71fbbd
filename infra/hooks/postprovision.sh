#!/bin/sh
# azd postprovision hook: build the sample worker image in the deployed registry (`az acr build`, so no local
# container engine is needed) right after provisioning, before the app is deployed.
#
# Why here: the pools prefetch WORKER_IMAGE when a node starts. The deployment creates them autoscaled at zero nodes
# (POOL_SCALE_MODE is autoscale on Azure; tests/infra checks every generated pool) and the formula grows them only
# when the app submits tasks, which needs the app, deployed after this hook. So the image exists before any node of a pool that prefetches it starts.
#
# Source: samples/images/worker/app (the scripts the local image runs) + infra/hooks/worker.Dockerfile, staged in a
# temporary folder; likewise samples/images/hello (the greet pipeline's ENTRYPOINT image) + infra/hooks/hello.Dockerfile. Skipped when the tag is already in the registry (set EVENTBATCH_REBUILD_IMAGE=true to rebuild)
# or when EVENTBATCH_SKIP_IMAGE_BUILD=true (your own image, pushed by hand: docs/deploy.md).
# POSIX sh (macOS /bin/sh is bash 3.2 in POSIX mode; Linux dash): no arrays, no mapfile, no [[ ]].
set -eu
cd "$(dirname "$0")/../.."

for name in AZURE_CONTAINER_REGISTRY_NAME WORKER_IMAGE; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "postprovision: $name is not set; run this through azd (azd provision / azd up)" >&2
    exit 1
  fi
done
if [ "${EVENTBATCH_SKIP_IMAGE_BUILD:-false}" = "true" ]; then
  echo "postprovision: EVENTBATCH_SKIP_IMAGE_BUILD=true, not building $WORKER_IMAGE"
  exit 0
fi
command -v az >/dev/null 2>&1 || { echo "postprovision: the Azure CLI (az) is required: https://aka.ms/azcli, then az login" >&2; exit 1; }

registry=$AZURE_CONTAINER_REGISTRY_NAME

# build_image IMAGE SOURCE_APP_DIR DOCKERFILE: az acr build of IMAGE (<login server>/<repository>:<tag>) unless the
# tag already exists.
build_image() {
  image=${1#*/}        # <registry>.azurecr.io/eventbatch/worker:1 -> eventbatch/worker:1
  repository=${image%:*}
  tag=${image##*:}
  [ "$tag" != "$image" ] || tag=latest
  if [ "${EVENTBATCH_REBUILD_IMAGE:-false}" != "true" ] && \
     az acr repository show -n "$registry" --image "$repository:$tag" -o none >/dev/null 2>&1; then
    echo "postprovision: $registry/$repository:$tag already exists (EVENTBATCH_REBUILD_IMAGE=true rebuilds it)"
    return 0
  fi
  context=$(mktemp -d "${TMPDIR:-/tmp}/eventbatch-$(basename "$repository").XXXXXX")
  cp -R "$2" "$context/app"
  cp "$3" "$context/Dockerfile"
  echo "postprovision: building $repository:$tag in registry $registry (az acr build, linux/amd64)"
  status=0
  az acr build --registry "$registry" --image "$repository:$tag" --platform linux/amd64 \
    --file "$context/Dockerfile" --output none "$context" || status=$?
  rm -rf "$context"
  [ "$status" -eq 0 ] || exit "$status"
  echo "postprovision: $1 is ready for the pools"
}

build_image "$WORKER_IMAGE" samples/images/worker/app infra/hooks/worker.Dockerfile
# The greet pipeline's image (ENTRYPOINT mode: pipelines.yaml image ${REGISTRY_SERVER}/eventbatch/hello:1).
build_image "${WORKER_IMAGE%%/*}/eventbatch/hello:1" samples/images/hello/app infra/hooks/hello.Dockerfile
