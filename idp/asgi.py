"""ASGI entry point for `nixa serve` / uvicorn workers: settings from the environment."""

from idp.app import create_app

app = create_app()
