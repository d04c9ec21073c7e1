"""runtime.describe_error: the reason logged and stored for a failed queue item never carries the
data that failed validation (mail content must not reach logs or the failure table)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from crm_core.domain.activities import EmailActivity
from crm_core.domain.errors import ServiceUnavailable
from crm_core.domain.mail import GraphMessage
from crm_core.domain.tasks import CaptureTask, LifecycleTask
from crm_core.runtime import describe_error

SECRET = "Dear Jan, the PIN of the safe is 4711"


def validation_error(call: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        call()  # type: ignore[operator]
    return raised.value


CASES = {
    "literal in a queue item": lambda: CaptureTask.model_validate_json(
        json.dumps(
            {"subscription_id": "s", "kind": SECRET, "mailbox": "m", "item_ids": ["i"], "change_type": "created"}
        )
    ),
    "broken JSON queue item": lambda: CaptureTask.model_validate_json('{"mailbox": "' + SECRET),
    "not an object": lambda: LifecycleTask.model_validate_json(json.dumps(SECRET)),
    "wrong type in a mail": lambda: GraphMessage.model_validate({"subject": {"text": SECRET}}),
    "nested in a recipient list": lambda: GraphMessage.model_validate(
        {"toRecipients": [{"emailAddress": {"address": [SECRET]}}]}
    ),
    "activity with a body": lambda: EmailActivity(
        subject=SECRET,
        body_text=SECRET,
        body_html=f"<p>{SECRET}</p>",
        direction=SECRET,  # type: ignore[arg-type]
        date=datetime.now(UTC),
        message_id="",
    ),
    "a whole mail where a model was expected": lambda: EmailActivity.model_validate(SECRET),
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_a_validation_error_is_described_without_its_input(make: object) -> None:
    error = validation_error(make)
    assert SECRET in str(error) or "PIN" in repr(error.errors())  # the raw error does carry the data

    described = describe_error(error)

    assert "PIN" not in described and "4711" not in described and "Dear Jan" not in described
    assert described.startswith("invalid data at ")


def test_the_description_says_where_and_what() -> None:
    error = validation_error(lambda: GraphMessage.model_validate({"subject": {"text": SECRET}}))

    assert describe_error(error) == "invalid data at subject: Input should be a valid string"


def test_a_top_level_error_is_located_at_top_level() -> None:
    error = validation_error(lambda: CaptureTask.model_validate_json("[]"))

    assert describe_error(error).startswith("invalid data at top level: ")


def test_a_bad_dict_value_stays_out_of_the_description() -> None:
    class Headers(BaseModel):
        values: dict[str, int]

    error = validation_error(lambda: Headers.model_validate({"values": {"x": SECRET}}))

    assert "PIN" not in describe_error(error)


def test_other_errors_keep_their_type_and_a_bounded_message() -> None:
    described = describe_error(ServiceUnavailable("NET Genium answered 503 " + "x" * 2000))

    assert described.startswith("ServiceUnavailable: NET Genium answered 503 ")
    assert len(described) == len("ServiceUnavailable: ") + 500
