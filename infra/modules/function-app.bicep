// The Function App on the Flex Consumption plan (Linux, Python 3.11): code deployed from a blob
// container read with the user-assigned identity, one always-ready instance for the HTTP group so
// Graph's webhook calls never wait for a cold start, an instance cap, and optional VNet
// integration. The app settings come from main.bicep (one object, checked by tests/infra).

@description('Azure region of the resources.')
param location string

@description('Tags for every resource.')
param tags object

@description('Function App name (also the first label of its host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityResourceId string

@description('URL of the blob container the platform deploys the app package from.')
param deploymentContainerUrl string

@description('The app settings, name to value (values are strings or Key Vault references).')
param appSettings object

@description('Most instances the app may scale out to (see docs/DEPLOY.md, "Scale and Graph\'s limit").')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of one instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Always-ready instances for the HTTP group (the webhooks); 0 lets them cold-start.')
@minValue(0)
@maxValue(10)
param alwaysReadyHttpInstances int

@description('Resource id of a subnet delegated to Microsoft.App/environments for VNet integration; empty for none.')
param subnetResourceId string

// One line: pycep-parser (the offline syntax check) reads no ternary that spans lines.
var alwaysReady = (alwaysReadyHttpInstances > 0) ? [{ name: 'http', instanceCount: alwaysReadyHttpInstances }] : []

module plan 'br/public:avm/res/web/serverfarm:0.7.0' = {
  name: 'flex-plan'
  params: {
    name: planName
    location: location
    tags: tags
    kind: 'functionapp'
    skuName: 'FC1'
    reserved: true
    zoneRedundant: false
  }
}

module site 'br/public:avm/res/web/site:0.24.0' = {
  name: 'function-app'
  params: {
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    kind: 'functionapp,linux'
    serverFarmResourceId: plan.outputs.resourceId
    httpsOnly: true
    clientAffinityEnabled: false
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identityResourceId
      ]
    }
    // Key Vault references resolve with this identity (it has Key Vault Secrets User on each secret).
    keyVaultAccessIdentityResourceId: identityResourceId
    virtualNetworkSubnetResourceId: empty(subnetResourceId) ? null : subnetResourceId
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReady
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    configs: [
      {
        name: 'appsettings'
        // The settings below are the whole set: a setting removed from Bicep is removed from the app.
        retainCurrentAppSettings: false
        properties: appSettings
      }
    ]
  }
}

// The site as deployed, for a property the module does not output (outputs are read after the
// module's deployments have finished).
resource deployed 'Microsoft.Web/sites@2024-04-01' existing = {
  name: name
}

output name string = site.outputs.name
output defaultHostName string = site.outputs.defaultHostname
output outboundIpAddresses string = site.outputs.outboundIpAddresses
output possibleOutboundIpAddresses string = deployed.properties.possibleOutboundIpAddresses
