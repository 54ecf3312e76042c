"""ASGI entry point for `nixa serve` / uvicorn workers: settings from the environment."""

from idp.app import create_app
from idp.ops import configure_logging

app = create_app()
if app.state.nixa.settings.log_format == "json":
    configure_logging()  # in each worker process: JSON lines with the request id
# Each worker delivers the back-channel logout outbox from the start: rows a restart left pending
# go out without waiting for this worker's first logout.
app.state.nixa.backchannel.start()
