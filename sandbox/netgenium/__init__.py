"""The NET Genium emulator: the record API contract (crm_core/netgenium/openapi.yaml) over SQLite."""
