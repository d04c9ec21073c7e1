"""The NET Genium bridge: the record API (crm_core/netgenium/openapi.yaml) over a NET Genium database.

Installed next to NET Genium (SQL Server or Firebird), it is the other end of the service's
contract: `python -m bridge serve --config bridge.toml`. The sandbox's emulator is this bridge on
SQLite with fault injection around it. See docs/NETGENIUM.md.
"""
