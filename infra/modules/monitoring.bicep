// Log Analytics workspace and a workspace-based Application Insights with local (key) auth
// disabled: telemetry is accepted only with an Entra token, which the app's identity gets through
// the Monitoring Metrics Publisher role granted here (and APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

@description('Azure region of the resources.')
param location string

@description('Tags for every resource.')
param tags object

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Principal (object) id of the identity that sends telemetry.')
param publisherPrincipalId string

@description('Days the workspace and Application Insights keep logs (the values Application Insights accepts).')
@allowed([
  30
  60
  90
  120
  180
  270
  365
  550
  730
])
param retentionDays int = 30

@description('Daily ingestion cap in GB; -1 for none.')
param dailyQuotaGb string = '-1'

// Monitoring Metrics Publisher (built-in role id).
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

module workspace 'br/public:avm/res/operational-insights/workspace:0.16.1' = {
  name: 'log-analytics'
  params: {
    name: workspaceName
    location: location
    tags: tags
    skuName: 'PerGB2018'
    dataRetention: retentionDays
    dailyQuotaGb: dailyQuotaGb
  }
}

module appInsights 'br/public:avm/res/insights/component:0.8.0' = {
  name: 'app-insights'
  params: {
    name: appInsightsName
    location: location
    tags: tags
    kind: 'web'
    applicationType: 'web'
    workspaceResourceId: workspace.outputs.resourceId
    disableLocalAuth: true
    retentionInDays: retentionDays
    roleAssignments: [
      {
        principalId: publisherPrincipalId
        principalType: 'ServicePrincipal'
        roleDefinitionIdOrName: monitoringMetricsPublisher
      }
    ]
  }
}

output connectionString string = appInsights.outputs.connectionString
output appInsightsName string = appInsights.outputs.name
output workspaceName string = workspace.outputs.name
