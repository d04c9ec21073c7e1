// CRMService for Azure: everything one deployment needs, in one resource group.
//
//   azd up                                   (azure.yaml; parameters from main.parameters.json)
//   az deployment group create -g <group> -f infra/main.bicep -p infra/main.parameters.json ...
//
// Every app setting crm_core/domain/settings.py reads is set below under the name Settings reads
// (CRM_MAILBOX is crmMailbox here, docs/DESIGN.md section 2); tests/infra checks both lists match.
// Secrets (the NET Genium API key, the Graph client secret, the webhook URLs with their function
// key, the optional NET Genium database URL) go to Key Vault and reach the app as Key Vault
// references; no secret is an output and none is written into an app setting in clear.
//
// Graph permissions are granted by infra/graph.bicep (a separate deployment: it needs an Entra
// administrator, this one does not). docs/DEPLOY.md has the whole procedure.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Deployment

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME); part of every resource name.')
param environmentName string

@description('Azure region (azd: AZURE_LOCATION).')
param location string = resourceGroup().location

@description('Most Function App instances (Flex Consumption accepts 40 to 1000). Graph\'s per-mailbox limit does not depend on it: see "Scale and Graph\'s limit" below.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of one Function App instance in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances for the HTTP group (notifications, lifecycle, health, calendar/activity).')
@minValue(0)
@maxValue(10)
param alwaysReadyHttpInstances int = 1

@description('Direct mode: resource id of a subnet delegated to Microsoft.App/environments, so the app reaches the NET Genium database (or bridge) over a private network. Empty: no VNet integration.')
param virtualNetworkSubnetId string = ''

