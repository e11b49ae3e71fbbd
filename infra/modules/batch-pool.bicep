// One container pool from infra/pools.generated.json. {{NAME}} tokens of the generated file are replaced here with
// deploy-time values (registry login server, worker image, pool identity).
@description('False for a GPU pool when deployGpuPools is off: the deployment then creates nothing.')
param enabled bool = true
param batchAccountName string
@description('One entry of infra/pools.generated.json "pools".')
param pool object
param poolIdentityId string
param registryServer string
param workerImage string
param useSpotNodes bool = true

resource batch 'Microsoft.Batch/batchAccounts@2024-07-01' existing = {
  name: batchAccountName
}

var autoScaleFormula = useSpotNodes || empty(pool.scale.formulaWithoutSpot) ? pool.scale.formula : pool.scale.formulaWithoutSpot

resource batchPool 'Microsoft.Batch/batchAccounts/pools@2024-07-01' = if (enabled) {
  parent: batch
  name: pool.id
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${poolIdentityId}': {}
    }
  }
  properties: {
    vmSize: pool.vmSize
    taskSlotsPerNode: pool.taskSlotsPerNode
    taskSchedulingPolicy: pool.taskSchedulingPolicy
    interNodeCommunication: 'Disabled'
    targetNodeCommunicationMode: 'Simplified'
    deploymentConfiguration: {
      virtualMachineConfiguration: {
        imageReference: pool.imageReference
        nodeAgentSkuId: pool.nodeAgentSkuId
        containerConfiguration: {
          type: 'DockerCompatible'
          containerImageNames: [for image in pool.containerImageNames: replace(replace(image, '{{REGISTRY_SERVER}}', registryServer), '{{WORKER_IMAGE}}', workerImage)]
          containerRegistries: [for server in pool.registryServers: {
            registryServer: replace(server, '{{REGISTRY_SERVER}}', registryServer)
            identityReference: {
              resourceId: poolIdentityId
            }
          }]
        }
      }
    }
    scaleSettings: pool.scale.mode == 'autoscale' ? {
      autoScale: {
        formula: autoScaleFormula
        evaluationInterval: pool.scale.evaluationInterval
      }
    } : {
      fixedScale: {
        targetDedicatedNodes: pool.scale.dedicatedNodes
        targetLowPriorityNodes: useSpotNodes ? pool.scale.spotNodes : 0
        nodeDeallocationOption: 'TaskCompletion'
      }
    }
    startTask: pool.startTask
  }
}

output id string = enabled ? batchPool.id : ''
