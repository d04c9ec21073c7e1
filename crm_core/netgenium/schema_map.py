"""The schema map: which NET Genium tables and columns hold users, contacts, orders and activities.

Every installation names its edit forms differently, so nothing in the client hard-codes a table
or column name; it asks this map. The map is validated when it is loaded (a typo must stop the
start with a message that names the place, not fail on the first mail), and it carries the column
types and lengths so the client can make values fit and `crmservice netgenium check` can compare
the map with a live installation.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ColumnType = Literal["int", "text", "memo", "datetime", "bool", "decimal", "files"]

SYSTEM_COLUMNS: dict[str, ColumnType] = {
    "id": "int",
    "pid": "int",
    "pform": "int",
    "userid": "int",
    "system": "bool",
}

TABLE_NAME = re.compile(r"^ng_[a-z0-9_]{1,60}$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")

# The length of an e-mail activity's message key: the SHA-256 of the exact Message-ID, in hex.
MESSAGE_KEY_LENGTH = 64

# The logical columns each entity must map; the client reads or writes every one of them.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("email", "name"),
    "contacts": ("email", "company"),
    "companies": ("name",),
    "orders": ("number",),
    "email_activities": (
        "subject",
        "body_text",
        "body_html",
        "direction",
        "date",
        "message_id",
        "message_key",
        "conversation_id",
        "contact",
        "company",
        "user",
        "order",
        "attachments",
    ),
    "calendar_activities": (
        "subject",
        "start",
        "end",
        "all_day",
        "location",
        "body",
        "user",
        "event_id",
        "modified",
    ),
}

_EXPECTED_TYPES: dict[tuple[str, str], tuple[ColumnType, ...]] = {
    ("users", "email"): ("text",),
    ("contacts", "email"): ("text",),
    ("contacts", "company"): ("int",),
    ("orders", "number"): ("int",),
    ("email_activities", "subject"): ("text", "memo"),
    ("email_activities", "message_id"): ("text",),
    ("email_activities", "message_key"): ("text",),
    ("email_activities", "date"): ("datetime",),
    ("email_activities", "attachments"): ("files",),
    ("email_activities", "contact"): ("int",),
    ("email_activities", "company"): ("int",),
    ("email_activities", "user"): ("int",),
    ("email_activities", "order"): ("int",),
    ("calendar_activities", "start"): ("datetime",),
    ("calendar_activities", "end"): ("datetime",),
    ("calendar_activities", "all_day"): ("bool",),
    ("calendar_activities", "user"): ("int",),
    ("calendar_activities", "event_id"): ("text",),
    ("calendar_activities", "modified"): ("datetime",),
}


class SchemaMapError(ValueError):
    """The schema map file is unreadable or wrong; the message names the place."""


class ColumnMap(BaseModel):
    """One NET Genium column as the service expects it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=COLUMN_NAME.pattern)
    type: ColumnType
    max_length: int | None = Field(default=None, ge=1, le=1_000_000)
    unique: bool = False
    indexed: bool = False
    auto: Literal["modified"] | None = None
    values: dict[str, str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnMap:
        if self.max_length is not None and self.type != "text":
            raise ValueError(f"max_length applies to text columns only, not {self.type}")
        if self.type == "text" and self.max_length is None:
            raise ValueError("a text column needs max_length (use type memo for unbounded text)")
        if self.auto == "modified" and self.type != "datetime":
            raise ValueError('auto = "modified" needs a datetime column')
        if self.name in SYSTEM_COLUMNS and SYSTEM_COLUMNS[self.name] != self.type:
            raise ValueError(f"system column {self.name} is {SYSTEM_COLUMNS[self.name]}")
        return self

    def stored(self, value: str) -> str:
        """The value the column holds for the service's `value` (the `values` translation)."""
        return self.values.get(value, value) if self.values else value


class EntityMap(BaseModel):
    """One logical entity: its table, its columns, and the values that select its rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(pattern=TABLE_NAME.pattern)
    columns: dict[str, ColumnMap]
    fixed: dict[str, str | int | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fixed_are_columns(self) -> EntityMap:
        for logical in self.fixed:
            if logical not in self.columns:
                raise ValueError(f"fixed value for {logical!r}, which is not among the columns")
        names = [column.name for column in self.columns.values()]
        if len(names) != len(set(names)):
            raise ValueError("two logical columns name the same NET Genium column")
        return self

    def column(self, logical: str) -> ColumnMap:
        """The mapped column, or KeyError naming the entity's table (a bug, not a user error)."""
        try:
            return self.columns[logical]
        except KeyError:
            raise KeyError(f"{logical!r} is not mapped in {self.table}") from None

    def fixed_values(self) -> dict[str, str | int | bool]:
        """The fixed values keyed by NET Genium column name."""
        return {self.columns[logical].name: value for logical, value in self.fixed.items()}


class SchemaMap(BaseModel):
    """The whole map; `tables()` merges entities that share one table (e-mail and calendar)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    users: EntityMap
    contacts: EntityMap
    companies: EntityMap
    orders: EntityMap
    email_activities: EntityMap
    calendar_activities: EntityMap

    @model_validator(mode="after")
    def _complete(self) -> SchemaMap:
        for entity_name, required in REQUIRED_COLUMNS.items():
            entity: EntityMap = getattr(self, entity_name)
            for logical in required:
                if logical not in entity.columns:
                    raise ValueError(f"{entity_name}.columns.{logical} is missing")
                column = entity.columns[logical]
                allowed = _EXPECTED_TYPES.get((entity_name, logical))
                if allowed and column.type not in allowed:
                    raise ValueError(
                        f"{entity_name}.columns.{logical} must be of type {' or '.join(allowed)}, not {column.type}"
                    )
        key = self.email_activities.columns["message_key"]
        if not key.unique or (key.max_length is not None and key.max_length < MESSAGE_KEY_LENGTH):
            raise ValueError(
                f"email_activities.columns.message_key must be unique and hold {MESSAGE_KEY_LENGTH} characters: "
                "it is what makes a retried write safe and tells apart Message-IDs that differ only in case"
            )
        self.tables()
        return self

    def entities(self) -> dict[str, EntityMap]:
        """Every entity by its logical name."""
        return {name: getattr(self, name) for name in REQUIRED_COLUMNS}

    def tables(self) -> dict[str, dict[str, ColumnMap]]:
        """Each table with the union of its mapped columns (system columns excluded).

        Two entities may share a table; they must then agree on a shared column's definition,
        since it is one column in NET Genium.
        """
        tables: dict[str, dict[str, ColumnMap]] = {}
        for entity_name, entity in self.entities().items():
            columns = tables.setdefault(entity.table, {})
            for column in entity.columns.values():
                if column.name in SYSTEM_COLUMNS:
                    continue
                known = columns.get(column.name)
                if known is not None and (known.type, known.max_length) != (
                    column.type,
                    column.max_length,
                ):
                    raise ValueError(
                        f"{entity.table}.{column.name} is mapped twice with different types (again in {entity_name})"
                    )
                columns[column.name] = column if known is None else _merge(known, column)
        return tables


def _merge(first: ColumnMap, second: ColumnMap) -> ColumnMap:
    return first.model_copy(
        update={
            "unique": first.unique or second.unique,
            "indexed": first.indexed or second.indexed,
            "auto": first.auto or second.auto,
        }
    )


def default_schema_map() -> SchemaMap:
    """The shipped defaults (which an installation must check; see schema_map.toml)."""
    text = resources.files("crm_core.netgenium").joinpath("schema_map.toml").read_text("utf-8")
    return parse_schema_map(text, source="the shipped schema_map.toml")


def load_schema_map(path: str | Path | None) -> SchemaMap:
    """The map from `path` (TOML or JSON), or the shipped defaults when `path` is empty."""
    if path is None or not str(path).strip():
        return default_schema_map()
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise SchemaMapError(f"cannot read the schema map {file}: {exc.strerror or exc}") from None
    return parse_schema_map(text, source=str(file), json=file.suffix.lower() == ".json")


def parse_schema_map(text: str, *, source: str = "schema map", json: bool = False) -> SchemaMap:
    """Validate a map's text; errors name the entity and column that is wrong."""
    try:
        if json:
            return SchemaMap.model_validate_json(text)
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemaMapError(f"{source} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise SchemaMapError(_describe(source, exc)) from None
    try:
        return SchemaMap.model_validate(data)
    except ValidationError as exc:
        raise SchemaMapError(_describe(source, exc)) from None


def _describe(source: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return f"{source} is invalid: " + "; ".join(problems)
