"""Every schema change is an Alembic migration that carries existing data forward."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from idp.store.db import check_schema, head_revision, migrate


def test_upgrading_from_the_first_schema_keeps_existing_grants(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grants (id, client_id, scope, amr, created_at) VALUES ('g1', 'c1', 'openid', '[]', 1.0)"))
    migrate(url)
    check_schema(engine)  # at head now: the app would start
    with engine.connect() as conn:
        methods = conn.execute(text("SELECT methods FROM grants WHERE id = 'g1'")).scalar_one()
    assert json.loads(methods) == []
    assert head_revision(url) == "0011"


PERSON = "INSERT INTO persons (id, status, created_at, updated_at) VALUES ('p1', 'active', 1.0, 1.0)"
LINK = ("INSERT INTO linked_identities (id, person_id, connector_id, subject, loa, connector_data, created_at, last_used_at) "
        "VALUES ('l1', 'p1', 'operator', 'sub-1', 2, '{}', 1.0, 1.0)")


def upgraded(tmp_path, revision: str, *rows: str):  # noqa: ANN001, ANN201
    """A database at `revision` holding `rows` (SQL inserts), then migrated to the head."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, revision)
    engine = create_engine(url)
    with engine.begin() as conn:
        for row in rows:
            conn.execute(text(row))
    migrate(url)
    return engine


def test_links_made_before_provenance_keep_nulls(tmp_path) -> None:  # noqa: ANN001
    with upgraded(tmp_path, "0002", PERSON, LINK).connect() as conn:
        row = conn.execute(text("SELECT loa, proof_method, proof_loa, linked_from FROM linked_identities WHERE id = 'l1'")).one()
    assert tuple(row) == (2, None, None, None)  # "not recorded", never invented


def test_links_before_the_outbox_are_not_locked_and_the_outbox_starts_empty(tmp_path) -> None:  # noqa: ANN001
    with upgraded(tmp_path, "0003", PERSON, LINK).connect() as conn:
        assert conn.execute(text("SELECT locked_at FROM linked_identities WHERE id = 'l1'")).scalar_one() is None
        assert conn.execute(text("SELECT count(*) FROM logout_deliveries")).scalar_one() == 0


def test_refresh_tokens_before_resource_indicators_were_granted_no_resource(tmp_path) -> None:  # noqa: ANN001
    grant = "INSERT INTO grants (id, client_id, scope, amr, methods, created_at) VALUES ('g1', 'c1', 'openid', '[]', '[]', 1.0)"
    refresh = ("INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, issued_at, expires_at) "
               "VALUES ('h1', 'g1', 'c1', 'openid', 1.0, 2.0)")
    with upgraded(tmp_path, "0004", grant, refresh).connect() as conn:
        # NULL: the token keeps being good for UserInfo only, as it was issued
        assert conn.execute(text("SELECT resources FROM refresh_tokens WHERE token_hash = 'h1'")).scalar_one() is None
        assert conn.execute(text("SELECT count(*) FROM resource_servers")).scalar_one() == 0
