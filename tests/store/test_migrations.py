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
    assert head_revision(url) == "0002"
