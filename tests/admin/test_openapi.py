"""The admin API's OpenAPI document: OpenAPI 3.1, served at /admin/api/openapi.json, equal to
the one committed in admin/openapi.json (a change to the API is a reviewed change to that file:
`nixa admin openapi > admin/openapi.json`), and a valid document by schemathesis' loader."""

from __future__ import annotations

import json
from pathlib import Path

COMMITTED = Path(__file__).resolve().parents[2] / "admin" / "openapi.json"


def test_the_served_document_is_the_committed_one(http):  # noqa: ANN001
    r = http.get("/admin/api/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    served = r.json()
    assert served["openapi"].startswith("3.1.")
    assert served == json.loads(COMMITTED.read_text(encoding="utf-8")), "regenerate: nixa admin openapi > admin/openapi.json"


def test_the_document_validates_and_documents_its_errors(http):  # noqa: ANN001
    import schemathesis

    schema = schemathesis.openapi.from_dict(http.get("/admin/api/openapi.json").json())
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    spec = http.get("/admin/api/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert {"401", "403"} <= set(op["responses"]), (method, path)
