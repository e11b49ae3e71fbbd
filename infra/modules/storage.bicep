// The app's storage account: input/output containers, the request staging container (uploads), the task marker
// container, the queues, the runs table, the Functions deployment
// container and the Event Grid dead-letter container. Identity-only access: shared keys (and so account-key
// connection strings and account SAS) are disabled; nothing is public; TLS 1.2+ over HTTPS only.
param location string
param tags object
param storageAccountName string
@description('Replication. Inputs and outputs are transient pipeline data; choose Standard_GRS/GZRS for geo-redundancy.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param skuName string = 'Standard_LRS'
param inputContainerName string
param outputContainerName string
@description('Staging container of `eventbatch submit` (request files): the pool reads it, the deploying user writes it.')
param uploadsContainerName string
@description('Task completion markers (<jobId>/<taskId>), uploaded by every task with the pool identity.')
param markerContainerName string
param deploymentContainerName string
param deadLetterContainerName string
param queueNames array
param runsTableName string
param requestsQueueName string
@description('The control queue (cancel / retry messages): the deploying user may send to it.')
param controlQueueName string
@description('Principal of the function app identity: blob/queue/table data roles on this account.')
param functionPrincipalId string
@description('Principal of the Batch pool identity: reads and writes the containers of poolStorageAccess only.')
param poolPrincipalId string
@description('Containers the pool identity reads and writes, from pipelines.yaml (infra/pools.generated.json, key "poolStorageAccess"): {read: [...], write: [...]}, names or {{NAME}} tokens of the container parameters.')
param poolStorageAccess object
@description('Optional principal (the deploying user) allowed to upload inputs, send requests and read results.')
param deployerPrincipalId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Default network action Allow is required: the Flex Consumption app (no VNet in this template), Batch nodes (no VNet) and Event Grid reach the account over public endpoints. Access is identity-only (shared keys off, no public blobs), so the network rule is not the access control. Add a VNet + private endpoints to tighten (docs/deploy.md).
  // checkov:skip=CKV_AZURE_206: Replication is a parameter (skuName); LRS is the default because inputs and outputs are transient pipeline data that can be re-created, and GRS doubles the storage price. Set skuName=Standard_GRS/GZRS where geo-redundancy is needed.
  // checkov:skip=CKV_AZURE_43: The name is computed (prefix + uniqueString) and is valid at deploy time (3-24 lowercase letters and digits); checkov cannot evaluate it.
  // checkov:skip=CKV_AZURE_59: Public network access stays enabled for the same reason as CKV_AZURE_35 (no VNet in this template); every request must carry an Entra ID token.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource inputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: inputContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource outputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: outputContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource uploadsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: uploadsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource markerContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: markerContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for name in queueNames: {
  parent: queueService
  name: name
}]

resource requestsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: requestsQueueName
}

resource controlQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: controlQueueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource runsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: runsTableName
}

// --- function app identity: data roles on this account (AzureWebJobsStorage needs Blob Data Owner for the host's
// --- blob leases and containers; queues for triggers/outputs and poison queues; the runs table).
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
  scope: storage
  properties: {
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
  }
}

resource functionQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
  scope: storage
  properties: {
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
  }
}

resource functionTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
  scope: storage
  properties: {
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
  }
}

// --- pool identity: exactly the containers pipelines.yaml reads and writes (poolStorageAccess, generated by
// --- infra/generate_pools.py; tests/infra/test_access.py compares it with the pipelines): Storage Blob Data Reader
// --- on the containers pipelines take inputs from, Storage Blob Data Contributor on the output and marker
// --- containers with an ABAC condition that takes deleting and renaming blobs away (Batch only creates and
// --- overwrites them; a merge task reads the outputs, which the writer role includes). Nothing at account scope.
var containerTokens = {
  '{{INPUT_CONTAINER}}': inputContainerName
  '{{OUTPUT_CONTAINER}}': outputContainerName
  '{{UPLOADS_CONTAINER}}': uploadsContainerName
  '{{MARKER_CONTAINER}}': markerContainerName
}
var poolReadContainers = [for name in poolStorageAccess.read: contains(containerTokens, name) ? containerTokens[name] : name]
var poolWriteContainers = [for name in poolStorageAccess.write: contains(containerTokens, name) ? containerTokens[name] : name]
var noDeleteCondition = '((!(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete\'}) AND !(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action\'})))'

resource poolReadScopes 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for name in poolReadContainers: {
  parent: blobService
  name: name
}]

resource poolWriteScopes 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for name in poolWriteContainers: {
  parent: blobService
  name: name
}]

resource poolReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in poolReadContainers: {
  name: guid(poolReadScopes[i].id, poolPrincipalId, '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  scope: poolReadScopes[i]
  properties: {
    principalId: poolPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  }
  dependsOn: [
    inputContainer
    outputContainer
    uploadsContainer
    markerContainer
  ]
}]

resource poolWriters 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in poolWriteContainers: {
  name: guid(poolWriteScopes[i].id, poolPrincipalId, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: poolWriteScopes[i]
  properties: {
    principalId: poolPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
    condition: noDeleteCondition
    conditionVersion: '2.0'
  }
  dependsOn: [
    inputContainer
    outputContainer
    uploadsContainer
    markerContainer
  ]
}]

// --- optional: the deploying user can drop inputs, stage request files (`eventbatch submit --env`), send requests and
// --- read outputs and run records (docs/deploy.md).
resource deployerInputWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(inputContainer.id, deployerPrincipalId, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: inputContainer
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  }
}

resource deployerUploadsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(uploadsContainer.id, deployerPrincipalId, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: uploadsContainer
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  }
}

resource deployerOutputReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(outputContainer.id, deployerPrincipalId, '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  scope: outputContainer
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  }
}

resource deployerRequestSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(storage.id, requestsQueueName, deployerPrincipalId, 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a')
  scope: requestsQueue
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a')
  }
  dependsOn: [
    queues
  ]
}

resource deployerControlSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(storage.id, controlQueueName, deployerPrincipalId, 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a')
  scope: controlQueue
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a')
  }
  dependsOn: [
    queues
  ]
}

resource deployerRunsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(runsTable.id, deployerPrincipalId, '76199698-9eea-4c19-bc75-cec21354c6b6')
  scope: runsTable
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '76199698-9eea-4c19-bc75-cec21354c6b6')
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
