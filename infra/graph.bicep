// Microsoft Graph application permissions for CRMService, on the Microsoft Graph Bicep extension
// (bicepconfig.json pins it). Deploy it once per tenant, as an Entra administrator who may grant
// application permissions (Privileged Role Administrator, or Global Administrator):
//
//   az deployment group create -g <group> -f infra/graph.bicep -p appUniqueName=crmservice-<env>
//
// Deploying it IS the admin consent: each appRoleAssignedTo below is one granted application
// permission. Two ways to use it:
//   - managedIdentityClientId empty (default): creates an app registration and its service
//     principal and grants the permissions to it. Then GRAPH_AUTH=client_secret, GRAPH_CLIENT_ID =
//     the output clientId, and a client secret made with `az ad app credential reset` goes to
//     main.bicep's graphClientSecret (Key Vault). The extension does not create secrets.
//   - managedIdentityClientId = main.bicep's MANAGED_IDENTITY_CLIENT_ID output: grants the same
//     permissions to the app's user-assigned identity, no app registration, no secret. Then
//     GRAPH_AUTH=managed_identity.
//
// These grants are tenant-wide (every mailbox). docs/DEPLOY.md shows how to narrow Mail.Read to the
// CRM mailbox and Calendars.ReadWrite to the calendar-sync users with Exchange Online RBAC for
// Applications, then remove the two tenant-wide grants this file made, and redeploy it with
// tenantWideMailboxAccess=false so that it does not grant them again.

extension microsoftGraphV1

@description('Unique name of the app registration (the extension\'s idempotency key), e.g. crmservice-prod.')
param appUniqueName string = 'crmservice'

@description('Display name of the app registration.')
param appDisplayName string = 'CRMService for Azure'

@description('Client id of the user-assigned identity to grant the permissions to instead of an app registration; empty to create an app registration.')
param managedIdentityClientId string = ''

@description('false once Exchange Online RBAC for Applications scopes Mail.Read and Calendars.ReadWrite (docs/DEPLOY.md): then only User.Read.All is granted here. A deployment never removes a grant it made before; the procedure removes them.')
param tenantWideMailboxAccess bool = true

var useManagedIdentity = !empty(managedIdentityClientId)

// Microsoft Graph's application id, the same in every tenant.
var graphAppId = '00000003-0000-0000-c000-000000000000'

// Application permission (app role) ids of Microsoft Graph, as published in the Microsoft Graph
// permissions reference, https://learn.microsoft.com/graph/permissions-reference (the
// "Application" column of each permission). They are the same in every tenant.
var graphAppRoles = [
  {
    value: 'Mail.Read'
    id: '810c84a8-4a9e-49e6-bf7d-12d183f40d01' // read mail in all mailboxes: the CRM mailbox's delta and attachments
  }
  {
    value: 'Calendars.ReadWrite'
    id: 'ef54d2bf-783f-4e0f-bca1-3210c0444d99' // read and write calendars in all mailboxes: two-way calendar sync
  }
  {
    value: 'User.Read.All'
    id: 'df021288-bdef-4463-88db-98f22de89214' // read all users' full profiles: matching NET Genium users to Microsoft 365
  }
]

resource graph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

resource app 'Microsoft.Graph/applications@v1.0' = if (!useManagedIdentity) {
  uniqueName: appUniqueName
  displayName: appDisplayName
  signInAudience: 'AzureADMyOrg'
  // The permissions the app asks for (what the portal lists); the grants below give them.
  requiredResourceAccess: [
    {
      resourceAppId: graphAppId
      resourceAccess: [
        for role in graphAppRoles: {
          id: role.id
          type: 'Role'
        }
      ]
    }
  ]
}

resource appPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = if (!useManagedIdentity) {
  appId: app.appId
}

resource identityPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' existing = if (useManagedIdentity) {
  appId: managedIdentityClientId
}

// The permissions granted in Entra: all three, or User.Read.All alone once Exchange scopes the others.
var grantedRoles = filter(graphAppRoles, role => tenantWideMailboxAccess || role.value == 'User.Read.All')

// The admin consent: one app role assignment per permission, on Microsoft Graph's service principal.
resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for role in grantedRoles: {
    resourceId: graph.id
    appRoleId: role.id
    principalId: useManagedIdentity ? identityPrincipal.id : appPrincipal.id
  }
]

@description('GRAPH_CLIENT_ID for the app (main.bicep\'s graphClientId).')
output clientId string = useManagedIdentity ? managedIdentityClientId : app.appId

@description('Object id of the service principal the permissions were granted to (New-ServicePrincipal -ObjectId in docs/DEPLOY.md).')
output servicePrincipalObjectId string = useManagedIdentity ? identityPrincipal.id : appPrincipal.id
