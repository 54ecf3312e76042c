"""schemathesis against the served OpenAPI document of the admin API, as a super-admin: for a
few dozen generated requests per operation, no 5xx and every response as documented (status,
content type, headers, body schema), and requests outside the schema refused.

Each operation's strategy is driven by Hypothesis here (schemathesis' lazy pytest fixture does
not work with this pytest); the operations are those of the role table, which a test holds
equal to the served document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from admin.roles import Role
from tests.admin.operators import signed_in
from tests.admin.test_api_roles import OPERATIONS

EXAMPLES = 25


@pytest.fixture(scope="module")
def admin_schema(app):  # noqa: ANN001, ANN201
    return schemathesis.openapi.from_asgi("/admin/api/openapi.json", app)


@pytest.fixture(scope="module")
def super_admin(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.SUPER_ADMIN)


@pytest.mark.parametrize("method, path", sorted({(m, p) for m, p, *_ in OPERATIONS}), ids=lambda v: v)
def test_the_admin_api_keeps_to_its_openapi_document(admin_schema, super_admin, method, path):  # noqa: ANN001
    operation = admin_schema[path][method]
    headers = super_admin.headers()

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def conforms(case) -> None:  # noqa: ANN001
        case.call_and_validate(headers=headers, excluded_checks=[schemathesis.checks.positive_data_acceptance])

    conforms()
