"""`crmservice check`: can the service run with these settings, against these systems?

One check a line, each with what to fix: the settings (read by the caller, which passes on what it
found), then Graph (a token, the CRM mailbox, reading its inbox), NET Genium (health, the schema
map against the live API) and storage (tables and queues). A check that cannot run because an
earlier one failed says so instead of failing for the same reason again. No detail ever carries a
secret: the caller passes the secret values, and any that an error message quotes are masked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from crm_core.domain.errors import ExternalServiceError

MASK = "***"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of `crmservice check`: the check's name, whether it passed, and what was found."""

    check: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class CheckFailed(Exception):
    """A check found a problem; the message says what to fix."""


class GraphProbe(Protocol):
    """What the Graph checks ask; each raises (a typed error or CheckFailed) when it fails."""

    async def token(self) -> None: ...
    async def mailbox_user(self, mailbox: str) -> str: ...
    async def read_inbox(self, mailbox: str) -> None: ...


class NetGeniumProbe(Protocol):
    async def health(self) -> Mapping[str, Any]: ...
    async def schema_problems(self) -> Sequence[str]: ...


class StorageProbe(Protocol):
    async def tables(self) -> None: ...
    async def queue_lengths(self) -> Mapping[str, int | None]: ...


@dataclass(frozen=True, slots=True)
class Probes:
    """The systems `run_checks` reaches; the composition root builds them from the settings."""

    mailbox: str
    graph: GraphProbe
    netgenium: NetGeniumProbe
    storage: StorageProbe


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value in it replaced by ***."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _problem(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed | ExternalServiceError):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


async def _one(
    name: str, run: Callable[[], Awaitable[str]], fix: str, secrets: Sequence[str], *, on_error: str | None = None
) -> CheckResult:
    """Run one check; a failure's detail is the problem and then `fix` (or, when the system could
    not answer at all rather than answered what is wrong, `on_error` if given)."""
    try:
        detail = await run()
    except Exception as exc:  # every failure is a finding of the check, not a crash of the command
        hint = fix if on_error is None or isinstance(exc, CheckFailed) else on_error
        return CheckResult(name, False, mask(f"{_problem(exc)}; {hint}", secrets))
    return CheckResult(name, True, mask(detail, secrets))


def _skipped(name: str, because: str) -> CheckResult:
    return CheckResult(name, False, f"not checked: {because} failed")


async def run_checks(probes: Probes, *, secrets: Sequence[str] = ()) -> list[CheckResult]:
    """Every check after the settings, in order; a failed prerequisite skips the checks after it."""
    results: list[CheckResult] = []
    mailbox = probes.mailbox

    async def token() -> str:
        await probes.graph.token()
        return "the credential (GRAPH_AUTH) returned a token"

    async def user() -> str:
        found = await probes.graph.mailbox_user(mailbox)
        return f"{mailbox} exists (user {found})"

    async def inbox() -> str:
        await probes.graph.read_inbox(mailbox)
        return f"the app may read {mailbox}'s inbox"

    graph_token = await _one(
        "graph token",
        token,
        "check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and the secret or certificate (GRAPH_AUTH), and GRAPH_BASE_URL",
        secrets,
    )
    results.append(graph_token)
    if graph_token.ok:
        graph_user = await _one(
            "graph mailbox",
            user,
            "CRM_MAILBOX must be a mailbox of the tenant, and the app needs User.Read.All (application)",
            secrets,
        )
        results.append(graph_user)
        if graph_user.ok:
            results.append(
                await _one(
                    "graph inbox",
                    inbox,
                    "the app needs Mail.Read (application) and access to this mailbox "
                    "(an application access policy may exclude it)",
                    secrets,
                )
            )
        else:
            results.append(_skipped("graph inbox", "graph mailbox"))
    else:
        results += [_skipped("graph mailbox", "graph token"), _skipped("graph inbox", "graph token")]

    async def health() -> str:
        answer = await probes.netgenium.health()
        status = answer.get("status", "ok")
        if str(status).lower() not in ("ok", "healthy", "up"):
            raise CheckFailed(f"the record API says its status is {status!r}")
        return f"the record API answers (status {status})"

    async def schema() -> str:
        problems = list(await probes.netgenium.schema_problems())
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise CheckFailed(f"{len(problems)} problems with the schema map: {shown}")
        return "every table and column of the schema map exists"

    ng_health = await _one(
        "netgenium health",
        health,
        "check NETGENIUM_BASE_URL, NETGENIUM_API_KEY and NETGENIUM_API_KEY_HEADER",
        secrets,
    )
    results.append(ng_health)
    if ng_health.ok:
        results.append(
            await _one(
                "netgenium schema map",
                schema,
                "fix NETGENIUM_SCHEMA_MAP or the NET Genium tables (`crmservice netgenium check` lists all)",
                secrets,
                on_error="the schema map could not be checked: the record API must accept NETGENIUM_API_KEY "
                "(in NETGENIUM_API_KEY_HEADER) for its table metadata",
            )
        )
    else:
        results.append(_skipped("netgenium schema map", "netgenium health"))

    async def tables() -> str:
        await probes.storage.tables()
        return "Table storage answers"

    async def queues() -> str:
        lengths = await probes.storage.queue_lengths()
        parts = [
            f"{name}: {'not created yet' if count is None else f'{count} waiting'}" for name, count in lengths.items()
        ]
        return "Queue storage answers (" + ", ".join(parts) + ")"

    storage_fix = "check AzureWebJobsStorage (or AzureWebJobsStorage__accountName and the identity's roles)"
    results.append(await _one("storage tables", tables, storage_fix, secrets))
    results.append(await _one("storage queues", queues, storage_fix, secrets))
    return results


def settings_result(problem: str | None) -> CheckResult:
    """The settings line: OK, or the setting that is wrong (the message names it)."""
    if problem is None:
        return CheckResult("settings", True, "every app setting is present and valid")
    return CheckResult("settings", False, problem)
