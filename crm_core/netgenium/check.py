"""`crmservice netgenium check`: does the live record API hold every table and column of the map?

A wrong schema map shows up otherwise only when the first mail is captured (or, worse, when a
subject is longer than a column the map thinks is longer). The check asks the API's metadata
endpoint for every mapped table and compares names, types, lengths and unique constraints.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import TextIO

from crm_core.domain.errors import ExternalServiceError
from crm_core.netgenium.client import NetGeniumClient
from crm_core.netgenium.errors import NetGeniumNotFound
from crm_core.netgenium.retry import RetryPolicy
from crm_core.netgenium.schema_map import (
    SYSTEM_COLUMNS,
    ColumnMap,
    SchemaMap,
    SchemaMapError,
    load_schema_map,
)

# An administrator runs the check by hand: a short retry, then a clear answer.
CHECK_RETRY = RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1.0, max_total_seconds=10.0)

# What the metadata endpoint may call a type that the map calls otherwise.
_COMPATIBLE: dict[str, set[str]] = {"int": {"int", "bigint"}, "memo": {"memo", "text"}}


def _column_problems(table: str, where: str, column: ColumnMap, found: dict[str, object]) -> list[str]:
    problems = []
    actual_type = str(found.get("type"))
    if actual_type not in _COMPATIBLE.get(column.type, {column.type}):
        problems.append(f"{table}.{column.name} ({where}) is {actual_type}, the map expects {column.type}")
    actual_length = found.get("max_length")
    if (
        column.type == "text"
        and isinstance(actual_length, int)
        and column.max_length is not None
        and actual_length < column.max_length
    ):
        problems.append(
            f"{table}.{column.name} ({where}) holds {actual_length} characters, the map says "
            f"{column.max_length} (longer values would be refused, not cut)"
        )
    if column.unique and not found.get("unique"):
        problems.append(
            f"{table}.{column.name} ({where}) is not unique (a retried write could store a record "
            "twice); add a unique index or set unique = false in the map"
        )
    return problems


async def check_schema(client: NetGeniumClient, schema_map: SchemaMap) -> list[str]:
    """What the map names but the API lacks (empty when everything is there)."""
    missing: list[str] = []
    by_table: dict[str, list[tuple[str, ColumnMap]]] = {}
    for entity_name, entity in schema_map.entities().items():
        for logical, column in entity.columns.items():
            by_table.setdefault(entity.table, []).append((f"{entity_name}.{logical}", column))
    for table, columns in by_table.items():
        try:
            info = await client.get_table(table)
        except NetGeniumNotFound:
            missing.append(f"table {table} is missing")
            continue
        found = {column.name.lower(): column.model_dump() for column in info.columns}
        for system, _type in SYSTEM_COLUMNS.items():
            if system not in found:
                missing.append(f"{table}.{system} (system column) is missing")
        for where, column in columns:
            actual = found.get(column.name.lower())
            if actual is None:
                missing.append(f"{table}.{column.name} ({where}) is missing")
                continue
            missing.extend(_column_problems(table, where, column, actual))
    return missing


def run_check(
    base_url: str,
    api_key: str,
    header: str = "X-Api-Key",
    schema_map_path: str = "",
    *,
    database_url: str = "",
    out: TextIO | None = None,
) -> int:
    """Run the check and print the outcome: 0 all present, 1 something missing, 2 could not check.

    With `database_url` (direct mode) and no `base_url`, the check reads the database's catalog
    itself, through the bridge's store in this process."""
    stream = out or sys.stdout
    try:
        schema_map = load_schema_map(schema_map_path)
    except SchemaMapError as exc:
        print(f"ERROR: {exc}", file=stream)
        return 2

    def connect() -> NetGeniumClient:
        if base_url or not database_url:
            return NetGeniumClient(base_url, api_key, api_key_header=header, schema_map=schema_map, retry=CHECK_RETRY)
        from crm_core.netgenium.direct import StoreTransport, open_store, redacted

        opener = functools.partial(open_store, database_url, schema_map, time_zone="UTC", files_folder="")
        direct = StoreTransport(opener, name=f"direct:{redacted(database_url)}", retry=CHECK_RETRY)
        return NetGeniumClient.over(direct, schema_map=schema_map)

    async def run() -> list[str]:
        async with connect() as client:
            return await check_schema(client, schema_map)

    try:
        missing = asyncio.run(run())
    except (ExternalServiceError, ValueError) as exc:
        print(f"ERROR: cannot check the schema map: {exc}", file=stream)
        return 2
    source = schema_map_path or "the shipped default schema map"
    tables = len({entity.table for entity in schema_map.entities().values()})
    if not missing:
        print(f"OK: every table and column of {source} exists ({tables} tables)", file=stream)
        return 0
    print(f"MISSING: {len(missing)} problems with {source}:", file=stream)
    for item in missing:
        print(f"  - {item}", file=stream)
    return 1
