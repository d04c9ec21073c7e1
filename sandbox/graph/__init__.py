"""A Microsoft Graph emulator: a real HTTP server that answers the calls CRMService makes.

Run it with ``python -m sandbox.graph --port P --token T``. It keeps users, mailboxes, calendars and
subscriptions in memory, answers under ``/v1.0`` in Graph's JSON shapes, sends change and lifecycle
notifications to subscribers, and takes orders under ``/_admin`` (create users, deliver mail, inject
faults, read request counts). docs/GRAPH.md says what it imitates and what it does not.
"""
