"""ASGI entry point for `nixa serve` / uvicorn workers: settings from the environment."""

from idp.app import create_app

app = create_app()
# Each worker delivers the back-channel logout outbox from the start: rows a restart left pending
# go out without waiting for this worker's first logout.
app.state.nixa.backchannel.start()
