// eventbatch on Azure (`azd up`): storage, the function app (Flex Consumption), Event Grid, Batch with container
// pools generated from pipelines.yaml, a container registry, managed identities and least-privilege roles.
// No keys anywhere: every service is reached with a managed identity (see docs/deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags all resources.')
param environmentName string

@minLength(1)
@description('Region for all resources (must offer Flex Consumption and your Batch VM sizes).')
param location string

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID): may push images, upload inputs, read outputs.')
param principalId string = ''

@description('Worker image repository and tag in the registry, e.g. eventbatch/worker:1 (pushed after provisioning).')
param workerImageName string = 'eventbatch/worker:1'

@description('Use spot (low-priority) Batch nodes up to each pool\'s maxSpotNodes.')
param useSpotNodes bool = true

@description('Deploy the GPU (N-series) pools of pipelines.yaml; needs GPU core quota for the Batch account.')
param deployGpuPools bool = false

@description('The Batch account\'s active job and schedule quota (Azure\'s default: 100; raise it after a quota increase). The app keeps its jobs under ACTIVE_JOB_QUOTA_SHARE of it.')
@minValue(1)
param batchActiveJobQuota int = 100

@description('Storage replication (see infra/modules/storage.bicep).')
param storageSku string = 'Standard_LRS'

@description('Container registry SKU.')
param registrySku string = 'Basic'

param inputContainerName string = 'input'
param outputContainerName string = 'output'
@description('Where `eventbatch submit` stages request files (its --staging-container default); not watched by the blob trigger.')
param uploadsContainerName string = 'uploads'
@description('Task completion markers: every Batch task writes <jobId>/<taskId> here; the task_marker trigger reads them.')
param markerContainerName string = 'markers'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-eventbatch-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var deadLetterContainerName = 'eventgrid-deadletter'
var queueNames = {
  requests: 'requests'
  submit: 'submit'
  rejected: 'rejected'
  completions: 'completions'
  failures: 'failures'
  check: 'taskcheck'
  control: 'control'
}
var runsTableName = 'runs'
// Generated from pipelines.yaml by infra/generate_pools.py (a test fails when it is out of date).
var pools = loadJsonContent('pools.generated.json', '$.pools')
// The containers those pipelines read and write: the pool identity's storage roles (modules/storage.bicep).
var poolStorageAccess = loadJsonContent('pools.generated.json', '$.poolStorageAccess')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  scope: rg
  params: {
    location: location
    tags: tags
    functionIdentityName: 'id-func-${resourceToken}'
    poolIdentityName: 'id-pool-${resourceToken}'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    functionPrincipalId: identities.outputs.functionIdentityPrincipalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    storageAccountName: 'st${resourceToken}'
    skuName: storageSku
    inputContainerName: inputContainerName
    outputContainerName: outputContainerName
    uploadsContainerName: uploadsContainerName
    markerContainerName: markerContainerName
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    queueNames: [
      queueNames.requests
      queueNames.submit
      queueNames.rejected
      queueNames.completions
      queueNames.failures
      queueNames.check
      queueNames.control
    ]
    requestsQueueName: queueNames.requests
    controlQueueName: queueNames.control
    runsTableName: runsTableName
    functionPrincipalId: identities.outputs.functionIdentityPrincipalId
    poolPrincipalId: identities.outputs.poolIdentityPrincipalId
    poolStorageAccess: poolStorageAccess
    deployerPrincipalId: principalId
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    location: location
    tags: tags
    registryName: 'cr${resourceToken}'
    sku: registrySku
    poolPrincipalId: identities.outputs.poolIdentityPrincipalId
    deployerPrincipalId: principalId
  }
}

module batch 'modules/batch.bicep' = {
  name: 'batch'
  scope: rg
  params: {
    location: location
    tags: tags
    batchAccountName: 'ba${resourceToken}'
    pools: pools
    poolIdentityId: identities.outputs.poolIdentityId
    registryServer: registry.outputs.loginServer
    workerImage: '${registry.outputs.loginServer}/${workerImageName}'
    useSpotNodes: useSpotNodes
    deployGpuPools: deployGpuPools
    functionPrincipalId: identities.outputs.functionIdentityPrincipalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    functionAppName: functionAppName
    planName: 'plan-${resourceToken}'
    identityId: identities.outputs.functionIdentityId
    identityClientId: identities.outputs.functionIdentityClientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    // Settings read by shared/settings.py and substituted into pipelines.yaml (${NAME}).
    appSettings: {
      BATCH_ACCOUNT_URL: batch.outputs.accountEndpoint
      BATCH_ACCOUNT_NAME: batch.outputs.name
      BATCH_ACCOUNT_RESOURCE_ID: batch.outputs.id // portal links in `eventbatch status RUN`
      BATCH_CLIENT_ID: identities.outputs.functionIdentityClientId
      BATCH_NODE_IDENTITY_RESOURCE_ID: identities.outputs.poolIdentityId
      POOL_IDENTITY_RESOURCE_ID: identities.outputs.poolIdentityId
      CREATE_MISSING_POOLS: 'false'
      // infra/ creates the queues, the runs table and the containers: a cold start spends no calls making them.
      CREATE_STORAGE_RESOURCES: 'false'
      REGISTRY_SERVER: registry.outputs.loginServer
      WORKER_IMAGE: '${registry.outputs.loginServer}/${workerImageName}'
      POOL_SCALE_MODE: 'autoscale'
      // pipelines.yaml's GPU pool says `enabled: ${DEPLOY_GPU_POOLS}`: the app takes work for it only when deployed.
      DEPLOY_GPU_POOLS: deployGpuPools ? 'true' : 'false'
      INPUT_CONTAINER: inputContainerName
      OUTPUT_CONTAINER: outputContainerName
      MARKER_CONTAINER: markerContainerName
      REQUESTS_QUEUE: queueNames.requests
      SUBMIT_QUEUE: queueNames.submit
      REJECTED_QUEUE: queueNames.rejected
      COMPLETIONS_QUEUE: queueNames.completions
      FAILURES_QUEUE: queueNames.failures
      CHECK_QUEUE: queueNames.check
      CONTROL_QUEUE: queueNames.control
      RUNS_TABLE: runsTableName
      BATCH_ACTIVE_JOB_QUOTA: string(batchActiveJobQuota)
      ACTIVE_JOB_QUOTA_SHARE: '0.8'
    }
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    location: location
    tags: tags
    systemTopicName: 'evgt-${resourceToken}'
    storageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
  }
}

// azd writes these to the environment (.azure/<env>/.env); docs/deploy.md and the postdeploy hook use them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_BATCH_ACCOUNT_NAME string = batch.outputs.name
output AZURE_BATCH_ACCOUNT_URL string = batch.outputs.accountEndpoint
output AZURE_BATCH_ACCOUNT_RESOURCE_ID string = batch.outputs.id
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output INPUT_CONTAINER string = inputContainerName
output OUTPUT_CONTAINER string = outputContainerName
output UPLOADS_CONTAINER string = uploadsContainerName
output MARKER_CONTAINER string = markerContainerName
output DEADLETTER_CONTAINER string = deadLetterContainerName
output REQUESTS_QUEUE string = queueNames.requests
output RUNS_TABLE string = runsTableName
output WORKER_IMAGE string = '${registry.outputs.loginServer}/${workerImageName}'
