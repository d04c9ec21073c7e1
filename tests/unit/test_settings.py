"""A missing or invalid setting stops the start with one message naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core.domain.settings import GraphAuth, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]

VALID = {
    "CRM_MAILBOX": "crm@firma.example",
    "CRM_NOTIFICATION_URL": "https://crm.firma.example/api/notifications?code=k1",
    "CRM_LIFECYCLE_URL": "https://crm.firma.example/api/lifecycle?code=k1",
    "NETGENIUM_BASE_URL": "https://erp.firma.example/ng",
    "NETGENIUM_API_KEY": "key-1",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "GRAPH_TENANT_ID": "11111111-2222-3333-4444-555555555555",
    "GRAPH_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
    "GRAPH_CLIENT_SECRET": "secret-value-1",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith(("CRM_", "GRAPH_", "NETGENIUM_", "SYNC_", "AZUREWEBJOBSSTORAGE")):
            monkeypatch.delenv(name)
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_valid_environment(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.crm_mailbox == "crm@firma.example"
    assert settings.crm_order_keywords == ["Order"]
    assert settings.crm_excluded_addresses == []
    assert settings.graph_auth is GraphAuth.CLIENT_SECRET
    assert (settings.sync_days_back, settings.sync_days_ahead) == (30, 365)
    assert settings.netgenium_base_url == "https://erp.firma.example/ng"


@pytest.mark.parametrize(
    "name",
    [
        "CRM_MAILBOX",
        "NETGENIUM_BASE_URL",
        "NETGENIUM_API_KEY",
        "AzureWebJobsStorage",
        "GRAPH_TENANT_ID",
        "GRAPH_CLIENT_ID",
        "GRAPH_CLIENT_SECRET",
    ],
)
def test_each_required_setting_is_named_when_missing(env: pytest.MonkeyPatch, name: str) -> None:
    env.delenv(name)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{name} is missing: expected ")
    assert "\n" not in message


def test_certificate_mode_needs_the_certificate(env: pytest.MonkeyPatch) -> None:
    env.setenv("GRAPH_AUTH", "certificate")
    with pytest.raises(SettingsError, match=r"^GRAPH_CERTIFICATE_PATH is missing"):
        load_settings()
    env.setenv("GRAPH_CERTIFICATE_PATH", "/certs/app.pem")
    assert load_settings().graph_certificate_path == "/certs/app.pem"


def test_managed_identity_needs_no_secret(env: pytest.MonkeyPatch) -> None:
    for name in ("GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET", "AzureWebJobsStorage"):
        env.delenv(name)
    env.setenv("GRAPH_AUTH", "managed_identity")
    env.setenv("AzureWebJobsStorage__accountName", "crmstorage")
    settings = load_settings()
    assert settings.graph_auth is GraphAuth.MANAGED_IDENTITY
    assert settings.azure_web_jobs_storage_account_name == "crmstorage"


def test_static_token_only_on_loopback(env: pytest.MonkeyPatch) -> None:
    env.setenv("GRAPH_AUTH", "static_token")
    env.setenv("GRAPH_STATIC_TOKEN", "t")
    with pytest.raises(SettingsError, match="GRAPH_BASE_URL on loopback"):
        load_settings()
    env.setenv("GRAPH_BASE_URL", "http://127.0.0.1:8123/v1.0")
    assert load_settings().graph_base_url == "http://127.0.0.1:8123/v1.0"
    env.delenv("GRAPH_STATIC_TOKEN")
    with pytest.raises(SettingsError, match=r"^GRAPH_STATIC_TOKEN is missing"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CRM_MAILBOX", "not-an-address", "CRM_MAILBOX is invalid: expected an e-mail address"),
        ("NETGENIUM_BASE_URL", "http://erp.firma.example", "NETGENIUM_BASE_URL is invalid: expected https"),
        ("NETGENIUM_BASE_URL", "erp.firma.example", "NETGENIUM_BASE_URL is invalid: expected an absolute"),
        ("NETGENIUM_API_KEY", "   ", "NETGENIUM_API_KEY is invalid: expected a non-empty value"),
        ("GRAPH_AUTH", "password", "GRAPH_AUTH is invalid"),
        ("CRM_ORDER_KEYWORDS", "Order:", "CRM_ORDER_KEYWORDS is invalid: expected keywords of letters"),
        ("CRM_ORDER_KEYWORDS", " , ", "CRM_ORDER_KEYWORDS is invalid: expected at least one keyword"),
        ("CRM_EXCLUDED_ADDRESSES", "@nodot", "CRM_EXCLUDED_ADDRESSES is invalid"),
        ("SYNC_DAYS_BACK", "-1", "SYNC_DAYS_BACK is invalid"),
        ("CRM_NOTIFICATION_URL", "http://crm.firma.example/api/notifications", "CRM_NOTIFICATION_URL is invalid"),
        ("CRM_SUBSCRIPTION_MINUTES", "20000", "CRM_SUBSCRIPTION_MINUTES is invalid"),
        ("CRM_INCLUDE_INLINE_ATTACHMENTS", "perhaps", "CRM_INCLUDE_INLINE_ATTACHMENTS is invalid"),
        ("SYNC_DAYS_AHEAD", "many", "SYNC_DAYS_AHEAD is invalid"),
    ],
)
def test_invalid_settings_are_named(env: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)


def test_lists_from_app_settings(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_ORDER_KEYWORDS", "Order, Objednávka")
    env.setenv("CRM_EXCLUDED_ADDRESSES", " NoReply@Firma.example ; @Newsletter.example ")
    settings = load_settings()
    assert settings.crm_order_keywords == ["Order", "Objednávka"]
    assert settings.crm_excluded_addresses == ["noreply@firma.example", "@newsletter.example"]


def test_loopback_http_is_allowed_for_the_sandbox(env: pytest.MonkeyPatch) -> None:
    env.setenv("NETGENIUM_BASE_URL", "http://127.0.0.1:8080/")
    assert load_settings().netgenium_base_url == "http://127.0.0.1:8080"


def test_secrets_do_not_show_in_repr(env: pytest.MonkeyPatch) -> None:
    text = repr(load_settings()) + str(Settings.model_fields)
    assert "secret-value-1" not in text
    assert "key-1" not in text


def test_function_app_refuses_to_start_naming_the_setting() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("CRM_", "GRAPH_", "NETGENIUM_"))}
    clean.update({k: v for k, v in VALID.items() if k != "CRM_MAILBOX"})
    result = subprocess.run(
        [sys.executable, "-c", "import function_app"], cwd=ROOT, env=clean, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "CRM_MAILBOX is missing" in result.stderr


@pytest.mark.parametrize("header", ["X-Api-Key\r\nX-Evil: 1", "X-Api-Key\n", "X Api Key", "", "X-Api-Key:"])
def test_an_api_key_header_that_is_no_header_name_stops_the_start(env: pytest.MonkeyPatch, header: str) -> None:
    env.setenv("NETGENIUM_API_KEY_HEADER", header)
    with pytest.raises(SettingsError, match="NETGENIUM_API_KEY_HEADER is invalid: expected an HTTP header name"):
        load_settings()


def test_the_function_keys_in_the_webhook_urls_are_secrets(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_NOTIFICATION_URL", "https://crm.firma.example/api/notifications?code=FUNCTIONKEY1")
    env.setenv("CRM_LIFECYCLE_URL", "https://crm.firma.example/api/lifecycle?code=FUNCTIONKEY2")
    settings = load_settings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "FUNCTIONKEY" not in shown
    assert settings.crm_notification_url.get_secret_value().endswith("code=FUNCTIONKEY1")
    env.setenv("CRM_LIFECYCLE_URL", "http://crm.firma.example/api/lifecycle?code=FUNCTIONKEY2")
    with pytest.raises(SettingsError, match="CRM_LIFECYCLE_URL is invalid: expected https") as refused:
        load_settings()
    assert "FUNCTIONKEY" not in str(refused.value)
