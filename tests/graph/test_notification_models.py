"""The webhook payload models: Graph's documented samples parse, bad bodies are refused with a 4xx."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_core.domain.notifications import (
    MAX_BODY_BYTES,
    ChangeType,
    LifecycleEvent,
    NotificationRejected,
    ValidationRequest,
    client_state_matches,
    parse_change_notifications,
    parse_lifecycle_notifications,
    parse_notifications,
)
from tests.graph.conftest import fixture_json

SAMPLE = fixture_json("change_notification.json")


def test_the_documented_change_notification_parses() -> None:
    collection = parse_change_notifications(json.dumps(SAMPLE))
    [note] = collection.value
    assert note.change_type is ChangeType.CREATED
    assert note.subscription_id == "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
    assert note.item_id == "AAMkADk0MGFkODE3LWE4MmYtNDRhOS04OGRlLWVkYjNhYjg0MTk3MABGAAAAAAA="
    assert note.user_id == "f0a2e8d4-1b39-4b0f-9d0a-4c1a4f6a8c11"
    assert note.tenant_id == "84bd8158-6d4d-4958-8b9f-9d6445542f95"
    assert client_state_matches(note.client_state, "secretClientValue")
    assert not client_state_matches(note.client_state, "other")
    assert not client_state_matches(None, "secretClientValue")


def test_the_documented_lifecycle_notification_parses() -> None:
    collection = parse_lifecycle_notifications(json.dumps(fixture_json("lifecycle_notification.json")))
    assert [n.lifecycle_event for n in collection.value] == [LifecycleEvent.REAUTHORIZATION_REQUIRED]


def test_a_mixed_post_is_split_by_kind_and_unknown_fields_are_kept() -> None:
    change = {**SAMPLE["value"][0], "newGraphField": {"x": 1}}
    lifecycle = fixture_json("lifecycle_notification.json")["value"][0] | {"lifecycleEvent": "missed"}
    batch = parse_notifications(json.dumps({"value": [change, lifecycle], "futureTopLevel": True}))
    assert len(batch.changes) == 1 and batch.lifecycle[0].lifecycle_event is LifecycleEvent.MISSED
    assert batch.changes[0].model_extra == {"newGraphField": {"x": 1}}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "empty"),
        (b"not json {", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"value": {}}', 400, "'value' must be a list"),
        (b'{"value": []}', 400, "value"),
        (json.dumps({"value": [{"changeType": "created", "resource": "x"}]}).encode(), 400, "subscriptionId"),
        (json.dumps({"value": [{**SAMPLE["value"][0], "changeType": "exploded"}]}).encode(), 400, "changeType"),
        (json.dumps({"value": [{**SAMPLE["value"][0], "clientState": "x" * 300}]}).encode(), 400, "clientState"),
        (b'{"value": [' + b"[" * 5000 + b"]" * 5000 + b"]}", 400, ""),
    ],
)
def test_bad_bodies_are_refused_with_a_clear_4xx(body: bytes, status: int, reason: str) -> None:
    with pytest.raises(NotificationRejected) as caught:
        parse_change_notifications(body)
    assert caught.value.status == status
    assert reason in caught.value.reason


def test_ten_thousand_entries_are_refused() -> None:
    realistic = json.dumps({"value": [SAMPLE["value"][0]] * 10_000})
    with pytest.raises(NotificationRejected) as caught:
        parse_notifications(realistic)
    assert caught.value.status == 413 and "bytes" in caught.value.reason
    compact = json.dumps({"value": [{}] * 10_000})
    assert len(compact) < MAX_BODY_BYTES
    with pytest.raises(NotificationRejected) as caught:
        parse_notifications(compact)
    assert caught.value.status == 413 and "10000 notifications" in caught.value.reason


def test_a_five_megabyte_string_is_refused_before_parsing() -> None:
    body = json.dumps({"value": [{**SAMPLE["value"][0], "clientState": "x" * (5 * 1024 * 1024)}]})
    with pytest.raises(NotificationRejected) as caught:
        parse_change_notifications(body)
    assert caught.value.status == 413


def test_a_long_field_under_the_body_limit_is_refused_by_the_model() -> None:
    body = json.dumps({"value": [{**SAMPLE["value"][0], "resource": "r" * 100_000}]})
    with pytest.raises(NotificationRejected) as caught:
        parse_change_notifications(body)
    assert caught.value.status == 400 and "resource" in caught.value.reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_arbitrary_bytes_never_crash_the_parser(body: bytes) -> None:
    try:
        parse_notifications(body)
    except NotificationRejected as exc:
        assert 400 <= exc.status < 500


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(lambda t: t.strip() == t and "\x00" not in t))
def test_the_validation_token_comes_back_url_decoded(token: str) -> None:
    from urllib.parse import quote_plus

    request = ValidationRequest.from_query_string("validationToken=" + quote_plus(token))
    assert request is not None and request.response_body() == token


def test_the_documented_validation_token_shape_is_decoded() -> None:
    query = "validationToken=Validation%3a+Testing+client+application+reachability+for+subscription+Request-Id%3a+" \
            "4e3b2c1a-9a0e-4b4d-8a5e-3c2f1b0a9d8e"
    request = ValidationRequest.from_query_string(query)
    assert request is not None
    assert request.response_body() == ("Validation: Testing client application reachability for subscription "
                                       "Request-Id: 4e3b2c1a-9a0e-4b4d-8a5e-3c2f1b0a9d8e")
    assert ValidationRequest.from_query_string("other=1") is None
    with pytest.raises(NotificationRejected):
        ValidationRequest.from_params({"validationToken": ""})


def test_the_webhook_path_does_not_import_the_sdk() -> None:
    code = (
        "import sys, crm_core.graph, crm_core.domain.notifications, crm_core.graph.client, crm_core.graph.factory\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('msgraph', 'msgraph_core', 'kiota_abstractions',"
        " 'kiota_http', 'azure', 'httpx'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
