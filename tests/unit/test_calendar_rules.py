"""Calendar sync's pure rules (crm_core.domain.calendar, crm_core.domain.calendar_users), attacked
from the reviewer's side: what NET Genium holds after we write an event must fingerprint like the
event, all-day dates must survive every zone and daylight-saving change, and `resolve` must pick the
side the design says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_core.domain.calendar import (
    BODY_LIMIT,
    SUBJECT_LIMIT,
    CalendarPolicy,
    OutlookEvent,
    Side,
    SyncedFields,
    SyncWindow,
    activity_fields,
    activity_of_transaction,
    body_text,
    event_fields,
    netgenium_times,
    resolve,
    transaction_id,
)
from crm_core.domain.calendar_users import account, match_users, proxy_address

PRAGUE = CalendarPolicy()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def event(**kw: object) -> OutlookEvent:
    data: dict[str, object] = {
        "id": "ev-1",
        "subject": "Schůzka s klientem",
        "body_text": "Agenda",
        "start": utc(2026, 5, 4, 8, 30),
        "end": utc(2026, 5, 4, 9, 30),
        "all_day": False,
        "location": "Praha",
        "sensitivity": "normal",
    }
    data.update(kw)
    return OutlookEvent(**data)  # type: ignore[arg-type]


def all_day(first: date, days: int = 1, **kw: object) -> OutlookEvent:
    """An all-day event as Graph gives it in UTC: midnights of its first day and the day after."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return event(start=start, end=start + timedelta(days=days), all_day=True, **kw)


def stored(fields: SyncedFields, policy: CalendarPolicy) -> SyncedFields:
    """What NET Genium gives back after the sync wrote `fields` (the write path of `_create_activity`)."""
    start, end = netgenium_times(fields, policy)
    return activity_fields(
        fields.subject, start, end, fields.all_day, fields.location, fields.body, policy, private=fields.private
    )


def assert_round_trip(ev: OutlookEvent, policy: CalendarPolicy = PRAGUE) -> SyncedFields:
    fields = event_fields(ev, policy)
    back = stored(fields, policy)
    assert back.differing(fields) == []
    assert back.fingerprint() == fields.fingerprint()
    return fields


# ---- fingerprints: an event and the activity written from it are the same ------------------------


def test_timed_event_round_trips_with_equal_fingerprint() -> None:
    fields = assert_round_trip(event(start=datetime(2026, 5, 4, 10, 30, 15, 999_000, tzinfo=ZoneInfo("Europe/Prague"))))
    assert fields.start == utc(2026, 5, 4, 8, 30, 15)  # to the second, in UTC


def test_all_day_event_round_trips_with_equal_fingerprint() -> None:
    fields = assert_round_trip(all_day(date(2026, 7, 1), days=3))
    assert (fields.start, fields.end) == (utc(2026, 7, 1), utc(2026, 7, 4))


def test_private_event_round_trips_as_busy_time() -> None:
    fields = assert_round_trip(
        event(sensitivity="private", subject="Lékař", body_text="diagnóza", location="Nemocnice")
    )
    assert (fields.subject, fields.body, fields.location, fields.private) == ("Busy", "", "", True)


def test_confidential_counts_as_private_in_any_case() -> None:
    fields = event_fields(event(sensitivity="Confidential"), PRAGUE)
    assert fields.private and fields.subject == "Busy"


def test_private_details_are_kept_when_the_policy_says_so() -> None:
    policy = CalendarPolicy(sync_private_details=True)
    fields = assert_round_trip(event(sensitivity="private", subject="Lékař", location="Nemocnice"), policy)
    assert (fields.subject, fields.location, fields.private) == ("Lékař", "Nemocnice", True)


def test_long_subject_is_cut_to_the_column_and_round_trips() -> None:
    fields = assert_round_trip(event(subject="x" * 400, location="y" * 300))
    assert len(fields.subject) == SUBJECT_LIMIT
    assert len(fields.location) == 255


