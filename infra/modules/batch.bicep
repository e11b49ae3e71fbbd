// Batch account (Entra ID only, BatchService allocation) and its container pools, one per pool in pipelines.yaml
// (via infra/pools.generated.json). The function identity gets Azure Batch Job Submitter on this account only.
param location string
param tags object
param batchAccountName string
@description('Pools generated from pipelines.yaml (infra/pools.generated.json, key "pools").')
param pools array
param poolIdentityId string
param registryServer string
param workerImage string
@description('Use spot (low-priority) nodes up to each pool\'s maxSpotNodes; false keeps dedicated nodes only.')
param useSpotNodes bool = true
@description('Deploy pools whose vmSize is an N-series GPU size (needs GPU core quota in the region).')
param deployGpuPools bool = false
param functionPrincipalId string

resource batch 'Microsoft.Batch/batchAccounts@2024-07-01' = {
  // checkov:skip=CKV_AZURE_76: Batch account data (job/task metadata) is encrypted with Microsoft-managed keys; customer-managed keys need a Key Vault and key rotation process that this template does not provision. Inputs and outputs live in Storage, not in Batch.
  // checkov:skip=CKV_AZURE_248: The data-plane endpoint stays public because the Flex Consumption app has no VNet in this template; every call needs an Entra ID token (allowedAuthenticationModes is AAD only, no shared keys).
  name: batchAccountName
  location: location
  tags: tags
  properties: {
    poolAllocationMode: 'BatchService'
    allowedAuthenticationModes: [
      'AAD'
    ]
    publicNetworkAccess: 'Enabled'
    encryption: {
      keySource: 'Microsoft.Batch'
    }
  }
}

// Azure Batch Job Submitter, the narrowest built-in role that creates jobs and tasks: data actions jobs/* and
// jobSchedules/* (create jobs, add/read/terminate tasks) plus pools/read (the app checks its pools exist). It cannot
// create, resize or delete pools (the deployment owns them; CREATE_MISSING_POOLS is false) nor change the account.
resource functionBatchJobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(batch.id, functionPrincipalId, '48e5e92e-a480-4e71-aa9c-2778f4c13781')
  scope: batch
  properties: {
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '48e5e92e-a480-4e71-aa9c-2778f4c13781')
  }
}

module batchPools 'batch-pool.bicep' = [for pool in pools: {
  name: 'pool-${pool.id}'
  params: {
    enabled: pool.gpu ? deployGpuPools : true
    batchAccountName: batch.name
    pool: pool
    poolIdentityId: poolIdentityId
    registryServer: registryServer
    workerImage: workerImage
    useSpotNodes: useSpotNodes
  }
}]

output name string = batch.name
output id string = batch.id
output accountEndpoint string = 'https://${batch.properties.accountEndpoint}'
