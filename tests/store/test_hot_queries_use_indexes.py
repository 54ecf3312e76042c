"""Every query on a hot path is served by an index: the plan of each statement a real sign-in,
token exchange, UserInfo, introspection, refresh, revocation, logout and account visit sends to
the database is asked of the database itself (EXPLAIN), and none may read a table that grows
with the population from end to end.

PostgreSQL plans with sequential scans disabled (`enable_seqscan = off`): on tables this small it
would otherwise scan anyway, but with the option off it still chooses a sequential scan when no
index can serve the query, which is exactly what this test looks for. SQLite's EXPLAIN QUERY
PLAN says SCAN (every row) or SEARCH (an index) for each table it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.account.conftest import Account
from tests.conftest import code_flow, make_citizen, register_client
from tests.oidc.helpers import auth_of, introspect, userinfo

# The tables that grow with the number of citizens, sign-ins and tokens. The others (clients,
# keys, connectors, resource servers, key-encryption versions) hold configuration: a handful of
# rows each, read whole and cached.
GROWING = {
    "persons", "person_attributes", "linked_identities", "local_accounts", "consents", "grants", "refresh_tokens",
    "audit_events", "access_log", "logout_deliveries", "webauthn_credentials", "totp_factors", "recovery_codes",
}


@contextmanager
def captured(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        if not executemany and statement.lstrip().split(None, 1)[0].upper() in {"SELECT", "UPDATE", "DELETE"}:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def full_scans(engine: Any, statement: str, parameters: Any) -> set[str]:
    """The growing tables this statement's plan reads row by row."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            cur.execute("SET enable_seqscan = off")
            cur.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = cur.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            scanned: set[str] = set()

            def walk(node: dict) -> None:
                if node.get("Node Type") == "Seq Scan":
                    scanned.add(node.get("Relation Name", ""))
                for child in node.get("Plans", []):
                    walk(child)

            walk(plan[0]["Plan"])
            cur.execute("RESET enable_seqscan")
        else:
            cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            details = [row[-1] for row in cur.fetchall()]
            # "SCAN t USING INDEX ..." still reads every entry; a covering index scan too. The
            # one scan that is not: no condition, the order of the key itself (no temporary
            # B-tree to sort), and a LIMIT, which reads from the end of the tree and stops
            # (the audit chain's tail).
            in_key_order = (not any("TEMP B-TREE" in d for d in details) and " WHERE " not in f" {statement.upper()} "
                            and re.search(r"\bLIMIT\b", statement, re.I))
            scanned = set()
            for detail in details:
                m = re.match(r"SCAN (\w+)", detail)
                if m and not in_key_order:
                    scanned.add(m.group(1))
        cur.close()
        return scanned & GROWING
    finally:
        raw.rollback()
        raw.close()


def test_the_statements_of_every_hot_path_are_served_by_an_index(nixa, app, browser, http) -> None:  # noqa: ANN001
    from connectors.base import Assertion, LevelOfAssurance, VerifiedAttribute

    client = register_client(nixa, grant_types=["authorization_code", "refresh_token"],
                             scope="openid profile email phone offline_access")
    citizen = make_citizen(nixa)
    with captured(nixa.db.engine) as statements:
        # A sign-in through a federated source: the link lookup, the Person by national ID.
        nid = f"0010{abs(hash(client.client_id)) % 10**8:08d}"
        proven = Assertion(connector_id="population", subject=nid, loa=LevelOfAssurance.SUBSTANTIAL,
                           attributes={"national_id": VerifiedAttribute("national_id", nid, "population", 0.0)})
        nixa.people.resolve(proven)  # the first time: the Person is found by national ID or made, then linked
        nixa.people.resolve(proven)  # every later time: the link
        # The whole code flow with a password sign-in and consent, then every token endpoint.
        tokens = code_flow(browser, http, client, citizen, scope="openid profile email phone offline_access",
                           prompt="consent")
        assert userinfo(http, tokens["access_token"]).status_code == 200
        assert introspect(http, client, tokens["access_token"]).json()["active"] is True
        refreshed = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                              auth=auth_of(client))
        assert refreshed.status_code == 200, refreshed.text
        assert http.post("/revoke", data={"token": refreshed.json()["refresh_token"]}, auth=auth_of(client)).status_code == 200
        # The citizen's own page: identities, sessions, consents, devices, the access log.
        account = Account(app, nixa, citizen.person_id)
        try:
            account.page()
            account.page("/account/access-log")
        finally:
            account.client.close()
        r = browser.get("/logout", params={"id_token_hint": tokens["id_token"], "client_id": client.client_id})
        assert r.status_code in (200, 303)
    assert len(statements) > 20, "the flows above reached the database"
    # The audit writer reads the chain's tail through the DBAPI cursor (idp/events.py _BatchSql),
    # where SQLAlchemy's events do not see it: its statement is asked about all the same.
    statements.append((nixa.audit._sql.tail, ()))
    tables_read = {t for s, _ in statements for t in GROWING if re.search(rf"\b{t}\b", s)}
    assert {"persons", "linked_identities", "local_accounts", "grants", "refresh_tokens", "consents", "access_log",
            "audit_events"} <= tables_read
    offenders = {}
    for statement, parameters in statements:
        scanned = full_scans(nixa.db.engine, statement, parameters)
        if scanned:
            offenders[" ".join(statement.split())[:300]] = sorted(scanned)
    assert not offenders, json.dumps(offenders, indent=1, ensure_ascii=False)


def test_the_check_can_fail_a_query_no_index_serves(nixa) -> None:  # noqa: ANN001
    # The detector itself: a filter on a column without an index, or a sort no index gives, is a
    # full scan of a growing table; the key's own order with a limit is not.
    params = {} if nixa.db.engine.dialect.name == "postgresql" else ()
    assert full_scans(nixa.db.engine, "SELECT id FROM persons WHERE status = 'locked'", params) == {"persons"}
    assert full_scans(nixa.db.engine, "SELECT id FROM grants ORDER BY scope LIMIT 1", params) == {"grants"}
    assert full_scans(nixa.db.engine, "SELECT id FROM persons WHERE national_id = '001090000001'", params) == set()
    assert full_scans(nixa.db.engine, "SELECT id FROM audit_events ORDER BY id DESC LIMIT 1", params) == set()
