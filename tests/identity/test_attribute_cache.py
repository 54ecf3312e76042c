"""UserInfo answers from each worker's copy of a person's attributes (idp/identity/people.py
AttributeCache). The attack it must not open: a citizen corrects their name, or the registry
records a death or a new address, and a worker keeps releasing the old value to agencies. Every
commit that writes a person is what every NIXA on the database releases at its next request."""

from __future__ import annotations

import time

from sqlalchemy import event

from connectors.base import VerifiedAttribute
from tests.conftest import code_flow, make_citizen, register_client


def _userinfo(http, token: str) -> dict:  # noqa: ANN001
    r = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def _statements_during(nixa, fn) -> list[str]:  # noqa: ANN001
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # noqa: ANN001, ANN002
        seen.append(statement)

    event.listen(nixa.db.engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(nixa.db.engine, "before_cursor_execute", record)
    return seen


def test_a_repeated_userinfo_does_not_read_the_persons_attributes_again(nixa, browser, http):  # noqa: ANN001
    citizen = make_citizen(nixa)
    token = code_flow(browser, http, register_client(nixa), citizen)["access_token"]
    assert _userinfo(http, token)["name"] == "Nguyễn Thị Bình"
    statements = _statements_during(nixa, lambda: _userinfo(http, token))
    assert not [s for s in statements if "person_attributes" in s], statements


def test_a_change_committed_by_another_nixa_is_released_at_the_next_request(nixa, settings, browser, http):  # noqa: ANN001
    """Written through one instance (the CLI beside a server, another worker), released by the
    other at once: a second NIXA of the same issuer on the same database (and the same Redis on
    the scale-out run), each with its own copy."""
    from starlette.testclient import TestClient

    from idp.app import Nixa, create_app

    second = Nixa(settings)
    citizen = make_citizen(nixa)
    token = code_flow(browser, http, register_client(nixa), citizen)["access_token"]
    with TestClient(create_app(settings, nixa=second)) as other:
        assert _userinfo(http, token)["name"] == _userinfo(other, token)["name"] == "Nguyễn Thị Bình"  # both hold a copy now
        second.people.store_attributes(citizen.person_id, {"name": VerifiedAttribute("name", "Nguyễn Thị Bình An", "population",
                                                                                      time.time() + 1)})
        assert _userinfo(http, token)["name"] == "Nguyễn Thị Bình An"
        assert _userinfo(other, token)["name"] == "Nguyễn Thị Bình An"
    second.audit.close()


def test_a_rolled_back_change_is_not_published_and_the_copy_stays_right(nixa, browser, http):  # noqa: ANN001
    from idp.store.models import PersonAttribute

    citizen = make_citizen(nixa)
    token = code_flow(browser, http, register_client(nixa), citizen)["access_token"]
    _userinfo(http, token)
    try:
        with nixa.db.session() as s:
            s.get(PersonAttribute, (citizen.person_id, "name")).value = "Never Committed"
            s.flush()
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert _userinfo(http, token)["name"] == "Nguyễn Thị Bình"
