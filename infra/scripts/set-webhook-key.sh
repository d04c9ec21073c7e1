#!/bin/sh
# azd postdeploy hook: sets the host key "graph" of the Function App to CRM_WEBHOOK_KEY, the key
# main.bicep put into the webhook URLs it stored in Key Vault (secrets crm-notification-url and
# crm-lifecycle-url). Graph calls /api/notifications and /api/lifecycle with ?code=<that key>.
# Needs the Azure CLI signed in (az login) to the subscription azd deploys to.
set -eu

: "${AZURE_RESOURCE_GROUP:?set by azd for a resource-group deployment}"
: "${AZURE_FUNCTION_APP_NAME:?an output of infra/main.bicep}"
: "${CRM_WEBHOOK_KEY:?azd env set CRM_WEBHOOK_KEY <32+ random characters> (docs/DEPLOY.md)}"

az functionapp keys set \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "$AZURE_FUNCTION_APP_NAME" \
  --key-type functionKeys \
  --key-name graph \
  --key-value "$CRM_WEBHOOK_KEY" \
  --output none
echo "set-webhook-key: host key 'graph' set on $AZURE_FUNCTION_APP_NAME"