@description('Days a deleted Key Vault or secret can be recovered (7..90).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteDays int = 90

@description('Days Log Analytics and Application Insights keep logs.')
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
param logRetentionDays int = 30

@description('Daily Log Analytics ingestion cap in GB; -1 for none.')
param logDailyQuotaGb string = '-1'

@description('The function key Graph calls the webhooks with (?code=...): 32 or more characters, generated once per environment (docs/DEPLOY.md). It is put on the host by the postdeploy hook and into the webhook URLs in Key Vault.')
@secure()
@minLength(32)
param webhookKey string

// ---------------------------------------------------------------------------------------------
// App settings (crm_core/domain/settings.py): the CRM mailbox and capture

@description('CRM_MAILBOX: the e-mail address of the CRM mailbox, e.g. crm@company.example.')
param crmMailbox string

@description('CRM_ORDER_KEYWORDS: comma-separated order keywords, letters only.')
param crmOrderKeywords string = 'Order'

@description('CRM_EXCLUDED_ADDRESSES: comma-separated addresses or @domains that never count as participants.')
param crmExcludedAddresses string = ''

@description('CRM_SUBSCRIPTION_MINUTES: minutes a mail subscription lives (60..10080).')
@minValue(60)
@maxValue(10080)
param crmSubscriptionMinutes int = 10000

@description('CRM_ATTACHMENT_MAX_BYTES: larger attachments are not stored.')
@minValue(0)
@maxValue(157286400)
param crmAttachmentMaxBytes int = 10485760

@description('CRM_INCLUDE_INLINE_ATTACHMENTS: store inline images as attachments too.')
param crmIncludeInlineAttachments bool = false

@description('CRM_INITIAL_SYNC_DAYS: days of mail a new delta round reads back (0..3650).')
@minValue(0)
@maxValue(3650)
param crmInitialSyncDays int = 30

@description('CRM_RUN_BUDGET_SECONDS: seconds one capture run reads before it queues its continuation (10..3600); keep it under host.json\'s functionTimeout (5 minutes).')
@minValue(10)
@maxValue(3600)
param crmRunBudgetSeconds int = 180

@description('CRM_MAX_BODY_CHARS: characters of a body that are stored.')
@minValue(10000)
@maxValue(50000000)
param crmMaxBodyChars int = 1000000

// ---------------------------------------------------------------------------------------------
// App settings: Microsoft Graph

@description('GRAPH_AUTH: client_secret (an app registration from graph.bicep, its secret in Key Vault), certificate, or managed_identity (the app\'s user-assigned identity, no secret at all).')
@allowed([
  'client_secret'
  'certificate'
  'managed_identity'
])
param graphAuth string = 'client_secret'

@description('GRAPH_TENANT_ID: the Microsoft Entra tenant id.')
param graphTenantId string = tenant().tenantId

@description('GRAPH_CLIENT_ID: the app registration\'s client id (graph.bicep\'s output). Empty with managed_identity: the user-assigned identity\'s client id.')
param graphClientId string = ''

@description('GRAPH_CLIENT_SECRET: the app registration\'s client secret (graphAuth client_secret); stored in Key Vault.')
@secure()
param graphClientSecret string = ''

@description('GRAPH_CERTIFICATE_PATH: the path of the app registration\'s certificate (graphAuth certificate).')
param graphCertificatePath string = ''

@description('GRAPH_BASE_URL: the Microsoft Graph base URL.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

// ---------------------------------------------------------------------------------------------
// App settings: NET Genium

@description('NETGENIUM_BASE_URL: the NET Genium record API (the bridge) base URL, https. Required unless netgeniumDatabaseUrl is given.')
param netgeniumBaseUrl string = ''

@description('NETGENIUM_API_KEY: the NET Genium record API key (needed with netgeniumBaseUrl, not in direct mode); stored in Key Vault.')
@secure()
param netgeniumApiKey string = ''

@description('NETGENIUM_API_KEY_HEADER: the header that carries the API key.')
param netgeniumApiKeyHeader string = 'X-Api-Key'

@description('NETGENIUM_SCHEMA_MAP: the path of the schema map file; empty for the shipped defaults.')
param netgeniumSchemaMap string = ''

@description('NETGENIUM_DATABASE_URL (direct mode, instead of NETGENIUM_BASE_URL): a SQLAlchemy URL with a password, stored in Key Vault and set only when given. Pair it with virtualNetworkSubnetId.')
@secure()
param netgeniumDatabaseUrl string = ''

@description('NETGENIUM_FILES_FOLDER (direct mode): the installation\'s files folder when file columns keep file names; empty when the bytes are in the database.')
param netgeniumFilesFolder string = ''

// ---------------------------------------------------------------------------------------------
// App settings: calendar sync

@description('SYNC_DAYS_BACK: days back (0..3650).')
@minValue(0)
@maxValue(3650)
param syncDaysBack int = 30

@description('SYNC_DAYS_AHEAD: days ahead (1..3650).')
@minValue(1)
@maxValue(3650)
param syncDaysAhead int = 365

@description('CRM_CALENDAR_TIME_ZONE: the IANA time zone NET Genium keeps dates in.')
param crmCalendarTimeZone string = 'Europe/Prague'

@description('CRM_CALENDAR_PRIVATE_SUBJECT: the subject a private event shows in NET Genium.')
@minLength(1)
@maxLength(255)
param crmCalendarPrivateSubject string = 'Busy'

@description('CRM_CALENDAR_POLL_SCHEDULE: NCRONTAB schedule (six fields) of the NET Genium calendar poll.')
param crmCalendarPollSchedule string = '0 */2 * * * *'

@description('CRM_CALENDAR_USERS_SCHEDULE: NCRONTAB schedule (six fields) of refreshing who is in calendar sync.')
param crmCalendarUsersSchedule string = '0 */30 * * * *'

@description('CRM_CALENDAR_SYNC_PRIVATE_DETAILS: copy a private event\'s subject, body and location to NET Genium.')
param crmCalendarSyncPrivateDetails bool = false

// ---------------------------------------------------------------------------------------------
// Names

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'crmservice'
}
var names = {
  identity: 'id-crm-${resourceToken}'
  storage: 'stcrm${resourceToken}'
  keyVault: 'kv-crm-${resourceToken}'
  workspace: 'log-crm-${resourceToken}'
  appInsights: 'appi-crm-${resourceToken}'
  plan: 'plan-crm-${resourceToken}'
  functionApp: 'func-crm-${resourceToken}'
}
var deploymentContainerName = 'app-package'

// The host name is known before the app exists, so the webhook URLs can be stored first.
var functionHostName = '${names.functionApp}.azurewebsites.net'
var notificationUrl = 'https://${functionHostName}/api/notifications'
var lifecycleUrl = 'https://${functionHostName}/api/lifecycle'

// Key Vault secret names.
var secretNames = {
  netgeniumApiKey: 'netgenium-api-key'
  graphClientSecret: 'graph-client-secret'
  notificationUrl: 'crm-notification-url'
  lifecycleUrl: 'crm-lifecycle-url'
  netgeniumDatabaseUrl: 'netgenium-database-url'
}

// ---------------------------------------------------------------------------------------------
// Resources

module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    principalId: identity.outputs.principalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    publisherPrincipalId: identity.outputs.principalId
    retentionDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'key-vault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    readerPrincipalId: identity.outputs.principalId
    softDeleteRetentionInDays: keyVaultSoftDeleteDays
    // Empty values are not stored (the module filters them out).
    secretValues: {
      '${secretNames.netgeniumApiKey}': netgeniumApiKey
      '${secretNames.graphClientSecret}': (graphAuth == 'client_secret') ? graphClientSecret : ''
      '${secretNames.notificationUrl}': '${notificationUrl}?code=${webhookKey}'
      '${secretNames.lifecycleUrl}': '${lifecycleUrl}?code=${webhookKey}'
      '${secretNames.netgeniumDatabaseUrl}': netgeniumDatabaseUrl
    }
  }
}

