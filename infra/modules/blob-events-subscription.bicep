// Event Grid subscriptions: BlobCreated in the input container -> the Event Grid trigger of the inputs (blob_intake),
// and BlobCreated in the marker container -> the task_marker Event Grid trigger. The destination is the function
// itself (endpointType AzureFunction, its resource id): Event Grid delivers through the Functions platform, so no key
// is read, passed or stored anywhere. Deployed by infra/hooks/postdeploy.sh after `azd deploy`, because Event Grid
// validates that the destination function exists, which it does only once the code is deployed and indexed.
//
// Only the storage APIs that fire once the data is fully committed raise a run: CopyBlob, PutBlob, PutBlockList and
// FlushWithClose (Microsoft's guidance for BlobCreated: https://learn.microsoft.com/azure/storage/blobs/
// storage-blob-event-overview#practices-for-consuming-events). Other APIs (a Data Lake create before its flush, for
// example) can raise BlobCreated for a blob that is not complete yet, and each ETag would become its own run
// (shared/blob_events.py checks the same list again).
targetScope = 'resourceGroup'

param systemTopicName string
param functionAppName string
@description('Name of the Event Grid trigger function of the inputs in function_app.py.')
param intakeFunctionName string = 'blob_intake'
@description('Name of the Event Grid trigger function of the task completion markers.')
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
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/${intakeFunctionName}'
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
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/${markerFunctionName}'
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
