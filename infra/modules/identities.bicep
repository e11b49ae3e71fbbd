// Two user-assigned identities with separate jobs, so each gets only the access its job needs:
// - the function identity runs the app (storage data, Batch data plane, telemetry);
// - the pool identity is attached to the Batch pools (pull images from ACR, read inputs, write outputs).
param location string
param tags object
param functionIdentityName string
param poolIdentityName string

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: functionIdentityName
  location: location
  tags: tags
}

resource poolIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: poolIdentityName
  location: location
  tags: tags
}

output functionIdentityId string = functionIdentity.id
output functionIdentityClientId string = functionIdentity.properties.clientId
output functionIdentityPrincipalId string = functionIdentity.properties.principalId
output poolIdentityId string = poolIdentity.id
output poolIdentityClientId string = poolIdentity.properties.clientId
output poolIdentityPrincipalId string = poolIdentity.properties.principalId
