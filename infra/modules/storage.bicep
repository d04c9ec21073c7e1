// The storage account behind the Functions host (AzureWebJobsStorage), the app's tables and queues,
// and the Flex Consumption deployment container. Shared keys are off: every client, the host's
// included, signs in with the user-assigned identity.
//
// Roles of that identity, each needed and none wider:
// - Storage Blob Data Owner: the host keeps its keys, timer singleton locks and leases in blobs
//   (Owner, not Contributor, is what the Functions documentation asks for AzureWebJobsStorage with
//   an identity), and the platform reads the app package from the deployment container.
// - Storage Queue Data Contributor: queue triggers and outputs (capture-tasks, lifecycle and
//   calendar queues, their poison queues) and the app's own delayed re-queues.
// - Storage Table Data Contributor: the app's state (CaptureLedger, SyncCursors, MailboxLeases,
//   QueueFailures, ...) and the host's diagnostic events.
// No Storage Account Contributor: nothing here manages the account itself.

@description('Azure region of the resources.')
param location string

@description('Tags for every resource.')
param tags object

@description('Storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Blob container the platform deploys the app package from.')
param deploymentContainerName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

module account 'br/public:avm/res/storage/storage-account:0.33.0' = {
  name: 'storage-account'
  params: {
    name: name
    location: location
    tags: tags
    kind: 'StorageV2'
    skuName: 'Standard_LRS'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        {
          name: deploymentContainerName
          publicAccess: 'None'
        }
      ]
    }
    queueServices: {}
    tableServices: {}
    roleAssignments: [
      {
        principalId: principalId
        principalType: 'ServicePrincipal'
        roleDefinitionIdOrName: roles.blobDataOwner
      }
      {
        principalId: principalId
        principalType: 'ServicePrincipal'
        roleDefinitionIdOrName: roles.queueDataContributor
      }
      {
        principalId: principalId
        principalType: 'ServicePrincipal'
        roleDefinitionIdOrName: roles.tableDataContributor
      }
    ]
  }
}

output name string = account.outputs.name
output resourceId string = account.outputs.resourceId
output blobEndpoint string = 'https://${account.outputs.name}.blob.${environment().suffixes.storage}'
output queueEndpoint string = 'https://${account.outputs.name}.queue.${environment().suffixes.storage}'
output tableEndpoint string = 'https://${account.outputs.name}.table.${environment().suffixes.storage}'
