"""The status page rendered from a report: escaping, the empty state, the 24-hour chart, its headers."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_core.domain.state import LedgerState, SubscriptionRecord
from crm_core.domain.status import LedgerOutcome, StatusReport, build_status, skip_category, window_start
from crm_core.domain.status_page import STYLE, render_status_page, status_response
from tests.unit.test_function_app import ENV

NOW = datetime(2026, 12, 1, 6, 20, tzinfo=UTC)


def report(rows: list[LedgerOutcome] | None = None, **overrides: object) -> StatusReport:
    fields: dict[str, object] = {
        "now": NOW,
        "rows": rows or [],
        "last_written": None,
        "subscriptions": [],
        "poison": {"capture-tasks": 0, "lifecycle-tasks": None, "calendar-tasks": 0},
        "correspondents": [],
        "calendar": None,
    }
    fields.update(overrides)
    return build_status(**fields)  # type: ignore[arg-type]


def figure(page: str, name: str) -> str:
    found: list[str] = re.findall(rf'data-figure="{re.escape(name)}"[^>]*>([^<]*)<', page)
    assert len(found) == 1, (name, found)
    return found[0]


def bars(page: str) -> list[tuple[str, str, int]]:
    return [
        (kind, hour, int(count))
        for kind, hour, count in re.findall(r'<rect data-bar="(\w+)" data-hour="([^"]+)" data-count="(\d+)"', page)
    ]


def test_the_empty_state_shows_zeros_never_and_a_flat_chart_of_24_hours() -> None:
    page = render_status_page(report())
    assert figure(page, "captured") == "0"
    assert figure(page, "skipped") == "0"
    assert figure(page, "since-last-capture") == "never"
    assert figure(page, "poison-total") == "0"
    drawn = bars(page)
    assert len(drawn) == 48 and {count for _, _, count in drawn} == {0}
    assert 'data-table="skip-reasons" data-rows="0"' in page
    assert "no queue" in page  # lifecycle-tasks-poison was never created


def test_the_chart_has_one_bucket_per_hour_and_counts_each_row_in_its_hour() -> None:
    start = window_start(NOW)
    assert start == datetime(2026, 11, 30, 7, tzinfo=UTC)
    rows = [
        LedgerOutcome("<a@x>", LedgerState.WRITTEN, start + timedelta(minutes=5)),
        LedgerOutcome("<b@x>", LedgerState.WRITTEN, start + timedelta(minutes=59, seconds=59)),
        LedgerOutcome("<c@x>", LedgerState.SKIPPED, start + timedelta(hours=1), "automated: Precedence is bulk"),
        LedgerOutcome("<d@x>", LedgerState.WRITTEN, NOW - timedelta(minutes=1)),
        LedgerOutcome("<old@x>", LedgerState.WRITTEN, start - timedelta(seconds=1)),  # before the window
        LedgerOutcome("<e@x>", LedgerState.SKIPPED, NOW - timedelta(minutes=2), "sender not in address book"),
        LedgerOutcome("<f@x>", LedgerState.SKIPPED, NOW - timedelta(minutes=3), "automated: Auto-Submitted is x"),
    ]
    built = report(rows)
    assert [b.start for b in built.hours] == [start + timedelta(hours=i) for i in range(24)]
    assert (built.captured, built.skipped) == (3, 3)
    assert [(b.captured, b.skipped) for b in built.hours if b.captured or b.skipped] == [(2, 0), (0, 1), (1, 2)]
    assert built.last_captured_id == "<d@x>" and built.seconds_since_last_capture == 60
    assert [(r.reason, r.count) for r in built.skip_reasons] == [("automated", 2), ("sender not in address book", 1)]

    page = render_status_page(built)
    drawn = bars(page)
    assert sum(count for kind, _, count in drawn if kind == "captured") == 3
    assert sum(count for kind, _, count in drawn if kind == "skipped") == 3
    assert ("captured", start.isoformat(), 2) in drawn
    assert ("skipped", (start + timedelta(hours=23)).isoformat(), 2) in drawn
    assert figure(page, "captured") == "3" and figure(page, "since-last-capture") == "1 min ago"
    assert 'data-reason="automated">2<' in page


def test_an_older_capture_comes_from_the_look_back_when_the_window_has_none() -> None:
    older = LedgerOutcome("<older@x>", LedgerState.WRITTEN, NOW - timedelta(days=3))
    built = report([], last_written=older)
    assert built.captured == 0 and built.last_captured_id == "<older@x>"
    assert figure(render_status_page(built), "since-last-capture") == "3 days ago"


def test_every_value_is_escaped_and_the_client_state_secret_is_never_shown() -> None:
    nasty = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    subscription = SubscriptionRecord(
        id="sub<1>", resource="r", kind="mail", mailbox=nasty, client_state="TOP-SECRET-STATE",
        expires_at=NOW + timedelta(hours=1), created_at=NOW,
    )  # fmt: skip
    built = report(
        [LedgerOutcome(nasty, LedgerState.WRITTEN, NOW), LedgerOutcome("<s@x>", LedgerState.SKIPPED, NOW, nasty)],
        subscriptions=[subscription],
        correspondents=[{"address": nasty, "count": 2, "last_seen": nasty}],
        calendar={
            "refreshed_at": nasty,
            "synced": [{"email": nasty, "ng_user_id": 1, "netgenium_watermark": nasty}],
            "unmatched": [{"email": nasty, "ng_user_id": 2, "reason": nasty}],
            "conflicts_total": 1,
            "conflicts": [
                {"at": nasty, "mailbox": nasty, "winner": "outlook", "loser": "netgenium", "fields": [nasty]}
            ],
        },
    )
    page = render_status_page(built)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&quot;&gt;" in page
    assert "TOP-SECRET-STATE" not in page
    assert "TOP-SECRET-STATE" not in status_response(built, "json").body
    shown = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert figure(page, "last-captured-id") == shown


def test_the_page_loads_nothing_and_its_policy_allows_only_its_own_style_block() -> None:
    response = status_response(report([LedgerOutcome("<a@x>", LedgerState.WRITTEN, NOW)]))
    page = response.body
    assert response.mimetype == "text/html"
    for forbidden in ("<script", "<link", "<iframe", "<img", " src=", " href=", "url(", "@import"):
        assert forbidden not in page, forbidden
    assert page.count("<style>") == 1 and " style=" not in page
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    style_block = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert style_block == STYLE
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none';")
    assert f"style-src 'sha256-{digest}'" in policy and "img-src data:" in policy
    assert "script-src" not in policy  # none at all: default-src 'none' covers scripts
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_json_has_the_same_figures_as_the_page() -> None:
    built = report(
        [
            LedgerOutcome("<a@x>", LedgerState.WRITTEN, NOW),
            LedgerOutcome("<b@x>", LedgerState.SKIPPED, NOW, "internal"),
        ],
        poison={"capture-tasks": 3, "lifecycle-tasks": None, "calendar-tasks": 1},
    )
    response = status_response(built, "json")
    data = json.loads(response.body)
    assert response.mimetype == "application/json"
    assert (data["captured"], data["skipped"], data["poison_total"]) == (1, 1, 4)
    assert data["skip_reasons"] == [{"reason": "internal", "count": 1}]
    assert len(data["hours"]) == 24
    page = render_status_page(built)
    assert (figure(page, "captured"), figure(page, "skipped"), figure(page, "poison-total")) == ("1", "1", "4")


def test_skip_reasons_are_counted_by_their_kind() -> None:
    assert skip_category("automated: Precedence is bulk") == "automated"
    assert skip_category("excluded sender: offers@newsletter.example") == "excluded sender"
    assert skip_category("sender not in address book") == "sender not in address book"
    assert skip_category("something new: detail") == "something new"
    assert skip_category(None) == "unknown"


STATUS_PROBE = """
import json
import function_app
[status] = [f for f in function_app.app.get_functions() if f.get_function_name() == "status"]
trigger = status.get_trigger()
print(json.dumps({"route": trigger.route, "methods": [str(getattr(m, "value", m)) for m in trigger.methods or []],
                  "auth": str(getattr(trigger.auth_level, "value", trigger.auth_level))}))
