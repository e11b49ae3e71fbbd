#!/bin/sh
# azd postdeploy hook: subscribe the two Event Grid trigger functions to BlobCreated events: blob_intake to the input
# container and task_marker to the task marker container (infra/modules/blob-events-subscription.bicep).
#
# Why after deploy: the subscriptions' destination is the function itself (endpointType AzureFunction), and Event
# Grid refuses a destination function that does not exist yet; the functions exist once the code is deployed and the
# host has indexed it. This script waits until both are listed with an eventGridTrigger binding, then deploys the
# template. No key is read or passed: Event Grid delivers to AzureFunction destinations through the platform.
# Idempotent: re-running updates the same subscriptions.
#
# Needs the Azure CLI logged in to the same subscription as azd (`az login`); azd passes its environment values
# (AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME, ...) to hooks. Optional: INTAKE_FUNCTION_NAME (default
# blob_intake) and MARKER_FUNCTION_NAME (default task_marker) when the functions are named otherwise.
# POSIX sh (macOS /bin/sh is bash 3.2 in POSIX mode; Linux dash): no arrays, no mapfile, no [[ ]].
set -eu
cd "$(dirname "$0")/../.."

for name in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_STORAGE_ACCOUNT_NAME EVENTGRID_SYSTEM_TOPIC_NAME \
            INPUT_CONTAINER MARKER_CONTAINER DEADLETTER_CONTAINER; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "postdeploy: $name is not set; run this through azd (azd deploy / azd up)" >&2
    exit 1
  fi
done
command -v az >/dev/null 2>&1 || { echo "postdeploy: the Azure CLI (az) is required: https://aka.ms/azcli, then az login" >&2; exit 1; }

rg=$AZURE_RESOURCE_GROUP
app=$AZURE_FUNCTION_APP_NAME
fn=${INTAKE_FUNCTION_NAME:-blob_intake}
marker_fn=${MARKER_FUNCTION_NAME:-task_marker}

# has_function NAME LIST: LIST holds one function name per line.
has_function() {
  printf '%s\n' "$2" | grep -qx "$1"
}

# Wake the host: a Flex Consumption app starts on demand, and its functions are listed once it has indexed them.
host=$(az functionapp show -g "$rg" -n "$app" --query defaultHostName -o tsv)
attempt=1
attempts=${POSTDEPLOY_ATTEMPTS:-30}
while :; do
  curl -s -o /dev/null --max-time 20 "https://$host/" || true
  # Names of the functions with an eventGridTrigger binding ("<app>/<function>" -> "<function>"), one per line.
  found=$(az functionapp function list -g "$rg" -n "$app" \
    --query "[?config.bindings[?type=='eventGridTrigger']].name" -o tsv 2>/dev/null | sed 's#.*/##' || true)
  if has_function "$fn" "$found" && has_function "$marker_fn" "$found"; then
    break
  fi
  if [ "$attempt" -ge "$attempts" ]; then
    echo "postdeploy: after $attempts attempts the app shows Event Grid triggers [$(printf '%s' "$found" | tr '\n' ' ')]" \
         "(expected $fn and $marker_fn); check the deployment logs" \
         "(az functionapp log deployment show -g $rg -n $app), set INTAKE_FUNCTION_NAME/MARKER_FUNCTION_NAME" \
         "if the functions are named otherwise, and re-run 'azd hooks run postdeploy'" >&2
    exit 1
  fi
  echo "postdeploy: waiting for the Event Grid triggers $fn and $marker_fn (attempt $attempt/$attempts)"
  attempt=$((attempt + 1))
  sleep "${POSTDEPLOY_POLL_SECONDS:-20}"
done

echo "postdeploy: subscribing $app/$fn to BlobCreated in $INPUT_CONTAINER and $app/$marker_fn in $MARKER_CONTAINER"
az deployment group create -g "$rg" --name blob-events-subscription \
  --template-file infra/modules/blob-events-subscription.bicep \
  --parameters systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" functionAppName="$app" \
               intakeFunctionName="$fn" markerFunctionName="$marker_fn" \
               inputContainerName="$INPUT_CONTAINER" markerContainerName="$MARKER_CONTAINER" \
               storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" deadLetterContainerName="$DEADLETTER_CONTAINER" \
  --output none
echo "postdeploy: Event Grid subscriptions ready"
