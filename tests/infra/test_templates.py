"""What the templates promise, read from their parsed trees: least privilege, Flex Consumption's
shape, the Graph permissions, and azd's files agreeing with main.bicep."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.infra.bicep_tree import GRAPH, INFRA, MAIN, ROOT, decorators, identifiers, parsed

MODULES = INFRA / "modules"

# Built-in role ids (Azure RBAC) and the roles they are.
ROLE_NAMES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
}


def module_params(path: Any, module: str) -> dict[str, Any]:
    params = parsed(path)["modules"][module]["config"]["params"]
    assert isinstance(params, dict)
    return params


def granted_roles(node: Any) -> set[str]:
    """Role names granted anywhere in an expression tree (by id, via the variables given)."""
    return {ROLE_NAMES[value] for value in identifiers(node) if value in ROLE_NAMES}


def test_every_registry_module_is_a_pinned_azure_verified_module() -> None:
    for path in sorted(INFRA.rglob("*.bicep")):
        for name, module in parsed(path).get("modules", {}).items():
            detail = module["detail"]
            if module["type"] == "local":
                continue
            assert detail["path"].startswith("avm/res/"), (path.name, name, detail)
            assert re.fullmatch(r"\d+\.\d+\.\d+", detail["tag"]), (path.name, name, detail["tag"])


def test_storage_refuses_shared_keys_and_grants_three_data_roles() -> None:
    tree = parsed(MODULES / "storage.bicep")
    params = module_params(MODULES / "storage.bicep", "account")
    assert params["allowSharedKeyAccess"] is False
    assert params["allowBlobPublicAccess"] is False
    assert granted_roles(tree["variables"]["roles"]) == {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
    }
    assert len(params["roleAssignments"]) == 3
    assert {item["principalId"] for item in params["roleAssignments"]} == {"principalId"}


def test_application_insights_takes_entra_tokens_only() -> None:
    tree = parsed(MODULES / "monitoring.bicep")
    params = module_params(MODULES / "monitoring.bicep", "appInsights")
    assert params["disableLocalAuth"] is True
    assert params["workspaceResourceId"]
    assert granted_roles(tree["variables"]) == {"Monitoring Metrics Publisher"}


def test_key_vault_is_rbac_mode_and_grants_only_secrets_user_to_the_reader() -> None:
    tree = parsed(MODULES / "keyvault.bicep")
    params = module_params(MODULES / "keyvault.bicep", "vault")
    assert params["enableRbacAuthorization"] is True
    assert "accessPolicies" not in params
    assert "roleAssignments" not in params, "no role on the vault itself"
    assert granted_roles(tree["variables"]) == {"Key Vault Secrets User"}
    secret_roles = params["secrets"]["config"]["roleAssignments"]
    assert [item["principalId"] for item in secret_roles] == ["readerPrincipalId"]


def test_the_function_app_is_flex_consumption_python_311_with_an_always_ready_http_instance() -> None:
    path = MODULES / "function-app.bicep"
    tree = parsed(path)
    assert module_params(path, "plan")["skuName"] == "FC1"
    site = module_params(path, "site")
    assert site["kind"] == "functionapp,linux"
    config = site["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    scale = config["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["alwaysReady"] == "alwaysReady"
    always_ready = tree["variables"]["alwaysReady"]["value"]["operator"]["operands"]["true_value"]
    assert always_ready == [{"name": "http", "instanceCount": "alwaysReadyHttpInstances"}]
    assert site["keyVaultAccessIdentityResourceId"] == "identityResourceId"
    assert site["configs"][0]["retainCurrentAppSettings"] is False
    main = parsed(MAIN)["parameters"]
    assert main["alwaysReadyHttpInstances"]["default"] == 1
    assert decorators(main["maximumInstanceCount"])["max_value"]["argument"] == 1000


def test_the_concurrency_arithmetic_in_main_bicep_is_host_json_s() -> None:
    """The comment that explains Graph's limit quotes host.json and the cap; they must not drift."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    per_instance = queues["batchSize"] + queues["newBatchThreshold"]
    cap = parsed(MAIN)["parameters"]["maximumInstanceCount"]["default"]
    text = MAIN.read_text()
    assert f"batchSize {queues['batchSize']} + newBatchThreshold {queues['newBatchThreshold']} = {per_instance}" in text
    assert f"{cap} instances x {per_instance} = {cap * per_instance}" in text


def test_the_outputs_give_graph_its_urls_and_the_bridge_its_firewall_addresses() -> None:
    outputs = parsed(MAIN)["outputs"]
    for name in ("FUNCTION_APP_HOST_NAME", "OUTBOUND_IP_ADDRESSES", "POSSIBLE_OUTBOUND_IP_ADDRESSES"):
        assert name in outputs
    assert outputs["GRAPH_NOTIFICATION_URL"]["value"].endswith("/api/notifications")
    assert outputs["GRAPH_LIFECYCLE_URL"]["value"].endswith("/api/lifecycle")
    text = MAIN.read_text()
    # The webhook URLs stored for the app are the routes function_app.py serves.
    app = (ROOT / "function_app.py").read_text()
    assert '@app.route(route="notifications"' in app and '@app.route(route="lifecycle"' in app
    assert "/api/notifications'" in text and "/api/lifecycle'" in text


def test_graph_bicep_grants_exactly_the_three_application_permissions() -> None:
    tree = parsed(GRAPH)
    assert "microsoftGraphV1" in tree["extensions"]
    roles = {item["value"]: item["id"] for item in tree["variables"]["graphAppRoles"]["value"]}
    assert roles == {
        "Mail.Read": "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
        "Calendars.ReadWrite": "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
        "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    }
    resources = tree["resources"]
    assert resources["grants"]["config"]["loop_type"]["detail"]["array_name"] == "grantedRoles"
    # With tenantWideMailboxAccess=false only User.Read.All stays granted in Entra (Exchange scopes the rest).
    granted = tree["variables"]["grantedRoles"]["value"]["function"]
    assert granted["type"] == "filter"
    assert {"tenantWideMailboxAccess", "User.Read.All"} <= set(identifiers(granted))
    assert resources["grants"]["type"] == "Microsoft.Graph/appRoleAssignedTo"
    assert resources["grants"]["api_version"] == "v1.0"
    assert resources["graph"]["existing"] is True
    assert resources["graph"]["config"]["appId"] == "graphAppId"
    assert tree["variables"]["graphAppId"]["value"] == "00000003-0000-0000-c000-000000000000"
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    assert config["extensions"]["microsoftGraphV1"].startswith(
        "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:"
    )


def test_azure_yaml_deploys_the_api_service_with_main_bicep() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert config["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    hook = config["hooks"]["postdeploy"]["run"]
    assert (ROOT / hook).is_file()
    tags = parsed(MODULES / "function-app.bicep")["modules"]["site"]["config"]["params"]["tags"]
    assert tags["function"]["parameters"]["arg_2"] == {"'azd-service-name'": "api"}


def test_main_parameters_json_names_real_parameters_and_covers_the_required_ones() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parsed(MAIN)["parameters"]
    assert set(parameters) <= set(declared), sorted(set(parameters) - set(declared))
    required = {name for name, item in declared.items() if "default" not in item}
    assert required <= set(parameters), sorted(required - set(parameters))
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    for name, item in parameters.items():
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", item["value"]), (name, item["value"])
