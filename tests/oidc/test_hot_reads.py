"""On Redis, UserInfo and introspection read what they need in one awaited round trip and answer
from it on the event loop (idp/oidc/endpoints.py off_loop, idp/store/ephemeral.py read_ahead):
no second round trip, none that blocks the loop, and still every check. Each test runs against
its own redis-server, in both suites, counting the commands Redis itself served."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import make_citizen, register_client
from tests.oidc.helpers import get_code, redeem
from tests.store.test_sentinel import RedisProcess


_counters: dict[int, redis.Redis] = {}


def commands(port: int) -> dict[str, int]:
    """Redis's own count of the commands it served, by name; asked on one connection kept open,
    so that the count's own handshake is not among them (its INFO is left out below)."""
    counter = _counters.get(port) or _counters.setdefault(port, redis.Redis(port=port, single_connection_client=True))
    stats = counter.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def served_since(port: int, before: dict[str, int]) -> dict[str, int]:
    after = commands(port)
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0) and k != "info"}


@pytest.fixture()
def on_redis(settings, tmp_path) -> Iterator[tuple]:  # noqa: ANN001
    """A NIXA of its own, on a database and a redis-server of its own (a person's attribute
    versions are published to the store of the first NIXA on a database: idp/identity/people.py)."""
    from idp.app import Nixa, create_app
    from idp.store.db import migrate

    database_url = f"sqlite:///{(tmp_path / 'nixa.db').as_posix()}"
    migrate(database_url)
    server = RedisProcess(tmp_path / "redis", "--save", "", "--appendonly", "no")
    nixa = Nixa(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{server.port}/0", "database_url": database_url}))
    try:
        with TestClient(create_app(nixa.settings, nixa=nixa), base_url="http://testserver", follow_redirects=False) as c:
            yield nixa, c, server.port
    finally:
        nixa.audit.close()
        counter = _counters.pop(server.port, None)
        if counter is not None:
            counter.close()
        server.stop()


def signed_in(nixa, c, scope: str = "openid profile email") -> tuple:  # noqa: ANN001
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(c, client, citizen, scope=scope)
    r = redeem(c, client, code, verifier)
    assert r.status_code == 200, r.text
    return client, citizen, r.json()["access_token"]


def test_userinfo_is_one_read_and_its_release_recorded_once(on_redis) -> None:  # noqa: ANN001
    """Attacker: none; the cost. After the first answer (the person's attributes, the app and
    the release marker now in the worker's memory), each UserInfo costs Redis one MGET (the
    token's revocation markers and the person's attribute version) and nothing else; the
    citizen's access log still shows the release once, not once per poll."""
    from idp.store.models import AccessLogEntry

    nixa, c, port = on_redis
    client, citizen, at = signed_in(nixa, c)
    first = c.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    assert first.status_code == 200, first.text
    before = commands(port)
    for _ in range(5):
        r = c.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
        assert r.status_code == 200 and r.json() == first.json()
    assert served_since(port, before) == {"mget": 5}
    with nixa.db.session() as s:
        logged = s.scalars(select(AccessLogEntry).where(AccessLogEntry.person_id == citizen.person_id,
                                                        AccessLogEntry.channel == "userinfo")).all()
    assert len(logged) == 1 and logged[0].client_id == client.client_id


def test_introspection_is_one_read(on_redis) -> None:  # noqa: ANN001
    nixa, c, port = on_redis
    client, _, at = signed_in(nixa, c)
    assert c.post("/introspect", data={"token": at}, auth=(client.client_id, client.secret)).json()["active"] is True
    before = commands(port)
    for _ in range(4):
        r = c.post("/introspect", data={"token": at}, auth=(client.client_id, client.secret))
        assert r.status_code == 200 and r.json()["active"] is True
    assert served_since(port, before) == {"mget": 4}


def test_each_request_verifies_the_token_s_signature_once(on_redis, monkeypatch) -> None:  # noqa: ANN001
    """Attacker: none; the cost. UserInfo and introspection check the token to know what to
    read from Redis, then answer through the usual path: the signature is verified once per
    request (idp/oidc/tokens.py checked_once), and only within it: the next request verifies
    again (a signing key revoked in between refuses it: tests/keys/test_key_ring.py)."""
    nixa, c, _ = on_redis
    client, _, at = signed_in(nixa, c)
    verified: list[str] = []
    real = nixa.keys.verify
    monkeypatch.setattr(nixa.keys, "verify", lambda token, *a, **kw: (verified.append(token), real(token, *a, **kw))[1])
    for _ in range(3):
        assert c.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code == 200
        assert c.post("/introspect", data={"token": at}, auth=(client.client_id, client.secret)).json()["active"] is True
    assert verified == [at] * 6


def test_read_ahead_still_sees_a_revocation_and_a_changed_attribute_at_once(on_redis) -> None:  # noqa: ANN001
    """Attacker: an agency (or a thief of its token) that keeps using a token the citizen
    revoked. The read made before the answer is the store's value of that instant: the very
    next request after the revocation is refused by UserInfo and reads inactive at
    introspection, and an attribute changed meanwhile is released new, not from the copy."""
    from connectors.base import VerifiedAttribute

    nixa, c, _ = on_redis
    client, citizen, at = signed_in(nixa, c)
    assert c.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).json()["name"] == "Nguyễn Thị Bình"
    nixa.people.store_attributes(citizen.person_id, {"name": VerifiedAttribute("name", "Lê Văn Đổi", "population", time.time() + 1)})
    assert c.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).json()["name"] == "Lê Văn Đổi"
    assert c.post("/revoke", data={"token": at}, auth=(client.client_id, client.secret)).status_code == 200
    r = c.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    assert c.post("/introspect", data={"token": at}, auth=(client.client_id, client.secret)).json() == {"active": False}


def test_a_redis_that_stops_answering_is_a_503_on_the_hot_paths(on_redis, tmp_path) -> None:  # noqa: ANN001
    """The awaited read fails like the blocking one did: the store is unavailable, 503
    temporarily_unavailable, never a 500 nor an answer given without the revocation check."""
    nixa, c, port = on_redis
    client, _, at = signed_in(nixa, c)
    assert c.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code == 200
    redis.Redis(port=port).shutdown(nosave=True)
    r = c.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
    r = c.post("/introspect", data={"token": at}, auth=(client.client_id, client.secret))
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
