// Event Grid subscriptions: BlobCreated in the input container -> the blob trigger of the inputs (blob_intake), and
// BlobCreated in the marker container -> the task_marker trigger (both source EventGrid). Deployed by
// infra/hooks/postdeploy.sh after `azd deploy`, because the webhook URL carries the host's blobs_extension system
// key, which the Functions host creates when a blob trigger function first starts.
// The key is read here with listKeys (it never passes through a parameter, a file or a log).
//
// Only the storage APIs that fire once the data is fully committed raise a run: CopyBlob, PutBlob, PutBlockList and
// FlushWithClose (Microsoft's guidance for BlobCreated: https://learn.microsoft.com/azure/storage/blobs/
// storage-blob-event-overview#practices-for-consuming-events). Other APIs (a Data Lake create before its flush, for
// example) can raise BlobCreated for a blob that is not complete yet, and each ETag would become its own run.
targetScope = 'resourceGroup'

param systemTopicName string
param functionAppName string
@description('Name of the blob-trigger function of the inputs in function_app.py (the function\'s name).')
param blobTriggerFunctionName string = 'blob_intake'
@description('Name of the blob-trigger function of the task completion markers.')
param markerFunctionName string = 'task_marker'
param inputContainerName string
param markerContainerName string = 'markers'
param storageAccountName string
param deadLetterContainerName string
param subscriptionName string = 'input-blob-created'
param markerSubscriptionName string = 'task-markers-created'

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

var blobsExtensionKey = listKeys('${functionApp.id}/host/default', '2024-04-01').systemKeys.blobs_extension
var webhookUrl = 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${blobTriggerFunctionName}&code=${blobsExtensionKey}'
var markerWebhookUrl = 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${markerFunctionName}&code=${blobsExtensionKey}'
// BlobCreated only from the APIs that commit a whole blob (see the header).
var completeBlobApis = {
  operatorType: 'StringIn'
  key: 'data.api'
  values: [
    'CopyBlob'
    'PutBlob'
    'PutBlockList'
    'FlushWithClose'
  ]
}

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: subscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${inputContainerName}/blobs/'
      isSubjectCaseSensitive: true
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        completeBlobApis
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

resource markerCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: markerSubscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: markerWebhookUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${markerContainerName}/blobs/'
      isSubjectCaseSensitive: true
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        completeBlobApis
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output subscriptionName string = blobCreated.name
output markerSubscriptionName string = markerCreated.name
