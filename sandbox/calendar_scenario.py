"""`crmservice sandbox calendar --scenario FILE`: a calendar scenario on the local stack, both sides
printed afterwards.

A scenario is a JSON list of steps. An Outlook step is what an employee does in Outlook (through the
Graph emulator's admin API); a NET Genium step is what a user does in NET Genium (through the record
API, followed by the OnAfterSave call to the app's `calendar/activity` trigger). A `ref` names an
item for later steps, on either side: a later step on the other side acts on its synced
counterpart, found the way a user would see it (the activity holding the event's id, the event the
activity names).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_core.domain.calendar import CalendarPolicy, SyncedFields, netgenium_times
from crm_core.netgenium.schema_map import load_schema_map
from crm_core.storage.calendar import CalendarConflicts, CalendarPairs
from crm_core.storage.tables import TableStorage
from sandbox.stack import NETGENIUM_KEY, SandboxError, SandboxStack

# The stack's calendar settings: the poll runs when a step says `sync` (the timer itself only
# hourly), so that what happens between two syncs is exactly what the steps did.
SCENARIO_SETTINGS = {
    "CRM_CALENDAR_POLL_SCHEDULE": "0 0 * * * *",
    "CRM_CALENDAR_USERS_SCHEDULE": "0 */30 * * * *",
}


class ScenarioError(ValueError):
    """A step the scenario cannot carry out; the message names the step."""


def _instant(value: Any, where: str) -> tuple[datetime | None, dict[str, str]]:
    """A step's time: ISO 8601 with an offset, or Graph's {dateTime, timeZone}."""
    if isinstance(value, Mapping):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        local = datetime.fromisoformat(str(value["dateTime"]))
        zone = str(value.get("timeZone") or "UTC")
        graph_form = {"dateTime": local.isoformat(), "timeZone": zone}
        try:
            moment = local.replace(tzinfo=ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            # A Windows zone name: Graph (the emulator) reads it; a NET Genium step needs IANA.
            return None, graph_form
        return moment.astimezone(UTC), graph_form
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ScenarioError(f"{where}: {value!r} has no offset")
        utc = moment.astimezone(UTC)
        return utc, {"dateTime": utc.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
    raise ScenarioError(f"{where}: a time is an ISO 8601 string or {{dateTime, timeZone}}")


class Scenario:
    """Runs steps against a started stack and reads both sides."""

    def __init__(self, stack: SandboxStack) -> None:
        self.stack = stack
        self.refs: dict[str, tuple[str, str, str]] = {}  # ref -> (side, user e-mail, id)
        entity = load_schema_map(None).calendar_activities
        self.entity = entity
        self.table = entity.table
        self.users = {u.email.strip().lower(): u.id for u in stack.directory.users}
        self.policy = CalendarPolicy()

    # ---- steps -------------------------------------------------------------------------------------

    def run(self, steps: Sequence[Mapping[str, Any]]) -> None:
        for number, step in enumerate(steps, 1):
            where = f"step {number}"
            op = step.get("op")
            if op == "sync":
                self.sync()
            elif op == "wipe_mapping":
                self.wipe_mapping()
            elif op == "fault":
                target = step.get("target", "graph")
                faults = {k: v for k, v in step.items() if k not in ("op", "target")}
                if target == "graph":
                    self.stack.graph_faults(**faults)
                elif target == "netgenium":
                    self.stack.netgenium_faults(**faults)
                else:
                    raise ScenarioError(f"{where}: fault target is graph or netgenium")
            elif step.get("side") == "outlook":
                self.outlook(step, where)
            elif step.get("side") == "netgenium":
                self.netgenium(step, where)
            else:
                raise ScenarioError(f"{where}: unknown step {json.dumps(step)[:200]}")

    def sync(self, rounds: int = 2) -> None:
        """Until the service is quiet: the poll runs, what it queued is done, and once more for echoes."""
        for _ in range(rounds):
            self.stack.run_function("calendar_poll")
            self.stack.wait_quiet(timeout=120.0, quiet=1.0)

    def wipe_mapping(self) -> None:
        assert self.stack.azurite
        connection = self.stack.azurite.connection_string

        async def wipe() -> int:
            async with TableStorage.from_connection_string(connection) as storage:
                return await CalendarPairs(storage).wipe()

        asyncio.run(wipe())

    def _user(self, step: Mapping[str, Any], where: str) -> str:
        user = str(step.get("user") or "").strip().lower()
        if user not in self.users:
            raise ScenarioError(f"{where}: user {user!r} is not in the directory")
        return user

    def _graph_body(self, fields: Mapping[str, Any], where: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name in ("start", "end"):
            if name in fields:
                body[name] = _instant(fields[name], f"{where}.{name}")[1]
        if "subject" in fields:
            body["subject"] = str(fields["subject"])
        if "all_day" in fields:
            body["isAllDay"] = bool(fields["all_day"])
        if "location" in fields:
            body["location"] = {"displayName": str(fields["location"])}
        if "body" in fields:
            body["body"] = {"contentType": "text", "content": str(fields["body"])}
        if "sensitivity" in fields:
            body["sensitivity"] = str(fields["sensitivity"])
        if "recurrence" in fields:
            body["recurrence"] = fields["recurrence"]
        return body

    def outlook(self, step: Mapping[str, Any], where: str) -> None:
        op, ref = step.get("op"), str(step.get("ref") or "")
        user = self._user(step, where)
        fields = step.get("fields") or {}
        if step.get("notify", True) is False:
            self.stack.graph_faults(dropNotificationsNext=1)  # the change notification is lost
        if op == "create":
            answer = self.stack.graph_admin("POST", f"users/{user}/events", json=self._graph_body(fields, where))
            self._check(answer, where)
            if ref:
                self.refs[ref] = ("outlook", user, str(answer.json()["id"]))
            return
        event_id = self._event_of(ref, where)
        path = f"users/{user}/events/{event_id}"
        if step.get("occurrence"):
            path += f"/occurrences/{step['occurrence']}"
        if op == "update":
            self._check(self.stack.graph_admin("PATCH", path, json=self._graph_body(fields, where)), where)
        elif op == "delete":
            self._check(self.stack.graph_admin("DELETE", path), where)
        else:
            raise ScenarioError(f"{where}: op is create, update or delete")

    def netgenium(self, step: Mapping[str, Any], where: str) -> None:
        op, ref = step.get("op"), str(step.get("ref") or "")
        user = self._user(step, where)
        fields = step.get("fields") or {}
        if op == "create":
            values = self._record(fields, where, new=True)
            values[self.entity.column("user").name] = self.users[user]
            answer = self._ng("POST", f"/api/v1/tables/{self.table}/records", values)
            activity_id = int(answer.json()["id"])
            if ref:
                self.refs[ref] = ("netgenium", user, str(activity_id))
        else:
            activity_id = self._activity_of(ref, step.get("occurrence"), user, where)
            if op == "update":
                self._ng("PATCH", f"/api/v1/tables/{self.table}/records/{activity_id}", self._record(fields, where))
            elif op == "delete":
                self._ng("DELETE", f"/api/v1/tables/{self.table}/records/{activity_id}", None)
            else:
                raise ScenarioError(f"{where}: op is create, update or delete")
        if step.get("notify", True) is False:
            return  # as if NET Genium has no OnAfterSave script: the next poll finds the change
        # NET Genium's OnAfterSave script: the app hears of the change at once.
        runner = self.stack.runners[0]
        answer = self.stack._http.post(f"{runner.base_url}/api/calendar/activity", json={"activity_id": activity_id})
        if answer.status_code != 202:
            raise SandboxError(f"{where}: the calendar/activity trigger answered {answer.status_code}")

    def _record(self, fields: Mapping[str, Any], where: str, *, new: bool = False) -> dict[str, Any]:
        column = self.entity.column
        values: dict[str, Any] = dict(self.entity.fixed_values()) if new else {}
        all_day = bool(fields.get("all_day", False))
        if "start" in fields or "end" in fields:
            if "start" not in fields or "end" not in fields:
                raise ScenarioError(f"{where}: a NET Genium time change gives start and end")
            start = _instant(fields["start"], f"{where}.start")[0]
            end = _instant(fields["end"], f"{where}.end")[0]
            if start is None or end is None:
                raise ScenarioError(f"{where}: a NET Genium time needs an offset or an IANA time zone")
            if all_day:
                midnight = datetime.min.time()
                start, end = netgenium_times(
                    SyncedFields(
                        "",
                        datetime.combine(start.date(), midnight, UTC),
                        datetime.combine(end.date(), midnight, UTC),
                        True,
                    ),
                    self.policy,
                )
            values[column("start").name] = start.isoformat().replace("+00:00", "Z")
            values[column("end").name] = end.isoformat().replace("+00:00", "Z")
        if "all_day" in fields or new:
            values[column("all_day").name] = all_day
        for name in ("subject", "location", "body"):
            if name in fields or new:
                values[column(name).name] = str(fields.get(name, ""))
        return values

    def _event_of(self, ref: str, where: str) -> str:
        side, _user, item = self._ref(ref, where)
        if side == "outlook":
            return item
        record = self._ng("GET", f"/api/v1/tables/{self.table}/records/{item}", None).json()
        event_id = record.get(self.entity.column("event_id").name)
        if not event_id:
            raise ScenarioError(f"{where}: activity {ref!r} has no Outlook event yet (sync first)")
        return str(event_id)

    def _activity_of(self, ref: str, occurrence: Any, user: str, where: str) -> int:
        side, _user, item = self._ref(ref, where)
        if side == "netgenium" and not occurrence:
            return int(item)
        event_id = item if side == "outlook" else self._event_of(ref, where)
        if occurrence:
            event_id = self._occurrence_id(user, event_id, str(occurrence), where)
        column = self.entity.column("event_id").name
        for record in self.stack.netgenium_records(self.table):
            if record.get(column) == event_id:
                return int(record["id"])
        raise ScenarioError(f"{where}: no activity mirrors {ref!r} yet (sync first)")

    def _occurrence_id(self, user: str, series_id: str, day: str, where: str) -> str:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(days=2)
        items = self._calendar(user, start, start + timedelta(days=4))
        for item in items:
            original = item.get("originalStart") or item.get("start")
            if item.get("seriesMasterId") == series_id and str(original).startswith(day):
                return str(item["id"])
        for item in items:  # the original date in the series' own zone may be a day off in UTC
            if item.get("seriesMasterId") == series_id:
                return str(item["id"])
        raise ScenarioError(f"{where}: the series has no occurrence on {day}")

    def _ref(self, ref: str, where: str) -> tuple[str, str, str]:
        if ref not in self.refs:
            raise ScenarioError(f"{where}: unknown ref {ref!r}")
        return self.refs[ref]

    def _ng(self, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        assert self.stack.netgenium
        answer = self.stack._http.request(
            method, f"{self.stack.netgenium.base_url}{path}", json=body, headers={"X-Api-Key": NETGENIUM_KEY}
        )
        if answer.status_code >= 400:
            raise SandboxError(f"NET Genium {method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer

    @staticmethod
    def _check(answer: Any, where: str) -> None:
        if answer.status_code >= 400:
            raise SandboxError(f"{where}: Graph answered {answer.status_code} {answer.text[:300]}")

    # ---- both sides ----------------------------------------------------------------------------

    def _calendar(self, user: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        answer = self.stack.graph_admin(
            "GET", f"users/{user}/calendar", params={"start": _z(start), "end": _z(end)}
        )
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json()["value"]
        return items

    def sides(self, days_back: int = 30, days_ahead: int = 365) -> dict[str, Any]:
        """Both calendars inside the sync window, one entry per event or occurrence, UTC times."""
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = today - timedelta(days=days_back), today + timedelta(days=days_ahead)
        outlook = []
        for user in sorted(self.users):
            for item in self._calendar(user, start, end):
                outlook.append(
                    {
                        "user": user,
                        "subject": item.get("subject") or "",
                        "start": _z(datetime.fromisoformat(str(item["start"]).replace("Z", "+00:00"))),
                        "end": _z(datetime.fromisoformat(str(item["end"]).replace("Z", "+00:00"))),
                        "all_day": bool(item.get("isAllDay")),
                        "location": item.get("location") or "",
                        "sensitivity": item.get("sensitivity") or "normal",
                        "series": bool(item.get("seriesMasterId")),
                    }
                )
        by_id = {uid: email for email, uid in self.users.items()}
        column = self.entity.column
        fixed = self.entity.fixed_values()
        netgenium = []
        for record in self.stack.netgenium_records(self.table):
            if any(record.get(k) != v for k, v in fixed.items()):
                continue
            begin = _parse(record.get(column("start").name))
            finish = _parse(record.get(column("end").name))
            if begin is None or finish is None or not (begin < end and finish >= start):
                continue
            if record.get(column("all_day").name):
                # An all-day activity is dates (midnights of the installation's zone): shown as
                # Outlook shows them, midnights marked Z.
                zone = self.policy.zone
                begin = datetime.combine(begin.astimezone(zone).date(), datetime.min.time(), UTC)
                finish = datetime.combine(finish.astimezone(zone).date(), datetime.min.time(), UTC)
            netgenium.append(
                {
                    "user": by_id.get(int(record.get(column("user").name) or 0), str(record.get(column("user").name))),
                    "subject": record.get(column("subject").name) or "",
                    "start": _z(begin),
                    "end": _z(finish),
                    "all_day": bool(record.get(column("all_day").name)),
                    "location": record.get(column("location").name) or "",
                }
            )
        key = lambda item: (item["user"], item["start"], item["subject"])  # noqa: E731
        return {"outlook": sorted(outlook, key=key), "netgenium": sorted(netgenium, key=key)}

    def conflicts(self) -> list[dict[str, Any]]:
        assert self.stack.azurite
        connection = self.stack.azurite.connection_string

        async def read() -> list[dict[str, Any]]:
            async with TableStorage.from_connection_string(connection) as storage:
                found = await CalendarConflicts(storage).recent(1000)
            return [{"winner": c.winner, "loser": c.loser, "fields": list(c.fields)} for c in reversed(found)]

        return asyncio.run(read())


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def wait_for_calendar_users(stack: SandboxStack, count: int, timeout: float = 60.0) -> None:
    """Until the users timer has matched `count` users and subscribed to their calendars."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = [s for s in stack.graph_subscriptions() if s.get("active") and "/events" in str(s.get("resource"))]
        if len(events) >= count and stack.quiet():
            return
        time.sleep(0.2)
    raise SandboxError(f"the app did not subscribe to {count} calendars within {timeout}s")