def test_long_subject_cut_on_a_space_round_trips() -> None:
    # The cut at 255 lands right after a space: what NET Genium stores must not read back differently
    # (a trailing space cut off on the way back would make every such event bounce once).
    subject = "a" * 254 + " " + "b" * 50
    fields = assert_round_trip(event(subject=subject, location="c" * 254 + " d"))
    assert len(fields.subject) <= SUBJECT_LIMIT
    assert fields.subject.startswith("a" * 254)


def test_subject_white_space_is_normalised_on_both_sides() -> None:
    ng = activity_fields("  Porada \t týmu\n", utc(2026, 5, 4, 8), utc(2026, 5, 4, 9), False, "", "", PRAGUE)
    ol = event_fields(event(subject="Porada   týmu", start=utc(2026, 5, 4, 8), end=utc(2026, 5, 4, 9)), PRAGUE)
    assert ng.subject == ol.subject == "Porada týmu"
    assert ng.fingerprint() == SyncedFields("Porada týmu", ol.start, ol.end, False).fingerprint()


def test_html_body_and_its_plain_text_have_equal_fingerprints() -> None:
    html = "<html><body><p>Line one<br>Line two&nbsp; &amp; &lt;b&gt;</p><p>Third</p></body></html>"
    ev = event(body_text=body_text(html, "html"))
    fields = assert_round_trip(ev)
    assert "<p>" not in fields.body and "&amp;" not in fields.body
    # The same text typed in NET Genium with other line breaks is no change.
    typed = activity_fields(
        fields.subject,
        fields.start,
        fields.end,
        False,
        fields.location,
        "Line one\r\nLine two & <b>\r\n\r\nThird",
        PRAGUE,
    )
    assert typed.fingerprint() == fields.fingerprint()
    assert typed.differing(fields) == []


def test_text_body_of_an_event_is_read_as_is() -> None:
    assert body_text("  a < b  ", "text") == "a < b"
    assert body_text(None, "html") == ""


def test_long_body_is_cut_and_round_trips() -> None:
    fields = assert_round_trip(event(body_text="slovo " * 10_000))
    assert len(fields.body) <= BODY_LIMIT


def test_a_real_change_changes_the_fingerprint() -> None:
    base = event_fields(event(), PRAGUE)
    for change in (
        {"subject": "Jiná"},
        {"location": "Brno"},
        {"body_text": "Jiná agenda"},
        {"start": utc(2026, 5, 4, 8, 0)},
        {"end": utc(2026, 5, 4, 10, 0)},
        {"sensitivity": "private"},
    ):
        assert event_fields(event(**change), PRAGUE).fingerprint() != base.fingerprint(), change


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        activity_fields("x", datetime(2026, 5, 4, 8), datetime(2026, 5, 4, 9), False, "", "", PRAGUE)


def test_a_partial_event_cannot_be_compared() -> None:
    partial = OutlookEvent(id="ev-1", location="Brno")
    assert partial.partial
    with pytest.raises(ValueError):
        event_fields(partial, PRAGUE)


# ---- all-day dates: exact in every zone, across daylight-saving changes ----------------------------


