"""`crmservice netgenium check` against the emulator: a complete map, and one naming what is absent."""

from __future__ import annotations

import io
import json
from pathlib import Path

from pydantic import SecretStr

from crm_core.domain.settings import Settings
from crm_core.netgenium import NetGeniumClient, default_schema_map, load_schema_map
from crm_core.netgenium.check import check_schema, run_check
from sandbox.launch import ServerProcess, free_port
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, Admin


def _edited_map(tmp_path: Path) -> Path:
    data = default_schema_map().model_dump(exclude_defaults=False)
    data["contacts"]["columns"]["email"]["name"] = "ng_mail"  # not in the installation
    data["orders"]["table"] = "ng_objednavky"  # no such table
    data["users"]["columns"]["name"]["max_length"] = 400  # longer than the column
    data["email_activities"]["columns"]["body_html"].update(type="text", max_length=4000)  # wrong type
    path = tmp_path / "map.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


async def test_the_default_map_matches_the_emulator(client: NetGeniumClient) -> None:
    assert await check_schema(client, default_schema_map()) == []


async def test_missing_tables_columns_and_mismatches_are_named(client: NetGeniumClient, tmp_path: Path) -> None:
    missing = await check_schema(client, load_schema_map(_edited_map(tmp_path)))
    assert "table ng_objednavky is missing" in missing
    assert "ng_contacts.ng_mail (contacts.email) is missing" in missing
    assert any(item.startswith("ng_users.ng_name (users.name) holds 200 characters") for item in missing)
    assert "ng_activities.ng_body_html (email_activities.body_html) is memo, the map expects text" in missing
    assert len(missing) == 4


def test_run_check_exit_codes_and_output(emulator: ServerProcess, admin: Admin, tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_check(emulator.base_url, API_KEY, API_KEY_HEADER, "", out=out) == 0
    assert out.getvalue().startswith("OK:")
    out = io.StringIO()
    assert run_check(emulator.base_url, API_KEY, API_KEY_HEADER, str(_edited_map(tmp_path)), out=out) == 1
    assert "MISSING: 4 problems" in out.getvalue() and "table ng_objednavky is missing" in out.getvalue()
    out = io.StringIO()
    assert run_check(emulator.base_url, "wrong", API_KEY_HEADER, "", out=out) == 2
    assert "NETGENIUM_API_KEY" in out.getvalue()
    out = io.StringIO()
    assert run_check(f"http://127.0.0.1:{free_port()}", API_KEY, API_KEY_HEADER, "", out=out) == 2
    assert "unreachable" in out.getvalue()
    out = io.StringIO()
    assert run_check(emulator.base_url, API_KEY, API_KEY_HEADER, str(tmp_path / "nope.toml"), out=out) == 2
    assert "cannot read the schema map" in out.getvalue()


async def test_client_from_settings(emulator: ServerProcess, admin: Admin) -> None:
    # Only the NETGENIUM_* settings matter here; the others are the core's (and still growing).
    settings = Settings.model_construct(
        netgenium_base_url=emulator.base_url,
        netgenium_api_key=SecretStr(API_KEY),
        netgenium_api_key_header=API_KEY_HEADER,
        netgenium_schema_map="",
    )
    admin.seed("ng_orders", [{"id": 1, "ng_number": 77}])
    async with NetGeniumClient.from_settings(settings) as ng:
        assert ng.api_key_header == API_KEY_HEADER
        assert ng.schema_map == default_schema_map()
        order = await ng.find_order_by_number(77)
    assert order is not None and order.id == 1