def run_scenario(stack: SandboxStack, steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run the steps, settle, and return both sides, the conflict log and the requests served."""
    scenario = Scenario(stack)
    scenario.run(steps)
    scenario.sync()
    out = scenario.sides()
    out["conflicts"] = scenario.conflicts()
    out["requests"] = stack.request_counts()
    return out


def add_calendar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO.json")
    parser.add_argument(
        "--directory", type=Path, default=None, metavar="DIRECTORY.json", help="users (default: five sample users)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document (the default is a table)")
    parser.add_argument("--seed", type=int, default=0, help="seed for everything random in the Graph emulator")
    parser.add_argument("--ideal", action="store_true", help="Graph's happy path instead of its documented worst case")


_SAMPLE_USERS = [{"id": n, "email": f"user{n}@firma.example", "name": f"User {n}"} for n in range(1, 6)]


def run_calendar_command(args: argparse.Namespace) -> int:
    """`crmservice sandbox calendar`: 0 when both sides agree, 1 when they differ, 2 on bad input."""
    from pydantic import ValidationError

    from crm_core.domain.directory import DirectoryFile

    try:
        steps = json.loads(Path(args.scenario).read_text(encoding="utf-8"))
        if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
            raise ScenarioError("a scenario is a JSON list of step objects")
        if args.directory is not None:
            directory = DirectoryFile.model_validate_json(Path(args.directory).read_text(encoding="utf-8"))
        else:
            directory = DirectoryFile.model_validate({"crm_address": "crm@firma.example", "users": _SAMPLE_USERS})
    except (OSError, ValueError, ValidationError) as exc:
        print(f"crmservice sandbox calendar: {exc}", file=sys.stderr)
        return 2
    try:
        with SandboxStack(
            directory, seed=args.seed, graph_profile="ideal" if args.ideal else "real", app_settings=SCENARIO_SETTINGS
        ) as stack:
            wait_for_calendar_users(stack, len(directory.users))
            result = run_scenario(stack, steps)
    except ScenarioError as exc:
        print(f"crmservice sandbox calendar: {exc}", file=sys.stderr)
        return 2
    except SandboxError as exc:
        print(f"crmservice sandbox calendar: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for side in ("outlook", "netgenium"):
            print(f"== {side}")
            for item in result[side]:
                print(f"{item['user']:<28} {item['start']}  {item['end']}  {item['subject']}")
        for conflict in result["conflicts"]:
            print(f"conflict: {conflict['winner']} won over {conflict['loser']} ({', '.join(conflict['fields'])})")
        print(f"requests: Graph {result['requests']['graph']}, NET Genium {result['requests']['netgenium']}")
    return 0 if _agree(result) else 1


def _agree(result: Mapping[str, Any]) -> bool:
    """Both sides hold the same items (user, start, end, all-day; subjects apart from private ones)."""

    def keys(items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((i["user"], i["start"], i["end"], i["all_day"]) for i in items)

    return keys(result["outlook"]) == keys(result["netgenium"])
