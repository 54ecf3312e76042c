"""`run`: a `nixa` command, in-process through typer's CliRunner, against the test deployment."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from admin.cli import app
from tests.conftest import REDIS_URL


@pytest.fixture()
def run(var_dir, database_url, master_key, nixa):  # noqa: ANN001, ANN201
    env = {"NIXA_DATABASE_URL": database_url, "NIXA_VAR_DIR": str(var_dir), "NIXA_MASTER_KEY": master_key,
           "NIXA_REDIS_URL": REDIS_URL, "NIXA_ISSUER": "http://testserver"}
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # noqa: A002, ANN202
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    return invoke
