"""Files of a record's files column: one row each in the bridge's files table, bytes per strategy.

Where NET Genium keeps a file column's bytes differs between installations, so it is a setting
(`[files] strategy`): `blob` keeps them in a blob column of the files table; `folder` keeps the
file name in the table and the bytes in the installation's files folder, written to a temporary
name and renamed, so a reader never sees half a file. The table (`ng_bridge_files` unless named
otherwise) is the bridge's own: it is created when missing, and only this module touches it.
A file name is unique per record and column without regard to case (a second upload replaces).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

Strategy = Literal["blob", "folder"]


def files_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The files table's definition (for its creation and for statements)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), primary_key=True),
        sa.Column("tbl", sa.Unicode(64), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("col", sa.Unicode(64), nullable=False),
        sa.Column("filename", sa.Unicode(255), nullable=False),
        sa.Column("filename_key", sa.Unicode(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("stored_name", sa.Unicode(200), nullable=True),
        sa.UniqueConstraint("tbl", "record_id", "col", "filename_key", name=f"uq_{name}_name"),
        sa.Index(f"ix_{name}_record", "tbl", "record_id"),
    )


class FileStore:
    """Reads and writes the files of records, with the bytes where the strategy says."""

    def __init__(self, engine: Engine, *, table: str, strategy: Strategy, folder: Path | None) -> None:
        if strategy == "folder" and folder is None:
            raise ValueError("the folder strategy needs [files] folder")
        self.strategy = strategy
        self.folder = folder
        self.table = files_table(table, sa.MetaData())
        self.table.metadata.create_all(engine, checkfirst=True)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def listing(
        self, connection: Connection, table: str, column: str, ids: Iterable[int]
    ) -> dict[int, list[dict[str, Any]]]:
        """The files of each record (in upload order), as the contract lists them."""
        t = self.table.c
        id_list = list(ids)
        out: dict[int, list[dict[str, Any]]] = {record_id: [] for record_id in id_list}
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            rows = connection.execute(
                sa.select(t.id, t.record_id, t.filename, t.size)
                .where(t.tbl == table, t.col == column, t.record_id.in_(chunk))
                .order_by(t.id)
            )
            for file_id, record_id, filename, size in rows:
                out[int(record_id)].append({"file_id": int(file_id), "filename": filename, "size": int(size)})
        return out

    def _write_bytes(self, content: bytes) -> str:
        assert self.folder is not None
        stored_name = f"{uuid.uuid4().hex}.bin"
        temporary = self.folder / f".{stored_name}.part"
        temporary.write_bytes(content)
        os.replace(temporary, self.folder / stored_name)
        return stored_name

    def _remove(self, stored_names: Iterable[str | None]) -> None:
        for stored_name in stored_names:
            if stored_name and self.folder is not None:
                (self.folder / stored_name).unlink(missing_ok=True)

    def put(
        self, connection: Connection, table: str, record_id: int, column: str, filename: str, content: bytes
    ) -> tuple[int, str, list[str | None]]:
        """Store or replace (by name, any case) a file.

        Returns its id, the name it is kept under (a replaced file keeps its first name), and the
        names of replaced bytes to remove once the transaction is committed.
        """
        t = self.table.c
        key = filename.lower()
        stored_name = self._write_bytes(content) if self.strategy == "folder" else None
        values: dict[str, Any] = {
            "size": len(content),
            # A NULL as SQL, not a bound None: sqlalchemy-firebird's binary bind cannot take None.
            "content": content if self.strategy == "blob" else sa.null(),
            "stored_name": stored_name,
        }
        match = (t.tbl == table, t.record_id == record_id, t.col == column, t.filename_key == key)
        existing = connection.execute(sa.select(t.id, t.filename, t.stored_name).where(*match)).first()
        if existing is not None:
            connection.execute(sa.update(self.table).where(t.id == existing.id).values(**values))
            return int(existing.id), str(existing.filename), [existing.stored_name]
        inserted = connection.execute(
            sa.insert(self.table)
            .values(tbl=table, record_id=record_id, col=column, filename=filename, filename_key=key, **values)
            .returning(t.id)
        )
        return int(inserted.scalar_one()), filename, []

    def content(self, connection: Connection, table: str, record_id: int, file_id: int) -> bytes | None:
        """A file's bytes, or None when the record has no such file."""
        t = self.table.c
        row = connection.execute(
            sa.select(t.content, t.stored_name).where(t.tbl == table, t.record_id == record_id, t.id == file_id)
        ).first()
        if row is None:
            return None
        if row.stored_name and self.folder is not None:
            return (self.folder / str(row.stored_name)).read_bytes()
        return bytes(row.content or b"")

    def delete_record(self, connection: Connection, table: str, record_id: int) -> list[str | None]:
        """Drop a record's files; the bytes' names to remove once the transaction is committed."""
        t = self.table.c
        names = [
            r.stored_name
            for r in connection.execute(sa.select(t.stored_name).where(t.tbl == table, t.record_id == record_id))
        ]
        connection.execute(sa.delete(self.table).where(t.tbl == table, t.record_id == record_id))
        return names

    def forget(self, stored_names: Iterable[str | None]) -> None:
        """Remove bytes no row names any more (after the commit that dropped their rows)."""
        self._remove(stored_names)

    def clear(self, connection: Connection) -> None:
        """Every file gone (the sandbox's reset)."""
        names = [r.stored_name for r in connection.execute(sa.select(self.table.c.stored_name))]
        connection.execute(sa.delete(self.table))
        self._remove(names)
