// Event Grid system topic on the storage account. The subscriptions that deliver BlobCreated events to the two Event
// Grid trigger functions are deployed after the code (blob-events-subscription.bicep, run by
// infra/hooks/postdeploy.sh): Event Grid checks that a destination function exists, which it does only once deployed.
// The topic's system identity may write undeliverable events to the dead-letter container, nothing else.
param location string
param tags object
param systemTopicName string
param storageAccountName string
param deadLetterContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
  resource blobService 'blobServices' existing = {
    name: 'default'
    resource deadLetter 'containers' existing = {
      name: deadLetterContainerName
    }
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Storage Blob Data Contributor on the dead-letter container only (dead-lettering with the topic's identity).
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::blobService::deadLetter.id, systemTopic.id, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: storage::blobService::deadLetter
  properties: {
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  }
}

output name string = systemTopic.name
