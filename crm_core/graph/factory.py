"""How the Graph adapter is built: the credential `GRAPH_AUTH` names, and the SDK client on it.

Why it is built the way it is:

- The httpx client comes from `GraphClientFactory.create_with_default_middleware`: passing a bare
  client would drop the SDK's retry (429/503/504 with Retry-After) and redirect middleware. The
  number of retries is bounded, and every request has its own timeout; the overall deadline of an
  operation is `crm_core.graph.translate`'s.
- The SDK (msgraph, kiota, azure-identity, httpx) is imported inside the functions only: importing
  this module is cheap, and a Functions cold start that only parses a notification never loads it.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from crm_core.domain.settings import GraphAuth, Settings
from crm_core.graph.client import GraphAdapter
from crm_core.graph.options import GraphOptions

_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"


class StaticTokenCredential:
    """An async token credential that always returns one fixed token (the Graph emulator's).

    Settings refuse `GRAPH_AUTH=static_token` unless `GRAPH_BASE_URL` is on loopback.
    """

    def __init__(self, token: str, lifetime: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + self._lifetime)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        return None


def create_credential(settings: Settings) -> Any:
    """The azure-identity async credential that `GRAPH_AUTH` names."""
    if settings.graph_auth is GraphAuth.STATIC_TOKEN:
        return StaticTokenCredential(settings.graph_static_token.get_secret_value())
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    if settings.graph_auth is GraphAuth.CLIENT_SECRET:
        return ClientSecretCredential(
            settings.graph_tenant_id, settings.graph_client_id, settings.graph_client_secret.get_secret_value()
        )
    if settings.graph_auth is GraphAuth.CERTIFICATE:
        return CertificateCredential(
            settings.graph_tenant_id, settings.graph_client_id, certificate_path=settings.graph_certificate_path
        )
    return ManagedIdentityCredential(client_id=settings.graph_client_id or None)


def _scope_for(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    if host.endswith((".microsoft.com", ".microsoftgraph.us", ".microsoftgraph.chinacloudapi.cn", ".microsoft.us")):
        return f"https://{host}/.default"
    return _DEFAULT_SCOPE


def create_graph_service_client(
    settings: Settings, options: GraphOptions | None = None, *, credential: Any = None
) -> Any:
    """A `GraphServiceClient` on `GRAPH_BASE_URL` with the SDK's default middleware kept."""
    import httpx
    from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
    from msgraph._version import VERSION
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import APIVersion, GraphClientFactory
    from msgraph_core.authentication import AzureIdentityAuthenticationProvider
    from msgraph_core.middleware.options import GraphTelemetryHandlerOption

    opts = options or GraphOptions()
    credential = credential if credential is not None else create_credential(settings)
    base_url = settings.graph_base_url.rstrip("/")
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[_scope_for(base_url)], allowed_hosts=[host])
    middleware_options = {
        RetryHandlerOption.get_key(): RetryHandlerOption(
            delay=opts.retry_base_delay, max_retries=opts.max_retries, should_retry=opts.max_retries > 0
        ),
        UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(
            enabled=True, replacement_pairs={"/users/me-token-to-replace": "/me"}
        ),
        GraphTelemetryHandlerOption.get_key(): GraphTelemetryHandlerOption(
            api_version=APIVersion.v1, sdk_version=VERSION
        ),
    }
    http_client = httpx.AsyncClient(
        timeout=httpx.Timeout(opts.request_timeout, connect=min(10.0, opts.request_timeout)), http2=True
    )
    http_client = GraphClientFactory.create_with_default_middleware(client=http_client, options=middleware_options)
    request_adapter = GraphRequestAdapter(auth, client=http_client)
    request_adapter.base_url = base_url
    return GraphServiceClient(request_adapter=request_adapter)


async def acquire_token(settings: Settings) -> None:
    """Ask the configured credential for a Graph token once (the operator's `crmservice check`);
    raises GraphUnavailable naming the credential, never the secret or the token."""
    from crm_core.graph.errors import GraphUnavailable

    credential = create_credential(settings)
    try:
        await credential.get_token(_scope_for(settings.graph_base_url))
    except Exception as exc:
        problem = f"{type(exc).__name__}: {str(exc)[:300]}"
        raise GraphUnavailable(f"no token from the {settings.graph_auth.value} credential ({problem})") from None
    finally:
        await credential.close()


def create_graph_adapter(settings: Settings, options: GraphOptions | None = None) -> GraphAdapter:
    """The adapter the use cases call; close it with `await adapter.aclose()` (or `async with`)."""
    if options is None:
        limit = getattr(settings, "crm_attachment_max_bytes", None)
        options = GraphOptions(attachment_max_bytes=limit) if isinstance(limit, int) else GraphOptions()
    opts = options
    credential = create_credential(settings)
    client = create_graph_service_client(settings, opts, credential=credential)
    return GraphAdapter(client, opts, credential=credential)


__all__ = [
    "StaticTokenCredential",
    "acquire_token",
    "create_credential",
    "create_graph_adapter",
    "create_graph_service_client",
]
