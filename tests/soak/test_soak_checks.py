"""The soak's mail invariants catch what they are for: a doubled, a lost, a wrongly linked and an
irrelevant stored mail each fail the check (fake NET Genium records, no stack)."""

from __future__ import annotations

from typing import Any

from bench.soak import Soak, _links, _wanted
from bench.soak_plan import make_plan


class FakeStack:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def netgenium_records(self, table: str = "ng_activities") -> list[dict[str, Any]]:
        return self.records


def _record(message_id: str, want: dict[str, Any]) -> dict[str, Any]:
    return {
        "ng_kind": "email",
        "ng_message_id": message_id,
        "ng_direction": want["direction"],
        "ng_contact_id": want["contact"],
        "ng_company_id": want["company"],
        "ng_user_id": want["user"],
        "ng_order_id": want["order"],
    }


def _soak(records: list[dict[str, Any]], plan: Any) -> Soak:
    soak = Soak.__new__(Soak)  # only what check_mail reads
    soak.plan, soak.stack = plan, FakeStack(records)  # type: ignore[assignment]
    return soak


def test_exactly_the_expected_activities_pass() -> None:
    plan = make_plan(5, 60, 0.5)
    records = [_record(m, _wanted(plan.expected[m])) for m in sorted(plan.relevant())]
    result = _soak(records, plan).check_mail()
    assert result["activities"] == len(plan.relevant())
    assert result["duplicates"] == result["lost"] == result["irrelevant_stored"] == result["wrong_links"] == []
    assert all(_links(r) == _wanted(plan.expected[r["ng_message_id"]]) for r in records)


def test_doubled_lost_wrong_and_irrelevant_mail_are_each_found() -> None:
    plan = make_plan(5, 60, 0.5)
    relevant = sorted(plan.relevant())
    irrelevant = sorted(set(plan.expected) - plan.relevant())
    doubled, lost, wrong = relevant[0], relevant[1], relevant[2]
    records = [_record(m, _wanted(plan.expected[m])) for m in relevant if m != lost]
    records.append(_record(doubled, _wanted(plan.expected[doubled])))
    records = [{**r, "ng_user_id": 999_999} if r["ng_message_id"] == wrong else r for r in records]
    records.append(
        _record(irrelevant[0], {"direction": "incoming", "contact": 1, "company": 1, "user": 1, "order": None})
    )

    result = _soak(records, plan).check_mail()

    assert result["duplicates"] == [doubled]
    assert result["lost"] == [lost]
    assert [w["message_id"] for w in result["wrong_links"]] == [wrong]
    assert result["wrong_links"][0]["stored"]["user"] == 999_999
    assert result["irrelevant_stored"] == [irrelevant[0]]
