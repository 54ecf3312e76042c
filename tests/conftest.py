"""Shared fixtures. The backend comes from the environment the test command sets:
NIXA_TEST_DATABASE_URL / NIXA_TEST_REDIS_URL (PostgreSQL + Redis run), else SQLite + in-process."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

DB_URL = os.environ.get("NIXA_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("NIXA_TEST_REDIS_URL", "")
BACKEND = "postgresql+redis" if DB_URL else "sqlite+memory"


def pytest_report_header(config):  # noqa: ANN001, ANN201
    return f"NIXA backend: {BACKEND}"


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    """Tests marked `scale_out` (several NIXA processes sharing PostgreSQL and Redis: nothing the
    embedded backend can be) are deselected in the embedded run: neither passed nor skipped."""
    if DB_URL and REDIS_URL:
        return
    deselected = [item for item in items if item.get_closest_marker("scale_out")]
    if deselected:
        items[:] = [item for item in items if not item.get_closest_marker("scale_out")]
        config.hook.pytest_deselected(items=deselected)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@pytest.fixture(scope="session")
def database_url(var_dir: Path) -> str:
    from idp.store.db import migrate

    if DB_URL:
        reset_database(DB_URL)
        url = DB_URL
    else:
        url = f"sqlite:///{(var_dir / 'nixa.db').as_posix()}"
    migrate(url)
    return url


def make_settings(var_dir: Path, database_url: str, master_key: str, issuer: str = "http://testserver", **kw):  # noqa: ANN201
    from idp.settings import Settings

    # The sandboxes and test documents listen on loopback: allowed explicitly, never by default.
    kw.setdefault("fetch_allowed_networks", ["127.0.0.0/8", "::1/128"])
    return Settings(issuer=issuer, database_url=database_url, redis_url=REDIS_URL, var_dir=var_dir, master_key=master_key, **kw)


@pytest.fixture(scope="session")
def settings(var_dir: Path, database_url: str, master_key: str):  # noqa: ANN201
    return make_settings(var_dir, database_url, master_key)


@pytest.fixture(scope="session")
def nixa(settings):  # noqa: ANN001, ANN201
    from idp.app import Nixa

    n = Nixa(settings)
    if REDIS_URL:
        n.store.flush_prefix()
    return n


@pytest.fixture(scope="session")
def app(nixa):  # noqa: ANN001, ANN201
    from idp.app import create_app

    return create_app(nixa.settings, nixa=nixa)


@pytest.fixture()
def browser(app):  # noqa: ANN001, ANN201
    """A fresh browser (cookie jar) that does not follow redirects by itself."""
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


@pytest.fixture()
def http(app):  # noqa: ANN001, ANN201
    """A back-channel HTTP client (a relying party's server)."""
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


# ---- helpers ----------------------------------------------------------------------------------


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class RegisteredClient:
    client_id: str
    secret: str | None
    redirect_uri: str
    metadata: dict


def register_client(nixa, **overrides) -> RegisteredClient:  # noqa: ANN001
    cid = overrides.pop("client_id", uid("client"))
    redirect = overrides.pop("redirect_uri", "https://rp.example.vn/callback")
    md = {
        "client_id": cid,
        "client_name": "Cổng thử nghiệm",
        "redirect_uris": [redirect],
        "post_logout_redirect_uris": ["https://rp.example.vn/bye"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email phone address offline_access",
        **overrides,
    }
    if md.get("token_endpoint_auth_method", "client_secret_basic") in ("client_secret_basic", "client_secret_post"):
        md.setdefault("client_secret", secrets.token_urlsafe(32))
    _, generated, _ = nixa.clients.upsert(md)
    return RegisteredClient(cid, md.get("client_secret") or generated, redirect, md)


@dataclass
class Citizen:
    username: str
    password: str
    person_id: str


def make_citizen(nixa, **attrs) -> Citizen:  # noqa: ANN001
    username = uid("citizen")
    password = secrets.token_urlsafe(12)
    base = {"name": "Nguyễn Thị Bình", "given_name": "Bình", "family_name": "Nguyễn", "email": f"{username}@example.vn",
            "phone_number": "+84987654321", "birthdate": "1992-03-04", "gender": "female"}
    base.update(attrs)
    pid = nixa.people.add_local_account(username, password, base)
    return Citizen(username, password, pid)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name}"
    return m.group(1)


def form_action(html: str, contains: str) -> str:
    for action in re.findall(r'action="([^"]+)"', html):
        if contains in action:
            return action
    raise AssertionError(f"no form posting to *{contains}*")


def authorize(browser, client: RegisteredClient, **params):  # noqa: ANN001, ANN201
    verifier, challenge = pkce_pair()
    q = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    q.update({k: v for k, v in params.items() if v is not None})
    for k in [k for k, v in params.items() if v is None]:
        q.pop(k, None)
    return browser.get("/authorize", params=q), q, verifier


def sign_in_local(browser, location: str, citizen: Citizen, consent: bool = True):  # noqa: ANN001, ANN201
    """From /interaction/... through the local password form (and consent) to the final redirect."""
    page = browser.get(location)
    assert page.status_code == 200, page.text
    csrf = hidden(page.text, "csrf")
    r = browser.post(form_action(page.text, "/local"), data={"csrf": csrf, "username": citizen.username, "password": citizen.password})
    assert r.status_code == 303, r.text
    if r.headers["location"].startswith("/interaction/"):
        page = browser.get(r.headers["location"])
        assert "consent" in page.text, page.text
        decision = "allow" if consent else "deny"
        r = browser.post(form_action(page.text, "/consent"), data={"csrf": hidden(page.text, "csrf"), "decision": decision})
        assert r.status_code == 303
    return r


def code_flow(browser, http, client: RegisteredClient, citizen: Citizen, scope: str = "openid profile email", **params) -> dict:  # noqa: ANN001
    """A whole code + PKCE flow; returns the token response (and `_q`, `_verifier`)."""
    r, q, verifier = authorize(browser, client, scope=scope, **params)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    if location.startswith("/interaction/"):
        r = sign_in_local(browser, location, citizen)
        location = r.headers["location"]
    cb = query_of(location)
    assert "code" in cb, location
    assert cb["state"] == q["state"]
    tr = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": client.redirect_uri,
                                   "code_verifier": verifier}, auth=(client.client_id, client.secret) if client.secret else None)
    assert tr.status_code == 200, tr.text
    out = tr.json()
    out["_q"] = q
    out["_code"] = cb["code"]
    out["_verifier"] = verifier
    return out


class LiveServer:
    """NIXA served by uvicorn on a loopback port, for independent clients (Authlib, openid-client)."""

    def __init__(self, app, port: int, scheme: str = "http", **uvicorn_options) -> None:  # noqa: ANN001, ANN003
        import uvicorn

        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                                    **uvicorn_options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(var_dir: Path, database_url: str, master_key: str):  # noqa: ANN201
    """A second NIXA worker with issuer http://127.0.0.1:PORT on the same database and store."""
    from idp.app import Nixa, create_app

    port = free_port()
    s = make_settings(var_dir, database_url, master_key, issuer=f"http://127.0.0.1:{port}")
    n = Nixa(s)
    server = LiveServer(create_app(s, nixa=n), port).start()
    server.nixa = n
    yield server
    server.stop()
