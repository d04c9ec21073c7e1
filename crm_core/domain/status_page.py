"""The status page: one self-contained HTML document from a `StatusReport`, and its HTTP headers.

Pure: text in, text out. The page loads nothing from anywhere (no script, font, image or style
sheet of its own or another site's): its one style block is inline and allowed by its hash in the
Content-Security-Policy, and the hourly chart is inline SVG drawn with presentation attributes
(no style attributes, which the policy would refuse). Every value is HTML-escaped; a report holds
no mail subject or body to begin with. Key numbers carry `data-figure` attributes, so that a test
(or a monitoring probe) can read them without parsing the prose.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from crm_core.domain.status import StatusReport, since_text

STYLE = """
:root{color-scheme:light;--ok:#1b7f3b;--bad:#b42318;--muted:#5b6470;--line:#d9dde3;--cap:#2f6fde;--skip:#a3abb6}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,"Segoe UI",Roboto,sans-serif;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 8px}
.sub{color:var(--muted);margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:170px}
.card .n{font-size:26px;font-weight:600;display:block}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .d{color:var(--muted);font-size:12px;word-break:break-all}
.bad{color:var(--bad)}.ok{color:var(--ok)}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);min-width:420px}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:var(--muted);font-style:italic}
.chart{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px}
.legend{color:var(--muted);font-size:12px;margin:4px 0 0}
.legend b{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.legend .c{background:var(--cap)}.legend .s{background:var(--skip)}
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_CALENDAR_SUBSCRIPTION_ROWS = 10
_AXIS = 'text-anchor="end" font-size="11" fill="#5b6470"'
_CHART_WIDTH, _CHART_HEIGHT, _CHART_TOP, _CHART_BOTTOM, _CHART_LEFT = 760, 200, 12, 26, 36


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """What the `status` HTTP function answers: the body, its type and the headers."""

    body: str
    mimetype: str
    headers: dict[str, str] = field(default_factory=dict)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _at(value: datetime | str | None) -> str:
    """A time for reading, in UTC to the second; text that is no ISO time is shown as it is."""
    if value is None:
        return "never"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _card(label: str, figure: str, value: object, detail: str = "", css: str = "") -> str:
    cls = f"n {css}".strip()
    extra = f'<span class="d">{detail}</span>' if detail else ""
    return (
        f'<div class="card"><span class="l">{_e(label)}</span>'
        f'<span class="{cls}" data-figure="{_e(figure)}">{_e(value)}</span>{extra}</div>'
    )


def _table(headers: list[str], rows: list[str], empty: str, name: str) -> str:
    if not rows:
        return f'<p class="empty" data-table="{_e(name)}" data-rows="0">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table data-table="{_e(name)}" data-rows="{len(rows)}"><tr>{head}</tr>{"".join(rows)}</table>'


def chart_svg(report: StatusReport) -> str:
    """Captured and skipped mails per hour as grouped bars (captured left, skipped right)."""
    buckets = report.hours
    plot_w = _CHART_WIDTH - _CHART_LEFT - 8
    plot_h = _CHART_HEIGHT - _CHART_TOP - _CHART_BOTTOM
    base_y = _CHART_TOP + plot_h
    top = max([1, *(max(b.captured, b.skipped) for b in buckets)])
    slot = plot_w / max(1, len(buckets))
    bar = max(1.0, slot * 0.36)
    parts = [
        f'<svg data-chart="hourly" xmlns="http://www.w3.org/2000/svg" width="{_CHART_WIDTH}" height="{_CHART_HEIGHT}" '
        f'viewBox="0 0 {_CHART_WIDTH} {_CHART_HEIGHT}" role="img" '
        f'aria-label="Captured and skipped mails per hour, last {report.window_hours} hours">',
        f'<line x1="{_CHART_LEFT}" y1="{base_y}" x2="{_CHART_WIDTH - 8}" y2="{base_y}" stroke="#9aa3ad"/>',
        f'<text x="{_CHART_LEFT - 6}" y="{_CHART_TOP + 8}" {_AXIS}>{top}</text>',
        f'<text x="{_CHART_LEFT - 6}" y="{base_y}" {_AXIS}>0</text>',
    ]
    for index, bucket in enumerate(buckets):
        x0 = _CHART_LEFT + index * slot + (slot - 2 * bar) / 2
        hour = bucket.start.strftime("%H:00")
        for offset, kind, count, colour in (
            (0.0, "captured", bucket.captured, "#2f6fde"),
            (bar, "skipped", bucket.skipped, "#a3abb6"),
        ):
            height = plot_h * count / top
            parts.append(
                f'<rect data-bar="{kind}" data-hour="{_e(bucket.start.isoformat())}" data-count="{count}" '
                f'x="{x0 + offset:.1f}" y="{base_y - height:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{_e(hour)} UTC: {count} {kind}</title></rect>'
            )
        if index % 3 == 0:
            parts.append(
                f'<text x="{x0 + bar:.1f}" y="{base_y + 16}" text-anchor="middle" font-size="11" '
                f'fill="#5b6470">{_e(hour)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_status_page(report: StatusReport) -> str:
    """The whole page; the same figures as `report.model_dump_json()`."""
    since = since_text(report.seconds_since_last_capture)
    last_detail = ""
    if report.last_captured_at is not None:
        last_detail = (
            f'<span data-figure="last-captured-at" data-value="{_e(report.last_captured_at.isoformat())}">'
            f"{_e(_at(report.last_captured_at))}</span><br>"
            f'<span data-figure="last-captured-id">{_e(report.last_captured_id or "")}</span>'
        )
    poison_total = report.poison_total
    cards = "".join(
        [
            _card(f"captured, last {report.window_hours} h", "captured", report.captured),
            _card(f"skipped, last {report.window_hours} h", "skipped", report.skipped),
            _card("last captured mail", "since-last-capture", since, last_detail),
            _card("poison queue items", "poison-total", poison_total, css="bad" if poison_total else "ok"),
            _card(
                "unmatched calendar users",
                "calendar-unmatched",
                len(report.calendar.unmatched),
                css="bad" if report.calendar.unmatched else "",
            ),
        ]
    )
    reasons = [
        f'<tr><td data-figure="skip-reason">{_e(r.reason)}</td>'
        f'<td class="num" data-figure="skip-count" data-reason="{_e(r.reason)}">{r.count}</td></tr>'
        for r in report.skip_reasons
    ]
    poison = [
        f'<tr><td>{_e(q.queue)}-poison</td><td class="num" data-figure="poison-depth" data-queue="{_e(q.queue)}">'
        f"{'no queue' if q.depth is None else q.depth}</td></tr>"
        for q in report.poison
    ]
    # Every mail subscription; of the calendar ones (one per synced user) the soonest to expire.
    mail_subscriptions = [s for s in report.subscriptions if s.kind == "mail"]
    calendar_subscriptions = sorted((s for s in report.subscriptions if s.kind != "mail"), key=lambda s: s.expires_at)
    shown = mail_subscriptions + calendar_subscriptions[:_CALENDAR_SUBSCRIPTION_ROWS]
    subscriptions = [
        f"<tr><td>{_e(s.kind)}</td><td>{_e(s.mailbox)}</td><td>{_e(_at(s.expires_at))}</td>"
        f'<td class="num {"bad" if s.expired else ""}" data-figure="subscription-minutes-left">'
        f"{'expired' if s.expired else _e(s.minutes_left)}</td><td>{_e(s.id)}</td></tr>"
        for s in shown
    ]
    hidden = len(calendar_subscriptions) - _CALENDAR_SUBSCRIPTION_ROWS
    if hidden > 0:
        subscriptions.append(f'<tr><td colspan="5">and {hidden} more calendar subscriptions</td></tr>')
    expired = sum(1 for s in report.subscriptions if s.expired)
    correspondents = [
        f'<tr><td>{_e(c.address)}</td><td class="num" data-figure="correspondent-count" data-address="{_e(c.address)}">'
        f"{c.count}</td><td>{_e(_at(c.last_seen))}</td></tr>"
        for c in report.correspondents
    ]
    calendar = report.calendar
    synced = [
        f"<tr><td>{_e(u.email)}</td><td>{_e(u.ng_user_id)}</td>"
        f"<td>{_e(_at(u.synced_up_to) if u.synced_up_to else 'not yet')}</td></tr>"
        for u in calendar.synced
    ]
    unmatched = [
        f'<tr><td>{_e(u.email)}</td><td>{_e(u.ng_user_id)}</td><td class="bad">{_e(u.reason)}</td></tr>'
        for u in calendar.unmatched
    ]
    conflicts = [
        f"<tr><td>{_e(_at(c.at))}</td><td>{_e(c.mailbox)}</td><td>{_e(c.winner)} over {_e(c.loser)}</td>"
        f"<td>{_e(', '.join(c.fields))}</td></tr>"
        for c in calendar.conflicts
    ]
    body = [
        "<h1>CRMService status</h1>",
        f'<p class="sub">Generated <span data-figure="generated-at" data-value="{_e(report.generated_at.isoformat())}">'
        f"{_e(_at(report.generated_at))}</span>; "
        f"figures from the capture ledger and the service's tables, last {report.window_hours} hours "
        f"from {_e(_at(report.window_start))}.</p>",
        f'<div class="cards">{cards}</div>',
        f"<h2>Mails per hour (UTC), last {report.window_hours} hours</h2>",
        f'<div class="chart">{chart_svg(report)}<p class="legend"><b class="c"></b>captured'
        '<b class="s"></b>skipped</p></div>',
        "<h2>Skip reasons</h2>",
        _table(["reason", "mails"], reasons, "no mail skipped in the window", "skip-reasons"),
        "<h2>Poison queues</h2>",
        _table(["queue", "items"], poison, "no poison queue", "poison"),
        "<h2>Subscriptions</h2>",
        f'<p><span data-figure="subscriptions">{len(report.subscriptions)}</span> '
        f"({len(mail_subscriptions)} mail, {len(calendar_subscriptions)} calendar), "
        f'<span data-figure="subscriptions-expired" class="{"bad" if expired else ""}">{expired}</span> expired.</p>',
        _table(["kind", "mailbox", "expires", "minutes left", "id"], subscriptions, "no subscription", "subscriptions"),
        "<h2>Top unmatched correspondents</h2>",
        _table(["address", "mails", "last seen"], correspondents, "none", "correspondents"),
        "<h2>Calendar sync</h2>",
        f'<p>Users refreshed: <span data-figure="calendar-refreshed-at">{_e(_at(calendar.refreshed_at))}</span>; '
        f'<span data-figure="calendar-synced">{len(calendar.synced)}</span> synced, '
        f'<span data-figure="calendar-conflicts">{calendar.conflicts_total}</span> conflicts in all.</p>',
        _table(["synced user", "NET Genium user", "NET Genium changes synced up to"], synced, "no user", "synced"),
        "<h2>Users not in calendar sync</h2>",
        _table(["user", "NET Genium user", "why"], unmatched, "none", "unmatched"),
        "<h2>Recent calendar conflicts</h2>",
        _table(["at", "mailbox", "won", "fields"], conflicts, "none", "conflicts"),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        f"<title>CRMService status</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def status_response(report: StatusReport, format: str | None = None) -> StatusResponse:
    """The page, or with `format=json` the same figures as one JSON document."""
    if (format or "").lower() == "json":
        return StatusResponse(report.model_dump_json(), "application/json", {**SECURITY_HEADERS})
    return StatusResponse(render_status_page(report), "text/html", {**SECURITY_HEADERS})