@pytest.mark.parametrize(
    ("first", "start_utc", "end_utc"),
    [
        # Spring forward: midnight of 29 March is still CET (+1), midnight of 30 March is CEST (+2).
        (date(2026, 3, 29), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        # Fall back: midnight of 25 October is CEST (+2), of 26 October CET (+1).
        (date(2026, 10, 25), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        # The day before each change, whose end is the change day's midnight.
        (date(2026, 3, 28), utc(2026, 3, 27, 23), utc(2026, 3, 28, 23)),
        (date(2026, 10, 24), utc(2026, 10, 23, 22), utc(2026, 10, 24, 22)),
    ],
)
def test_all_day_dates_in_prague_across_daylight_saving(first: date, start_utc: datetime, end_utc: datetime) -> None:
    fields = event_fields(all_day(first), PRAGUE)
    start, end = netgenium_times(fields, PRAGUE)
    assert (start, end) == (start_utc, end_utc)
    zone = ZoneInfo("Europe/Prague")
    assert start.astimezone(zone).replace(tzinfo=None) == datetime(first.year, first.month, first.day)
    assert end.astimezone(zone).date() == first + timedelta(days=1)
    back = activity_fields(fields.subject, start, end, True, fields.location, fields.body, PRAGUE)
    assert (back.start.date(), back.end.date()) == (first, first + timedelta(days=1))
    assert back.fingerprint() == fields.fingerprint()


def test_all_day_week_spanning_a_daylight_saving_change_keeps_its_dates() -> None:
    fields = event_fields(all_day(date(2026, 3, 26), days=7), PRAGUE)
    start, end = netgenium_times(fields, PRAGUE)
    assert (start, end) == (utc(2026, 3, 25, 23), utc(2026, 4, 1, 22))
    back = activity_fields("x", start, end, True, "", "", PRAGUE)
    assert (back.start.date(), back.end.date()) == (date(2026, 3, 26), date(2026, 4, 2))


@pytest.mark.parametrize(
    ("zone", "first", "start_utc"),
    [
        ("America/Los_Angeles", date(2026, 3, 8), utc(2026, 3, 8, 8)),  # west of UTC, US spring forward
        ("America/Los_Angeles", date(2026, 11, 1), utc(2026, 11, 1, 7)),  # US fall back
        ("America/Los_Angeles", date(2026, 12, 31), utc(2026, 12, 31, 8)),
        ("Asia/Tokyo", date(2026, 1, 1), utc(2025, 12, 31, 15)),  # east of UTC: the instant is the day before
        ("Asia/Tokyo", date(2026, 3, 29), utc(2026, 3, 28, 15)),
        ("UTC", date(2026, 3, 29), utc(2026, 3, 29)),
    ],
)
def test_all_day_dates_in_zones_east_and_west(zone: str, first: date, start_utc: datetime) -> None:
    policy = CalendarPolicy(time_zone=zone)
    fields = event_fields(all_day(first), policy)
    assert (fields.start.date(), fields.end.date()) == (first, first + timedelta(days=1))
    start, end = netgenium_times(fields, policy)
    assert start == start_utc
    assert start.astimezone(ZoneInfo(zone)).hour == 0 and end.astimezone(ZoneInfo(zone)).hour == 0
    assert end.astimezone(ZoneInfo(zone)).date() == first + timedelta(days=1)
    back = activity_fields(fields.subject, start, end, True, fields.location, fields.body, policy)
    assert (back.start.date(), back.end.date()) == (first, first + timedelta(days=1))
    assert back.fingerprint() == fields.fingerprint()


def test_all_day_activity_with_end_equal_to_start_is_one_day() -> None:
    start = datetime(2026, 5, 4, tzinfo=ZoneInfo("Europe/Prague"))
    fields = activity_fields("x", start, start, True, "", "", PRAGUE)
    assert (fields.start, fields.end) == (utc(2026, 5, 4), utc(2026, 5, 5))


# ---- resolve --------------------------------------------------------------------------------------

T0 = utc(2026, 5, 1, 12)
BASE = SyncedFields("Porada", utc(2026, 5, 4, 8), utc(2026, 5, 4, 9), False, "Praha", "Agenda")
OL_CHANGED = SyncedFields("Porada (přesunuto)", utc(2026, 5, 4, 10), utc(2026, 5, 4, 11), False, "Praha", "Agenda")
NG_CHANGED = SyncedFields("Porada", utc(2026, 5, 4, 8), utc(2026, 5, 4, 9), False, "Brno", "Agenda")


def test_resolve_echo_writes_nothing() -> None:
    same = SyncedFields(BASE.subject, BASE.start, BASE.end, False, BASE.location, "  Agenda\n")
    result = resolve(BASE.fingerprint(), BASE, T0, same, T0 + timedelta(hours=1))
    assert result.write_to is None and result.loser is None and result.lost_fields == ()


def test_resolve_equal_sides_write_nothing_even_without_a_base() -> None:
    assert resolve(None, OL_CHANGED, T0, OL_CHANGED, T0).write_to is None


def test_resolve_only_outlook_changed_copies_it_to_netgenium() -> None:
    # NET Genium's modification is later, but it is the base: no conflict.
    result = resolve(BASE.fingerprint(), OL_CHANGED, T0, BASE, T0 + timedelta(days=1))
    assert result.write_to is Side.NETGENIUM
    assert result.fields == OL_CHANGED
    assert result.loser is None and result.lost_fields == ()


def test_resolve_only_netgenium_changed_copies_it_to_outlook() -> None:
    result = resolve(BASE.fingerprint(), BASE, T0 + timedelta(days=1), NG_CHANGED, T0)
    assert result.write_to is Side.OUTLOOK
    assert result.fields == NG_CHANGED
    assert result.loser is None


def test_resolve_both_changed_netgenium_later_wins() -> None:
    result = resolve(BASE.fingerprint(), OL_CHANGED, T0, NG_CHANGED, T0 + timedelta(seconds=1))
    assert result.write_to is Side.OUTLOOK
    assert result.fields == NG_CHANGED
    assert result.loser is Side.OUTLOOK
    assert set(result.lost_fields) == {"subject", "start", "end", "location"}


def test_resolve_both_changed_outlook_later_wins() -> None:
    result = resolve(BASE.fingerprint(), OL_CHANGED, T0 + timedelta(seconds=1), NG_CHANGED, T0)
    assert result.write_to is Side.NETGENIUM
    assert result.fields == OL_CHANGED
    assert result.loser is Side.NETGENIUM
    assert set(result.lost_fields) == {"subject", "start", "end", "location"}


def test_resolve_tie_goes_to_outlook_whatever_the_order() -> None:
    result = resolve(BASE.fingerprint(), OL_CHANGED, T0, NG_CHANGED, T0)
    assert (result.write_to, result.loser, result.fields) == (Side.NETGENIUM, Side.NETGENIUM, OL_CHANGED)
    # A lost mapping (no base) with both sides different is decided the same way.
    result = resolve(None, OL_CHANGED, T0, NG_CHANGED, T0)
    assert (result.write_to, result.loser) == (Side.NETGENIUM, Side.NETGENIUM)


def test_resolve_lost_fields_name_only_fields() -> None:
    ng = SyncedFields("Porada", utc(2026, 5, 4, 8), utc(2026, 5, 4, 9), False, "Praha", "Jiná agenda")
    result = resolve(BASE.fingerprint(), OL_CHANGED, T0, ng, T0 + timedelta(minutes=5))
    assert set(result.lost_fields) == {"subject", "start", "end", "body"}
    assert all(
        name in {"subject", "start", "end", "all_day", "location", "body", "private"} for name in result.lost_fields
    )


# ---- who is synced --------------------------------------------------------------------------------


def test_proxy_addresses_smtp_any_case_x500_ignored() -> None:
    assert proxy_address("SMTP:Jana.Nova@Firma.cz") == "jana.nova@firma.cz"
    assert proxy_address("smtp:alias@firma.cz") == "alias@firma.cz"
    assert proxy_address("X500:/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=jana@firma.cz") == ""
    assert proxy_address("SIP:jana@firma.cz") == ""


def test_match_by_mail_upn_and_proxy_addresses_case_insensitive() -> None:
    accounts = [
        account("m-jana", "Jana.Nova@Firma.cz", "jana@firma.onmicrosoft.com", []),
        account("m-petr", None, "Petr@Firma.CZ", []),
        account("m-eva", None, "eva@firma.onmicrosoft.com", ["SMTP:eva@firma.cz", "smtp:E.Kralova@Firma.cz"]),
    ]
    result = match_users(
        [(1, "jana.nova@firma.cz"), (2, "PETR@firma.cz"), (3, "e.kralova@firma.cz"), (4, "nikdo@firma.cz")],
        accounts,
    )
    assert {(u.ng_user_id, u.mailbox) for u in result.synced} == {(1, "m-jana"), (2, "m-petr"), (3, "m-eva")}
    assert [(u.ng_user_id, u.reason) for u in result.unmatched] == [(4, "no Microsoft 365 user has this address")]


def test_x500_proxy_address_matches_nobody() -> None:
    accounts = [account("m-jana", None, "jana@firma.onmicrosoft.com", ["X500:jana@firma.cz"])]
    result = match_users([(1, "jana@firma.cz")], accounts)
    assert result.synced == ()
    assert [u.ng_user_id for u in result.unmatched] == [1]


def test_two_accounts_with_one_address_match_nobody_with_the_reason() -> None:
    accounts = [
        account("m-1", "info@firma.cz", None, []),
        account("m-2", None, "sdilena@firma.cz", ["smtp:INFO@firma.cz"]),
    ]
    result = match_users([(7, "info@firma.cz")], accounts)
    assert result.synced == ()
    (user,) = result.unmatched
    assert user.ng_user_id == 7
    assert "2 Microsoft 365 users" in user.reason


def test_one_account_listing_an_address_twice_is_one_account() -> None:
    accounts = [account("m-1", "jana@firma.cz", "JANA@firma.cz", ["SMTP:jana@firma.cz"])]
    assert accounts[0].addresses == ("jana@firma.cz",)
    assert [u.mailbox for u in match_users([(1, "jana@firma.cz")], accounts).synced] == ["m-1"]


@pytest.mark.parametrize("email", ["", "   ", None])
def test_user_without_email_is_unmatched(email: str | None) -> None:
    result = match_users([(5, email)], [account("m-1", "", None, [])])  # type: ignore[list-item]
    assert result.synced == ()
    (user,) = result.unmatched
    assert user.ng_user_id == 5
    assert "no e-mail" in user.reason


def test_two_netgenium_users_on_one_account_sync_only_the_first() -> None:
    accounts = [account("m-jana", "jana@firma.cz", None, ["smtp:jana.nova@firma.cz"])]
    result = match_users([(12, "jana.nova@firma.cz"), (3, "Jana@Firma.cz")], accounts)
    assert [(u.ng_user_id, u.mailbox) for u in result.synced] == [(3, "m-jana")]
    (second,) = result.unmatched
    assert second.ng_user_id == 12
    assert "already synced with NET Genium user 3" in second.reason


# ---- transaction ids and the window ---------------------------------------------------------------


def test_transaction_id_is_stable_and_distinct() -> None:
    first = transaction_id("m-jana", 41)
    assert first == transaction_id("m-jana", 41)
    assert first == transaction_id("M-JANA", 41)
    others = {transaction_id("m-jana", 42), transaction_id("m-petr", 41), transaction_id("m-jana", 410)}
    assert first not in others and len(others) == 3
    # It names the activity, so that an event of ours is known as ours from a delta item alone.
    assert activity_of_transaction(first) == 41
    assert activity_of_transaction("6f1c3b8e-3f3c-4f4b-9a7e-6b9e2c1d0a11") is None
    assert activity_of_transaction("crm-ng-x-1") is None


def test_window_around_a_moment() -> None:
    window = SyncWindow.around(utc(2026, 3, 29, 23, 30), 30, 365)
    assert window.start == utc(2026, 2, 27)
    assert window.end == utc(2027, 3, 29)
    assert window.key() == "2026-02-27..2027-03-29"


def test_window_holds_what_overlaps_it() -> None:
    window = SyncWindow(utc(2026, 3, 1), utc(2026, 4, 1))
    assert window.holds(utc(2026, 3, 10, 8), utc(2026, 3, 10, 9))
    assert window.holds(utc(2026, 2, 28, 8), utc(2026, 3, 1, 9))  # straddles the start
    assert window.holds(utc(2026, 3, 31, 23), utc(2026, 4, 1, 1))  # straddles the end
    assert window.holds(utc(2026, 1, 1), utc(2026, 12, 31))  # covers it
    assert not window.holds(utc(2026, 2, 10, 8), utc(2026, 2, 10, 9))  # before
    assert not window.holds(utc(2026, 4, 1), utc(2026, 4, 1, 1))  # starts at its end
    assert not window.holds(utc(2026, 5, 1), utc(2026, 5, 2))  # after


def test_window_key_moves_with_the_day_only() -> None:
    morning = SyncWindow.around(utc(2026, 3, 29, 0, 1), 30, 365)
    evening = SyncWindow.around(utc(2026, 3, 29, 23, 59), 30, 365)
    tomorrow = SyncWindow.around(utc(2026, 3, 30, 0, 1), 30, 365)
    assert morning.key() == evening.key() != tomorrow.key()
