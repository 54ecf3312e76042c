"""ASGI entry point for `nixa serve` / uvicorn workers: settings from the environment."""

from idp.app import create_app
from idp.ops import configure_logging

app = create_app()
if app.state.nixa.settings.log_format == "json":
    configure_logging()  # in each worker process: JSON lines with the request id
# Each worker delivers the back-channel logout outbox from the start: rows a restart left pending
# go out without waiting for this worker's first logout.
app.state.nixa.backchannel.start()

# What is built by now (modules, routes, templates, registries: ~200,000 objects) lives as long
# as the worker. Frozen, the cyclic GC's full collections no longer walk it: each was a pause of
# ~50-80 ms of the event loop, several in a worker's first seconds under load, which made the
# p99 of the first requests 4x the steady one (make bench: client_credentials on PostgreSQL +
# Redis, measured first, p99 95 ms; after a warm-up, 23 ms).
import gc  # noqa: E402

gc.collect()
gc.freeze()
