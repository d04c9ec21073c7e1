// Key Vault in RBAC mode holding the app's secrets. The app reads them through Key Vault
// references (@Microsoft.KeyVault(SecretUri=...)) with its user-assigned identity, which gets Key
// Vault Secrets User on each secret it reads and on nothing else: no access policies, no role on
// the vault itself, no role for anyone else (the deployment writes the secrets through ARM, which
// needs no data-plane role).

@description('Azure region of the resources.')
param location string

@description('Tags for every resource.')
param tags object

@description('Key Vault name (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param name string

@description('Principal (object) id of the identity that reads the secrets.')
param readerPrincipalId string

@description('Secret name to secret value; empty values are not stored.')
@secure()
param secretValues object

@description('Days a deleted vault or secret can be recovered.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

// Key Vault Secrets User (built-in role id): read secret contents, nothing else.
var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

module vault 'br/public:avm/res/key-vault/vault:0.14.0' = {
  name: 'key-vault'
  params: {
    name: name
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enableVaultForDeployment: false
    enableVaultForTemplateDeployment: false
    enableVaultForDiskEncryption: false
    secrets: [
      for secret in filter(items(secretValues), s => !empty(s.value)): {
        name: secret.key
        value: secret.value
        contentType: 'text/plain'
        roleAssignments: [
          {
            principalId: readerPrincipalId
            principalType: 'ServicePrincipal'
            roleDefinitionIdOrName: secretsUser
          }
        ]
      }
    ]
  }
}

@description('The vault URI, ending in a slash.')
output uri string = vault.outputs.uri
output name string = vault.outputs.name
