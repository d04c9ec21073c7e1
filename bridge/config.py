"""`bridge.toml`: what an installation sets, checked when the bridge starts.

    database_url = "mssql+pyodbc://ngbridge:...@localhost/NetGenium?driver=ODBC+Driver+18+for+SQL+Server"
    api_key_hashes = ["pbkdf2_sha256$200000$...$..."]   # python -m bridge hash-key
    api_key_header = "X-Api-Key"
    time_zone = "Europe/Prague"
    schema_map = "schema_map.toml"                       # empty: the shipped defaults
    listen = "127.0.0.1:8090"

    [files]
    strategy = "blob"        # or "folder", with folder = "D:/NetGenium/Files/crm"
    table = "ng_bridge_files"

A mistake stops the start with a message naming the setting, not the first request.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge.keys import parse_hash


class ConfigError(ValueError):
    """The config file is unreadable or wrong; the message names the setting."""


class FilesConfig(BaseModel):
    """Where a files column's bytes are kept (check this per installation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["blob", "folder"] = "blob"
    folder: Path | None = None
    table: str = Field(default="ng_bridge_files", pattern=r"^[a-z][a-z0-9_]{0,59}$")

    @model_validator(mode="after")
    def _folder_when_needed(self) -> FilesConfig:
        if self.strategy == "folder" and self.folder is None:
            raise ValueError('strategy "folder" needs folder = "<the installation\'s files folder>"')
        return self


class BridgeConfig(BaseModel):
    """Every setting of the bridge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(min_length=1)
    api_key_hashes: list[str] = Field(min_length=1)
    api_key_header: str = Field(default="X-Api-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    time_zone: str = "Europe/Prague"
    schema_map: str = ""
    listen: str = "127.0.0.1:8090"
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_file_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    continuation_secret: str = Field(default="", description="shared by several bridge processes; empty: per process")
    files: FilesConfig = FilesConfig()

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes(cls, hashes: list[str]) -> list[str]:
        for text in hashes:
            parse_hash(text)
        return hashes

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str) -> str:
        if name.upper() == "UTC":
            return name
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Prague)") from None
        return name

    def host_port(self) -> tuple[str, int]:
        """`listen` as (host, port)."""
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"listen must be HOST:PORT, not {self.listen!r}")
        return host.strip("[]"), int(port)


def load_config(path: Path) -> BridgeConfig:
    """The config from a TOML file; a relative schema map or files folder is relative to the file."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        config = BridgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'config'}: {str(error['msg']).removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        raise ConfigError(f"{path} is invalid: " + "; ".join(problems)) from None
    base = path.resolve().parent
    updates: dict[str, object] = {}
    if config.schema_map and not Path(config.schema_map).is_absolute():
        updates["schema_map"] = str(base / config.schema_map)
    if config.files.folder is not None and not config.files.folder.is_absolute():
        updates["files"] = config.files.model_copy(update={"folder": base / config.files.folder})
    config = config.model_copy(update=updates) if updates else config
    config.host_port()
    return config
