"""`crmservice check / subscriptions / why / correspondents / poison`: arguments and exit statuses
without any service (the end-to-end tests run them against the sandbox)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_core import cli, operators
from crm_core.domain.calendar_state import CalendarConflict, CalendarUsersState
from crm_core.domain.state import Correspondent, LedgerEntry, LedgerState, PoisonItem
from crm_core.usecases.operator_queries import OperatorState

SETTINGS = (
    "CRM_MAILBOX",
    "CRM_NOTIFICATION_URL",
    "CRM_LIFECYCLE_URL",
    "NETGENIUM_BASE_URL",
    "NETGENIUM_API_KEY",
    "AzureWebJobsStorage",
    "GRAPH_AUTH",
)


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--help"],
        ["subscriptions", "--help"],
        ["subscriptions", "list", "--help"],
        ["subscriptions", "ensure", "--help"],
        ["subscriptions", "delete", "--help"],
        ["why", "--help"],
        ["correspondents", "--help"],
        ["poison", "list", "--help"],
        ["poison", "replay", "--help"],
        ["calendar", "status", "--help"],
        ["backfill", "--help"],
        ["explain", "--help"],
    ],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    assert "usage: crmservice" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--nonsense"],
        ["subscriptions"],
        ["subscriptions", "renew"],
        ["correspondents", "--top", "many"],
        ["why"],
        ["poison"],
        ["calendar"],
        ["calendar", "status", "--conflicts", "x"],
        ["backfill"],
        ["backfill", "--since", "last tuesday"],
        ["backfill", "--since", "2024-01-01", "--until", "2024-13-01"],
        ["backfill", "--since", "2024-01-01", "--page-size", "many"],
        [],
        ["nonsense"],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2


def test_delete_needs_ids_or_all_but_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["subscriptions", "delete"]) == 2
    assert cli.main(["subscriptions", "delete", "abc", "--all"]) == 2
    assert "--all" in capsys.readouterr().err


def test_subscriptions_without_settings_could_not_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["subscriptions", "list"]) == 2
    assert "CRM_MAILBOX is missing" in capsys.readouterr().err


def test_check_with_wrong_settings_names_them_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_MAILBOX", "not an address")
    monkeypatch.setenv("NETGENIUM_API_KEY", "the-secret-key")
    assert cli.main(["check", "--json"]) == 1
    [line] = json.loads(capsys.readouterr().out)
    assert (line["check"], line["ok"]) == ("settings", False)
    assert "CRM_MAILBOX is invalid" in line["detail"] and "the-secret-key" not in line["detail"]
    assert cli.main(["check"]) == 1
    assert capsys.readouterr().out.startswith("FAIL settings")


def test_state_commands_need_storage_and_a_positive_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["why", "<a@b>"]) == 2
    assert "AzureWebJobsStorage" in capsys.readouterr().err


def test_a_zero_count_is_bad_usage(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    assert cli.main(["correspondents", "--top", "0"]) == 2
    assert cli.main(["poison", "list", "--limit", "0"]) == 2


class Ledger:
    async def get(self, message_id: str) -> LedgerEntry | None:
        return None


class Correspondents:
    def __init__(self) -> None:
        self.asked: list[int] = []

    async def top(self, limit: int = 100) -> list[Correspondent]:
        self.asked.append(limit)
        return [Correspondent("lead@x.example", 3, datetime(2024, 5, 1, tzinfo=UTC))]


class Poison:
    async def list(self, queue: str, limit: int) -> list[PoisonItem]:
        return [PoisonItem(content='{"kind":"mail"}', attempts=5, reason="NetGeniumUnavailable: 503")]

    async def replay(self, queue: str) -> int:
        return 1


def state() -> tuple[OperatorState, Correspondents]:
    correspondents = Correspondents()
    return OperatorState(ledger=Ledger(), correspondents=correspondents, poison=Poison()), correspondents


def answer(argv: list[str]) -> int:
    args: Any = cli._parser().parse_args(argv)
    operator_state, _ = state()
    result: int = asyncio.run(operators._answer(args, operator_state))
    return result


def test_why_never_seen_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert answer(["why", "<x@y>", "--json"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and "never seen" in out.err


def test_correspondents_top_and_limit_are_one_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli._parser()
    assert parser.parse_args(["correspondents", "--top", "7"]).top == 7
    assert parser.parse_args(["correspondents", "--limit", "7"]).top == 7
    assert answer(["correspondents", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row == {"address": "lead@x.example", "count": 3, "last_seen": "2024-05-01T00:00:00+00:00"}
    assert answer(["correspondents"]) == 0
    assert capsys.readouterr().out.split() == ["3", "lead@x.example", "(last", "seen", "2024-05-01T00:00:00+00:00)"]


def test_poison_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert answer(["poison", "list", "--json"]) == 1  # an item that failed for good is a problem found
    [item] = json.loads(capsys.readouterr().out)
    assert item == {"item": '{"kind":"mail"}', "attempts": 5, "reason": "NetGeniumUnavailable: 503"}
    assert answer(["poison", "list"]) == 1
    assert capsys.readouterr().out.startswith("attempts 5: NetGeniumUnavailable: 503")
    assert answer(["poison", "replay", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"queue": "capture-tasks", "replayed": 1}
    assert answer(["poison", "replay"]) == 0
    assert capsys.readouterr().out == "1 items moved back to capture-tasks\n"


def test_why_text_is_the_default() -> None:
    lines = operators._why_text(
        {
            "message_id": "<m@x>",
            "state": "skipped",
            "activity_id": None,
            "direction": None,
            "contacts": [],
            "users": [7],
            "order_id": None,
            "reasons": ["sender not in address book"],
            "attempts": 1,
            "claimed_at": "2024-05-01T00:00:00+00:00",
        }
    )
    assert lines == [
        "<m@x>: skipped",
        "  users: 7",
        "  attempts: 1",
        "  claimed at: 2024-05-01T00:00:00+00:00",
        "  reasons:",
        "    - sender not in address book",
    ]


def test_a_poison_limit_over_32_is_bad_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    assert cli.main(["poison", "list", "--limit", "33"]) == 2
    assert "at most 32" in capsys.readouterr().err


def test_backfill_without_settings_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backfill", "--since", "2024-01-01"]) == 2
    assert "CRM_MAILBOX" in capsys.readouterr().err
    assert cli.main(["backfill", "--since", "2024-01-01", "--page-size", "0"]) == 2
    assert "--page-size" in capsys.readouterr().err


def test_dates_are_utc_unless_they_say() -> None:
    assert operators.parse_date("2024-01-31") == datetime(2024, 1, 31, tzinfo=UTC)
    assert operators.parse_date("2024-01-31T10:00:00Z") == datetime(2024, 1, 31, 10, tzinfo=UTC)
    assert operators.parse_date("2024-01-31T12:00:00+02:00") == datetime(2024, 1, 31, 10, tzinfo=UTC)


def test_why_json_has_the_ledger_fields(capsys: pytest.CaptureFixture[str]) -> None:
    class Known(Ledger):
        async def get(self, message_id: str) -> LedgerEntry | None:
            return LedgerEntry(
                message_id=message_id,
                state=LedgerState.WRITTEN,
                claimed_by="w",
                claimed_at=datetime(2024, 5, 1, tzinfo=UTC),
                attempts=1,
                activity_id=7,
                direction="incoming",
                reasons=("incoming: sender is contact 101",),
                contact_ids=(101,),
                user_ids=(1,),
            )

    args: Any = cli._parser().parse_args(["why", "<m@x>", "--json"])
    known = OperatorState(ledger=Known(), correspondents=Correspondents(), poison=Poison())
    assert asyncio.run(operators._answer(args, known)) == 0
    entry = json.loads(capsys.readouterr().out)
    assert list(entry) == [
        "message_id",
        "state",
        "activity_id",
        "direction",
        "contacts",
        "users",
        "order_id",
        "reasons",
        "attempts",
        "claimed_at",
    ]
    assert (entry["state"], entry["activity_id"], entry["contacts"]) == ("written", 7, [101])


class CalendarUsers:
    def __init__(self, unmatched: list[dict[str, object]]) -> None:
        self.unmatched = unmatched

    async def load(self) -> CalendarUsersState | None:
        return CalendarUsersState(
            refreshed_at=datetime(2024, 5, 1, tzinfo=UTC),
            synced=[{"ng_user_id": 1, "email": "jana@firma.example", "mailbox": "jana@firma.example"}],
            unmatched=self.unmatched,
        )


class Conflicts:
    async def recent(self, limit: int = 20, mailbox: str | None = None) -> list[CalendarConflict]:
        return [
            CalendarConflict(
                mailbox="jana@firma.example",
                at=datetime(2024, 5, 2, tzinfo=UTC),
                winner="outlook",
                loser="netgenium",
                event_id="ev1",
                activity_id=9,
                fields=("start", "end"),
            )
        ][:limit]

    async def count(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("unmatched", "status"),
    [([], 0), ([{"ng_user_id": 2, "email": "petr@firma.example", "reason": "no Microsoft 365 user"}], 1)],
)
def test_calendar_status_json_shape_and_exit(
    unmatched: list[dict[str, object]], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    args: Any = cli._parser().parse_args(["calendar", "status", "--json"])
    calendar = OperatorState(
        ledger=Ledger(),
        correspondents=Correspondents(),
        poison=Poison(),
        calendar_users=CalendarUsers(unmatched),
        calendar_conflicts=Conflicts(),
    )
    assert asyncio.run(operators._answer(args, calendar)) == status
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"refreshed_at", "synced", "unmatched", "conflicts_total", "conflicts"}
    assert out["synced"][0]["email"] == "jana@firma.example" and out["unmatched"] == unmatched
    assert out["conflicts"][0]["fields"] == ["start", "end"] and out["conflicts_total"] == 1


def test_calendar_status_never_refreshed_is_a_problem(capsys: pytest.CaptureFixture[str]) -> None:
    args: Any = cli._parser().parse_args(["calendar", "status"])
    assert asyncio.run(operators._answer(args, state()[0])) == 1
    assert "refreshed at never" in capsys.readouterr().out


@pytest.fixture
def sandbox_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CRM_MAILBOX": "crm@firma.example",
        "CRM_NOTIFICATION_URL": "http://127.0.0.1:7071/api/notifications",
        "CRM_LIFECYCLE_URL": "http://127.0.0.1:7071/api/lifecycle",
        "NETGENIUM_BASE_URL": "http://127.0.0.1:8082",
        "NETGENIUM_API_KEY": "the-netgenium-key",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "GRAPH_AUTH": "static_token",
        "GRAPH_STATIC_TOKEN": "the-graph-token",
        "GRAPH_BASE_URL": "http://127.0.0.1:8081/v1.0",
    }.items():
        monkeypatch.setenv(name, value)


def test_backfill_stopped_by_an_outage_exits_1_and_says_run_again(
    sandbox_settings: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crm_core.domain.errors import ServiceUnavailable

    async def outage(*args: Any) -> int:
        raise ServiceUnavailable("NET Genium answered 503 (key the-netgenium-key)")

    monkeypatch.setattr(operators, "_run_backfill", outage)
    assert cli.main(["backfill", "--since", "2020-01-01"]) == 1
    err = capsys.readouterr().err
    assert "stopped" in err and "run the same command again" in err and "the-netgenium-key" not in err


def test_backfill_interrupted_exits_130(
    sandbox_settings: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(*args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(operators, "_run_backfill", interrupted)
    assert cli.main(["backfill", "--since", "2020-01-01", "--until", "2020-02-01"]) == 130
    assert "continues where this run stopped" in capsys.readouterr().err


def test_backfill_until_defaults_to_the_first_runs_cutoff(
    sandbox_settings: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[datetime, datetime]] = []

    async def record(args: Any, settings: Any, since: datetime, until: datetime) -> int:
        asked.append((since, until))
        return 0

    monkeypatch.setattr(operators, "_run_backfill", record)
    monkeypatch.setenv("CRM_INITIAL_SYNC_DAYS", "10")
    assert cli.main(["backfill", "--since", "2020-01-01"]) == 0
    [(since, until)] = asked
    assert since == datetime(2020, 1, 1, tzinfo=UTC)
    assert abs((datetime.now(UTC) - until).total_seconds() - 10 * 86400) < 60
    monkeypatch.setenv("CRM_INITIAL_SYNC_DAYS", "30")
    recent = (datetime.now(UTC).date()).isoformat()
    assert cli.main(["backfill", "--since", recent]) == 2
    assert "first run's cutoff (30 days back)" in capsys.readouterr().err
