"""What the service does, step by step: each use case names the ports it needs as `typing.Protocol`s.

Use cases import the domain and no adapter or SDK; `crm_core.runtime` and `crm_core.cli` plug the
Graph, NET Genium and storage adapters into them.
"""
