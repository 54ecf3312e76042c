"""schemathesis against the served OpenAPI document of the admin API, as a super-admin: for a
few dozen generated requests per operation, no 5xx and every response as documented (status,
content type, headers, body schema), and requests outside the schema refused.

Each operation's strategy is driven by Hypothesis here (schemathesis' lazy pytest fixture does
not work with this pytest); the operations are those of the role table, which a test holds
equal to the served document.

The connector and signing-key operations are fuzzed against a NIXA of their own (its own
database: tests/admin/conftest.py own_app): the connectors the fuzzer creates and the keys it
rotates or retires would otherwise show in the shared app's chooser and sign its tokens."""

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


@pytest.fixture(scope="module")
def own_schema(own_app):  # noqa: ANN001, ANN201
    return schemathesis.openapi.from_asgi("/admin/api/openapi.json", own_app)


@pytest.fixture(scope="module")
def own_super_admin(own_app):  # noqa: ANN001, ANN201
    return signed_in(own_app, Role.SUPER_ADMIN)


# Operations whose changes must stay out of the shared app.
ISOLATED = ("/connectors", "/connector-types", "/keys")
SHARED_OPERATIONS = sorted({(m, p) for m, p, *_ in OPERATIONS if not p.startswith(ISOLATED)})
ISOLATED_OPERATIONS = sorted({(m, p) for m, p, *_ in OPERATIONS if p.startswith(ISOLATED)})


def _fuzz(schema, headers: dict[str, str], method: str, path: str) -> None:  # noqa: ANN001
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def conforms(case) -> None:  # noqa: ANN001
        case.call_and_validate(headers=headers, excluded_checks=[schemathesis.checks.positive_data_acceptance])

    conforms()


@pytest.mark.parametrize("method, path", SHARED_OPERATIONS, ids=lambda v: v)
def test_the_admin_api_keeps_to_its_openapi_document(admin_schema, super_admin, method, path):  # noqa: ANN001
    _fuzz(admin_schema, super_admin.headers(), method, path)


def _state(nixa) -> tuple:  # noqa: ANN001
    return ({(k.kid, k.state) for k in nixa.signing_keys.list()}, {(c.id, c.version) for c in nixa.connectors.all_stored()})


@pytest.fixture(scope="module")
def shared_before(nixa):  # noqa: ANN001, ANN201
    return _state(nixa)


@pytest.mark.parametrize("method, path", ISOLATED_OPERATIONS, ids=lambda v: v)
def test_the_connector_and_key_operations_keep_to_it_on_a_nixa_of_their_own(own_schema, own_super_admin, shared_before,
                                                                             method, path):  # noqa: ANN001
    _fuzz(own_schema, own_super_admin.headers(), method, path)


def test_every_operation_is_fuzzed_and_the_shared_app_kept_out_of_it(nixa, shared_before):  # noqa: ANN001
    assert len(ISOLATED_OPERATIONS) == 11 and set(SHARED_OPERATIONS) | set(ISOLATED_OPERATIONS) == {(m, p) for m, p, *_ in OPERATIONS}
    assert _state(nixa) == shared_before  # no key rotated or retired, no connector made or changed in the shared app