// A Key Vault reference to a secret's current version (rotating a secret needs no redeployment).
var vaultUri = keyVault.outputs.uri
var refs = {
  netgeniumApiKey: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secretNames.netgeniumApiKey})'
  graphClientSecret: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secretNames.graphClientSecret})'
  notificationUrl: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secretNames.notificationUrl})'
  lifecycleUrl: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secretNames.lifecycleUrl})'
  netgeniumDatabaseUrl: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secretNames.netgeniumDatabaseUrl})'
}

// ---------------------------------------------------------------------------------------------
// App settings. tests/infra/test_settings_match.py reads this variable's keys (every object
// literal in it, both branches of a condition included) and fails when Settings has a field this
// lacks, or this has a name that is neither a Settings field nor in its platform allowlist.
//
// Not set in Azure, on purpose (the test names them too): AzureWebJobsStorage (a connection string
// with a key; the identity-based AzureWebJobsStorage__* settings replace it) and GRAPH_STATIC_TOKEN
// (the local Graph emulator's token; Settings refuses it for a non-loopback Graph URL).

var platformSettings = {
  // The Functions runtime major version. Flex Consumption takes the language and its version from
  // functionAppConfig.runtime, so FUNCTIONS_WORKER_RUNTIME must not be set.
  FUNCTIONS_EXTENSION_VERSION: '~4'
  // Host storage with the user-assigned identity, no key (the account refuses shared keys).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  // crm_core's own Table and Queue clients use DefaultAzureCredential, which picks the
  // user-assigned identity by this client id (azure-identity's documented variable).
  AZURE_CLIENT_ID: identity.outputs.clientId
  // Telemetry with an Entra token: Application Insights refuses the key alone (disableLocalAuth).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

var crmSettings = {
  CRM_MAILBOX: crmMailbox
  CRM_ORDER_KEYWORDS: crmOrderKeywords
  CRM_EXCLUDED_ADDRESSES: crmExcludedAddresses
  CRM_NOTIFICATION_URL: refs.notificationUrl
  CRM_LIFECYCLE_URL: refs.lifecycleUrl
  CRM_SUBSCRIPTION_MINUTES: string(crmSubscriptionMinutes)
  CRM_ATTACHMENT_MAX_BYTES: string(crmAttachmentMaxBytes)
  CRM_INCLUDE_INLINE_ATTACHMENTS: crmIncludeInlineAttachments ? 'true' : 'false'
  CRM_INITIAL_SYNC_DAYS: string(crmInitialSyncDays)
  CRM_RUN_BUDGET_SECONDS: string(crmRunBudgetSeconds)
  CRM_MAX_BODY_CHARS: string(crmMaxBodyChars)
  GRAPH_AUTH: graphAuth
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: (graphAuth == 'managed_identity' && empty(graphClientId)) ? identity.outputs.clientId : graphClientId
  GRAPH_CLIENT_SECRET: (graphAuth == 'client_secret' && !empty(graphClientSecret)) ? refs.graphClientSecret : ''
  GRAPH_CERTIFICATE_PATH: graphCertificatePath
  GRAPH_BASE_URL: graphBaseUrl
  NETGENIUM_BASE_URL: netgeniumBaseUrl
  NETGENIUM_API_KEY: empty(netgeniumApiKey) ? '' : refs.netgeniumApiKey
  NETGENIUM_FILES_FOLDER: netgeniumFilesFolder
  NETGENIUM_API_KEY_HEADER: netgeniumApiKeyHeader
  NETGENIUM_SCHEMA_MAP: netgeniumSchemaMap
  // Settings reads the storage account name to build its own Table and Queue clients.
  AzureWebJobsStorage__accountName: storage.outputs.name
  SYNC_DAYS_BACK: string(syncDaysBack)
  SYNC_DAYS_AHEAD: string(syncDaysAhead)
  CRM_CALENDAR_TIME_ZONE: crmCalendarTimeZone
  CRM_CALENDAR_PRIVATE_SUBJECT: crmCalendarPrivateSubject
  CRM_CALENDAR_POLL_SCHEDULE: crmCalendarPollSchedule
  CRM_CALENDAR_USERS_SCHEDULE: crmCalendarUsersSchedule
  CRM_CALENDAR_SYNC_PRIVATE_DETAILS: crmCalendarSyncPrivateDetails ? 'true' : 'false'
}

// Direct mode only: the database URL, set when given (a password, so a Key Vault reference).
var directModeSettings = empty(netgeniumDatabaseUrl) ? {} : { NETGENIUM_DATABASE_URL: refs.netgeniumDatabaseUrl }

var appSettings = union(platformSettings, crmSettings, directModeSettings)

// ---------------------------------------------------------------------------------------------
// Scale and Graph's limit
//
// Graph allows 4 concurrent requests per app per mailbox, counted across every instance. The
// bound that holds it is not the instance count but two mechanisms in the code:
//   - per process, crm_core.graph keeps at most 4 requests in flight per mailbox (a semaphore,
//     GraphOptions.mailbox_concurrency = 4);
//   - across processes, a lease in Table MailboxLeases lets one process at a time work on a
//     mailbox (capture and reconcile for the CRM mailbox, calendar sync for each user's mailbox);
//     a queue item that finds the lease taken goes back on the queue without spending an attempt.
// So the whole app sends at most 4 (per process) x 1 (processes holding the lease) = 4 concurrent
// requests to any one mailbox, for any maximumInstanceCount and any host.json batch size.
//
// What the cap and the batch settings do bound is the work in flight, i.e. the load on NET Genium
// and the bill: host.json lets one instance run batchSize 16 + newBatchThreshold 8 = 24 items of
// each queue at once, so at most 40 instances x 24 = 960 items of one queue run concurrently, and
// of the capture queue only the lease holder's items reach Graph; the others wait on the queue.
// Without the lease the cap could not be low enough: 4 requests x 2 instances would already be 8.
// 40 is the lowest cap Flex Consumption accepts in its templates (Azure-Samples'
// azure-functions-flex-consumption-samples declares maximumInstanceCount @minValue(40)).

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityResourceId: identity.outputs.resourceId
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}/${deploymentContainerName}'
    appSettings: appSettings
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    subnetResourceId: virtualNetworkSubnetId
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment; none is a secret)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOST_NAME string = functionApp.outputs.defaultHostName
@description('The URL Graph posts change notifications to; the function key (?code=) is in Key Vault, secret crm-notification-url.')
output GRAPH_NOTIFICATION_URL string = 'https://${functionApp.outputs.defaultHostName}/api/notifications'
@description('The URL Graph posts lifecycle notifications to; with its key in Key Vault, secret crm-lifecycle-url.')
output GRAPH_LIFECYCLE_URL string = 'https://${functionApp.outputs.defaultHostName}/api/lifecycle'
@description('Addresses the app connects out from, comma-separated: allow them in the NET Genium bridge\'s firewall.')
output OUTBOUND_IP_ADDRESSES string = functionApp.outputs.outboundIpAddresses
@description('Every address the app may connect out from, comma-separated (a superset of OUTBOUND_IP_ADDRESSES).')
output POSSIBLE_OUTBOUND_IP_ADDRESSES string = functionApp.outputs.possibleOutboundIpAddresses
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KEY_VAULT_NAME string = keyVault.outputs.name
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
