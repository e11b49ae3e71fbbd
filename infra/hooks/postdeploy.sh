#!/usr/bin/env bash
# azd postdeploy hook: subscribe the blob trigger to BlobCreated events of the input container.
#
# Why after deploy: the Event Grid webhook URL carries the host's blobs_extension system key, which the Functions
# host creates only when the blob trigger (source=EventGrid) has started. This script waits for that key to exist
# (it never reads or prints it), then deploys infra/modules/blob-events-subscription.bicep, which reads the key with
# listKeys inside ARM. Idempotent: re-running updates the same subscription.
#
# Needs the Azure CLI logged in to the same subscription as azd (`az login`); azd passes its environment values
# (AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME, ...) to hooks. Optional: BLOB_TRIGGER_FUNCTION_NAME when the
# app has several blob triggers.
set -euo pipefail
cd "$(dirname "$0")/../.."

need() { [ -n "${!1:-}" ] || { echo "postdeploy: $1 is not set; run this through azd (azd deploy / azd up)" >&2; exit 1; }; }
for name in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_STORAGE_ACCOUNT_NAME EVENTGRID_SYSTEM_TOPIC_NAME \
            INPUT_CONTAINER DEADLETTER_CONTAINER; do
  need "$name"
done
command -v az >/dev/null || { echo "postdeploy: the Azure CLI (az) is required: https://aka.ms/azcli, then az login" >&2; exit 1; }

rg=$AZURE_RESOURCE_GROUP
app=$AZURE_FUNCTION_APP_NAME

# Wake the host: a Flex Consumption app starts on demand, and the key appears once its triggers are indexed.
host=$(az functionapp show -g "$rg" -n "$app" --query defaultHostName -o tsv)
fn=${BLOB_TRIGGER_FUNCTION_NAME:-}
for attempt in $(seq 1 30); do
  curl -s -o /dev/null --max-time 20 "https://$host/" || true
  if [ -z "$fn" ]; then
    # Names of the functions with a blobTrigger binding ("<app>/<function>").
    mapfile -t found < <(az functionapp function list -g "$rg" -n "$app" \
      --query "[?config.bindings[?type=='blobTrigger']].name" -o tsv 2>/dev/null | sed 's#.*/##')
    if [ "${#found[@]}" -gt 1 ]; then
      echo "postdeploy: several blob triggers (${found[*]}); set BLOB_TRIGGER_FUNCTION_NAME (azd env set ...)" >&2
      exit 1
    fi
    [ "${#found[@]}" -eq 1 ] && fn=${found[0]}
  fi
  has_key=$(az functionapp keys list -g "$rg" -n "$app" --query "systemKeys.blobs_extension != null" -o tsv \
    2>/dev/null || echo false)
  if [ -n "$fn" ] && [ "$has_key" = "true" ]; then
    break
  fi
  if [ "$attempt" = 30 ]; then
    echo "postdeploy: after 10 minutes the app shows no blob trigger function or no blobs_extension key;" \
         "check the deployment logs (az functionapp log deployment show -g $rg -n $app) and re-run" \
         "'azd hooks run postdeploy'" >&2
    exit 1
  fi
  echo "postdeploy: waiting for the blob trigger and its blobs_extension key (attempt $attempt/30)"
  sleep 20
done

echo "postdeploy: subscribing $app/$fn to BlobCreated in container $INPUT_CONTAINER"
az deployment group create -g "$rg" --name blob-events-subscription \
  --template-file infra/modules/blob-events-subscription.bicep \
  --parameters systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" functionAppName="$app" \
               blobTriggerFunctionName="$fn" inputContainerName="$INPUT_CONTAINER" \
               storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" deadLetterContainerName="$DEADLETTER_CONTAINER" \
  --output none
echo "postdeploy: Event Grid subscription ready"
