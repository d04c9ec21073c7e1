"""The local Functions runner: runs the deployed `function_app.py` on one machine, without Core Tools.

The Azure Functions Core Tools cannot be installed here (their installer downloads a binary), yet
every end-to-end test has to go through the same entry points that Azure calls. So this package
does what the Functions host and the Python worker do for the bindings this product uses:

- imports `function_app` from the app directory and reads `app.get_functions()`, as the worker's
  indexing does; nothing in the app knows it runs here (`indexing`, `functions`);
- serves HTTP triggers under `/<routePrefix>/<route>` (aiohttp), with ASP.NET's route matching
  (`http_triggers`, `routes`, `server`);
- feeds queue triggers from Azure Queue storage (Azurite) with host.json's `extensions.queues`
  rules: batches, polling back-off, visibility timeout after a failure, poison queue after
  `maxDequeueCount` attempts, base64 or plain message encoding (`queues`, `host_config`);
- writes queue output bindings after the function returned successfully (`invocation`, `bindings`);
- fires timer triggers on their NCRONTAB schedule (UTC) and at start when `run_on_startup`
  (`timers`, `ncrontab`).

It adds a few admin endpoints of the real host (`/admin/host/status`, `/admin/functions`,
`POST /admin/functions/<name>`) and one of its own, `/admin/sandbox/status`, that says whether every
trigger queue is empty and nothing is running, for tests that wait for the system to settle (`admin`).
`host.FunctionsHost` puts these together in one process.

    python -m sandbox.runner --port 7071 [--app-dir DIR]

docs/RUNNER.md lists what it imitates and what it does not.
"""
