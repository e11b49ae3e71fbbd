// The function app on the Flex Consumption plan (Linux, Python 3.11). Every connection is identity-based: the
// app's user-assigned identity reaches Storage (AzureWebJobsStorage and the app's EVENTBATCH_STORAGE connection),
// Batch (BATCH_ACCOUNT_URL, no key) and Application Insights (Entra ID ingestion). No setting holds a key,
// a connection string with a key, or a SAS.
param location string
param tags object
param functionAppName string
param planName string
param identityId string
param identityClientId string
param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string
@description('App settings of the eventbatch app itself (names read by shared/settings.py and pipelines.yaml).')
param appSettings object
@description('Flex Consumption scale-out cap.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var blobServiceUri = endsWith(blobEndpoint, '/') ? substring(blobEndpoint, 0, length(blobEndpoint) - 1) : blobEndpoint
var queueServiceUri = endsWith(queueEndpoint, '/') ? substring(queueEndpoint, 0, length(queueEndpoint) - 1) : queueEndpoint
var tableServiceUri = endsWith(tableEndpoint, '/') ? substring(tableEndpoint, 0, length(tableEndpoint) - 1) : tableEndpoint

// Host storage and the app's storage connection: service URIs + managed identity (never an account key).
var identitySettings = {
  AzureWebJobsStorage__blobServiceUri: blobServiceUri
  AzureWebJobsStorage__queueServiceUri: queueServiceUri
  AzureWebJobsStorage__tableServiceUri: tableServiceUri
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  EVENTBATCH_STORAGE__blobServiceUri: blobServiceUri
  EVENTBATCH_STORAGE__queueServiceUri: queueServiceUri
  EVENTBATCH_STORAGE__tableServiceUri: tableServiceUri
  EVENTBATCH_STORAGE__credential: 'managedidentity'
  EVENTBATCH_STORAGE__clientId: identityClientId
  STORAGE_CONNECTION: 'EVENTBATCH_STORAGE'
  STORAGE_ACCOUNT_NAME: storageAccountName
  // DefaultAzureCredential in the app picks the user-assigned identity by client id (Batch, Storage SDK clients).
  AZURE_CLIENT_ID: identityClientId
  // The Application Insights connection string only routes telemetry: local auth is disabled on the component,
  // so ingestion needs the identity's Entra token (the authentication string below), not this string.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is not offered for the Flex Consumption plan in most regions; instances are serverless and re-created on demand.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_16: App Service authentication (Easy Auth) is for HTTP endpoints; this app has none that users call. Its triggers are queues, a timer and two Event Grid triggers, which Event Grid reaches as AzureFunction destinations through the platform (no key in any URL).
  // checkov:skip=CKV_AZURE_222: Public network access is needed for Event Grid to deliver BlobCreated events to the Event Grid trigger functions (no VNet/private endpoint in this template).
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by design (the work runs on Batch; the app only routes it); a minimum instance count does not apply to FC1.
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check feature and the app serves no HTTP health endpoint; the host's liveness is its trigger processing, watched in Application Insights.
  // checkov:skip=CKV_AZURE_78: FTP is off through the ftp/scm basicPublishingCredentialsPolicies below; siteConfig.ftpsState, which this check reads, is rejected on Flex Consumption (ARM error 51021).
  // checkov:skip=CKV_AZURE_18: siteConfig.http20Enabled does not apply to Flex Consumption, whose front ends the platform manages; the app serves no user-facing HTTP.
  // checkov:skip=CKV_AZURE_67: Same property as CKV_AZURE_18 (http20Enabled), which Flex Consumption does not take; the platform manages HTTP versions.
  // checkov:skip=CKV_AZURE_17: Client certificates are for user-facing HTTP endpoints; Event Grid cannot present one to the webhook.
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Flex Consumption: no ftpsState (ARM error 51021), http20Enabled, remoteDebuggingEnabled, scmMinTlsVersion or
    // linuxFxVersion; the runtime lives in functionAppConfig (tests/infra/test_flex_consumption.py cites the rules).
    siteConfig: {
      minTlsVersion: '1.2'
      cors: {
        allowedOrigins: []
      }
      appSettings: [for setting in items(union(identitySettings, appSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobServiceUri}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No basic-auth publishing: azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
