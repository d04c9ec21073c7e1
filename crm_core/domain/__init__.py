"""The pure core: rules and types that decide what is captured, with no SDK, HTTP, storage or clock of its own.

Everything here takes plain data and returns plain data, so it is tested without any server and
runs the same in the Functions host, the CLI and the benchmarks.
"""
