// Azure Container Registry for the worker images. No admin user, no anonymous pull (off unless set; the
// property exists only in preview API versions, so it is left out): the Batch pools pull with
// their user-assigned identity (AcrPull on this registry only); the deploying user may push (AcrPush).
param location string
param tags object
param registryName string
@allowed(['Basic', 'Standard', 'Premium'])
param sku string = 'Basic'
param poolPrincipalId string
param deployerPrincipalId string = ''

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: Public network access is needed because the Batch pools have no VNet in this template; pulls and pushes require an Entra ID token (admin user and anonymous pull are off).
  // checkov:skip=CKV_AZURE_163: Vulnerability scanning is Microsoft Defender for Containers, a subscription-level paid plan enabled outside this template.
  // checkov:skip=CKV_AZURE_166: Image quarantine needs the Premium SKU; only principals holding AcrPush (the deploying user) can add images.
  // checkov:skip=CKV_AZURE_233: Zone redundancy needs the Premium SKU; a registry outage delays new nodes only (running nodes hold prefetched images).
  name: registryName
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: false
    publicNetworkAccess: 'Enabled'
    networkRuleBypassOptions: 'AzureServices'
  }
}

// AcrPull for the pool identity: nodes prefetch the worker images at start-up and pull on task start.
resource poolAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, poolPrincipalId, '7f951dda-4ed3-4680-a7ca-43fe172d538d')
  scope: registry
  properties: {
    principalId: poolPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4680-a7ca-43fe172d538d')
  }
}

// AcrPush for the deploying user (optional), so `docker push` / `az acr build` work without the admin user.
resource deployerAcrPush 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(registry.id, deployerPrincipalId, '8311e382-0749-4cb8-b61a-304f252e45ec')
  scope: registry
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '8311e382-0749-4cb8-b61a-304f252e45ec')
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer
