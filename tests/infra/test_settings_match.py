"""The app settings declared in Bicep, and in local.settings.example.json, are the fields of Settings.

Settings' fields are read from the class itself (each field's alias, or its name in upper case, is
the app setting), so a field added to crm_core/domain/settings.py fails these tests until the
deployment and the example carry it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from crm_core.domain.settings import Settings, load_settings
from tests.infra.bicep_tree import LOCAL_SETTINGS_EXAMPLE, MAIN, app_settings, parsed, reads_property

# Settings the Functions platform, the Functions host or azure-identity read, not crm_core's
# Settings: allowed in Bicep beside Settings' own fields, and nothing else is.
PLATFORM_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION": "the Functions runtime version",
    "AzureWebJobsStorage__credential": "host storage through an identity",
    "AzureWebJobsStorage__clientId": "which user-assigned identity the host uses for storage",
    "AzureWebJobsStorage__blobServiceUri": "host storage, blob endpoint",
    "AzureWebJobsStorage__queueServiceUri": "host storage, queue endpoint (queue triggers)",
    "AzureWebJobsStorage__tableServiceUri": "host storage, table endpoint",
    "AZURE_CLIENT_ID": "DefaultAzureCredential's user-assigned identity (crm_core's own storage clients)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where telemetry goes",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry sent with an Entra token",
}

# Settings fields deliberately not set in Azure, and why.
NOT_IN_AZURE = {
    "AzureWebJobsStorage": "a connection string with a key; the AzureWebJobsStorage__* identity settings replace it",
    "GRAPH_STATIC_TOKEN": "the local Graph emulator's token; Settings refuses it for a non-loopback Graph URL",
}

# Core Tools' own setting, in local.settings.json only.
CORE_TOOLS_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME"}


def settings_names() -> dict[str, str]:
    """App setting name to Settings field name, for every field of Settings."""
    return {(field.alias or name.upper()): name for name, field in Settings.model_fields.items()}


def secret_settings() -> set[str]:
    names = settings_names()
    return {setting for setting, field in names.items() if Settings.model_fields[field].annotation is SecretStr}


def example_values() -> dict[str, str]:
    values = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())["Values"]
    assert isinstance(values, dict)
    return values


def _difference(label_a: str, a: set[str], label_b: str, b: set[str]) -> str:
    return f"in {label_a} only: {sorted(a - b)}; in {label_b} only: {sorted(b - a)}"


def test_settings_has_the_fields_these_tests_expect() -> None:
    """The reading of Settings works: the well-known fields are there, by their app setting names."""
    names = settings_names()
    assert {"CRM_MAILBOX", "NETGENIUM_API_KEY", "AzureWebJobsStorage", "AzureWebJobsStorage__accountName"} <= set(names)
    assert {"CRM_NOTIFICATION_URL", "NETGENIUM_API_KEY", "GRAPH_CLIENT_SECRET"} <= secret_settings()


def test_bicep_sets_every_setting_and_nothing_unknown() -> None:
    declared = set(app_settings())
    expected = set(settings_names()) - set(NOT_IN_AZURE)
    assert declared - set(PLATFORM_SETTINGS) == expected, _difference(
        "main.bicep", declared - set(PLATFORM_SETTINGS), "Settings", expected
    )


def test_the_lists_of_exceptions_are_not_stale() -> None:
    declared = set(app_settings())
    names = set(settings_names())
    assert set(PLATFORM_SETTINGS) <= declared, sorted(set(PLATFORM_SETTINGS) - declared)
    assert not set(PLATFORM_SETTINGS) & names, "a platform setting became a Settings field"
    assert set(NOT_IN_AZURE) <= names, sorted(set(NOT_IN_AZURE) - names)
    assert not set(NOT_IN_AZURE) & declared, sorted(set(NOT_IN_AZURE) & declared)


def test_the_reader_sees_conditional_settings() -> None:
    """NETGENIUM_DATABASE_URL is set only when given (direct mode): it sits in a condition's branch."""
    values = app_settings()
    assert "NETGENIUM_DATABASE_URL" in values
    tree = parsed(MAIN)
    direct = tree["variables"]["directModeSettings"]["value"]
    assert direct["operator"]["type"] == "conditional"


def test_every_secret_setting_is_a_key_vault_reference() -> None:
    """A SecretStr field's value is one of the refs (Key Vault references), or empty when unused."""
    values = app_settings()
    refs = parsed(MAIN)["variables"]["refs"]["value"]
    for name in secret_settings() - set(NOT_IN_AZURE):
        for value in values[name]:
            assert reads_property(value, "refs"), f"{name} is set without a Key Vault reference: {value!r}"
    for name, reference in refs.items():
        assert isinstance(reference, str), name
        assert reference.startswith("@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/"), (name, reference)


def test_identity_based_storage_and_telemetry() -> None:
    values = {name: expressions[0] for name, expressions in app_settings().items()}
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    for name in ("AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID", "AzureWebJobsStorage__accountName"):
        assert values[name] and values[name] != "", name
    assert "AzureWebJobsStorage" not in values
    authentication = values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(authentication, str)
    assert authentication.startswith("ClientId=${identity.outputs.clientId}")
    assert authentication.endswith(";Authorization=AAD")


def test_the_example_has_every_setting_and_nothing_unknown() -> None:
    names = set(example_values()) - CORE_TOOLS_SETTINGS
    expected = set(settings_names())
    assert names == expected, _difference("local.settings.example.json", names, "Settings", expected)


def test_the_example_starts_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its placeholders are valid values: copied to local.settings.json it loads, as the host would."""
    values: dict[str, Any] = example_values()
    for name in settings_names():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.crm_mailbox == "crm@company.example"
    assert settings.azure_web_jobs_storage.get_secret_value() == "UseDevelopmentStorage=true"


def test_a_setting_missing_from_bicep_is_noticed(tmp_path: Path) -> None:
    """The reader is no rubber stamp: a copy of main.bicep without CRM_MAILBOX lacks it, and a
    setting added in a condition's branch of a copy is found."""
    text = MAIN.read_text()
    assert "  CRM_MAILBOX: crmMailbox\n" in text
    without = tmp_path / "without.bicep"
    without.write_text(text.replace("  CRM_MAILBOX: crmMailbox\n", ""))
    assert "CRM_MAILBOX" not in app_settings(without)
    assert "CRM_MAILBOX" in app_settings(MAIN)

    extra = tmp_path / "extra.bicep"
    extra.write_text(
        text.replace(
            "var appSettings = union(platformSettings, crmSettings, directModeSettings)",
            "var appSettings = union(platformSettings, crmSettings, directModeSettings, "
            "empty(crmMailbox) ? { CRM_SOMETHING_NEW: 'x' } : {})",
        )
    )
    assert "CRM_SOMETHING_NEW" in app_settings(extra)
    assert "CRM_SOMETHING_NEW" not in settings_names()
