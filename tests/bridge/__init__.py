"""Tests of the NET Genium bridge (bridge/) as installed: `python -m bridge serve` on SQLite and Firebird."""
