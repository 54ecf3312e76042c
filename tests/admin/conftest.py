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


@pytest.fixture(scope="module")
def own_app(tmp_path_factory, master_key):  # noqa: ANN001, ANN201
    """A NIXA of its own, on a database of its own (a new PostgreSQL database in the scale-out
    run), for tests whose changes must not reach the session's shared app: connectors a test or
    the fuzzer creates would show in other tests' chooser, keys it rotates or revokes would sign
    or stop verifying other tests' tokens."""
    from idp.app import Nixa, create_app
    from tests.conftest import make_settings
    from tests.keys.conftest import new_database

    folder = tmp_path_factory.mktemp("own-nixa")
    with new_database(folder) as url:
        nixa = Nixa(make_settings(folder, url, master_key))
        yield create_app(nixa.settings, nixa=nixa)
        nixa.audit.close()  # its writer would keep writing to a database about to be dropped
        nixa.db.engine.dispose()


@pytest.fixture()
def own_http(own_app):  # noqa: ANN001, ANN201
    from starlette.testclient import TestClient

    with TestClient(own_app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


@pytest.fixture(scope="module", autouse=True)
def console_registered_for_this_issuer(nixa):  # noqa: ANN001, ANN201
    """Other folders start NIXAs of another issuer on the session's database (tests/topology's
    workers behind nginx): each registers the console client at startup with its own redirect
    URIs, as every worker of a deployment does. These tests sign in to the session NIXA's
    console, so its own registration is made again first (it failed them with "redirect URI
    not registered" when they ran after those folders)."""
    from admin.auth import CONSOLE_CLIENT_ID, register_admin_resource

    nixa.clients.invalidate(CONSOLE_CLIENT_ID)
    register_admin_resource(nixa)
