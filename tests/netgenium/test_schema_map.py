"""The schema map: shipped defaults, validation that names the place, TOML and JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_core.netgenium import SchemaMapError, default_schema_map, load_schema_map
from crm_core.netgenium.schema_map import REQUIRED_COLUMNS, parse_schema_map

DEFAULTS_TOML = (Path(__file__).parents[2] / "crm_core" / "netgenium" / "schema_map.toml").read_text("utf-8")


def test_the_defaults_map_every_required_column_and_say_they_must_be_checked() -> None:
    schema = default_schema_map()
    for entity, required in REQUIRED_COLUMNS.items():
        assert set(required) <= set(schema.entities()[entity].columns)
    assert "crmservice netgenium check" in DEFAULTS_TOML and "DEFAULTS" in DEFAULTS_TOML
    assert load_schema_map("") == schema and load_schema_map(None) == schema


def test_shared_tables_are_merged_with_their_flags() -> None:
    tables = default_schema_map().tables()
    activities = tables["ng_activities"]
    assert activities["ng_message_key"].unique and activities["ng_event_id"].unique
    assert activities["ng_message_id"].indexed and not activities["ng_message_id"].unique
    assert activities["ng_modified"].auto == "modified"
    assert "id" not in activities  # system columns are implied
    assert default_schema_map().email_activities.fixed_values() == {"ng_kind": "email"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["contacts"]["columns"].pop("email"), "contacts.columns.email is missing"),
        (lambda d: d["users"].update(table="users"), "users.table"),
        (lambda d: d["users"]["columns"]["email"].pop("max_length"), "needs max_length"),
        (lambda d: d["orders"]["columns"]["number"].update(type="text", max_length=10), "must be of type int"),
        (lambda d: d["email_activities"].update(fixed={"nope": "x"}), "not among the columns"),
        (lambda d: d["users"]["columns"]["email"].update(name="Robert'); DROP"), "users.columns.email.name"),
        (
            lambda d: d["calendar_activities"]["columns"]["subject"].update(max_length=100),
            "ng_activities.ng_subject is mapped twice with different types",
        ),
        (lambda d: d.update(version=2), "version"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, change: object, message: str) -> None:
    data = default_schema_map().model_dump()
    change(data)  # type: ignore[operator]
    path = tmp_path / "map.json"
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(SchemaMapError) as failed:
        load_schema_map(path)
    assert message in str(failed.value) and str(path) in str(failed.value)


def test_a_toml_file_with_other_names_loads(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text(DEFAULTS_TOML.replace('"ng_contacts"', '"ng_adresar"'), "utf-8")
    assert load_schema_map(path).contacts.table == "ng_adresar"
    with pytest.raises(SchemaMapError, match="not valid TOML"):
        parse_schema_map("users = [", source="x")
    with pytest.raises(SchemaMapError, match="cannot read"):
        load_schema_map(tmp_path / "missing.toml")