"""


def test_the_status_function_is_a_get_route_behind_a_function_key() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", STATUS_PROBE],
        cwd=root,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["route"] == "status"
    assert [m.upper() for m in found["methods"]] == ["GET"]
    assert found["auth"].lower() == "function"


def test_calendar_subscriptions_beyond_ten_are_summed_up_and_expired_ones_counted() -> None:
    def record(n: int, kind: str, minutes: int) -> SubscriptionRecord:
        expires = NOW + timedelta(minutes=minutes)
        return SubscriptionRecord(f"s{n}", "r", kind, f"u{n}@firma.example", "secret", expires, NOW)

    records = [record(0, "mail", 600)] + [record(n, "events", 30 * n - 60) for n in range(1, 16)]
    page = render_status_page(report(subscriptions=records))
    assert 'data-table="subscriptions" data-rows="12"' in page  # the mail one, ten calendar ones, "and 5 more"
    assert "and 5 more calendar subscriptions" in page
    assert figure(page, "subscriptions") == "16" and figure(page, "subscriptions-expired") == "2"  # n = 1, 2
    assert "u1@firma.example" in page and "u15@firma.example" not in page  # the soonest to expire are shown
    assert page.count(">expired<") == 2


def test_times_are_shown_in_utc_to_the_second_and_kept_exact_in_data_values() -> None:
    at = datetime(2026, 12, 1, 7, 5, 9, 123456, tzinfo=UTC)
    page = render_status_page(report([LedgerOutcome("<a@x>", LedgerState.WRITTEN, at)], now=at + timedelta(seconds=5)))
    assert figure(page, "last-captured-at") == "2026-12-01 07:05:09 UTC"
    assert f'data-value="{at.isoformat()}"' in page
