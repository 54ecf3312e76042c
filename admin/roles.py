"""The admin roles, what each may do, and who holds them (the `admin_roles` table).

One table, operation → roles, read by the API's guard for every route and by the tests that
try every role against every operation: a new operation that forgets its roles is refused to
everyone (an unknown operation has no roles)."""

from __future__ import annotations

import time
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from idp.store.db import Database
from idp.store.models import AdminRole, Person


class Role(StrEnum):
    SUPER_ADMIN = "super-admin"  # everything, including who holds which role
    CLIENT_ADMIN = "client-admin"  # agency apps: onboarding, changes, secrets, registration tokens
    CONNECTOR_ADMIN = "connector-admin"  # identity sources: configure, enable, disable, test
    SUPPORT = "support"  # citizens: search, view, lock, unlink, revoke, merge (each with a reason)
    AUDITOR = "auditor"  # read-only: the audit trail, its chain, the apps, the connectors, the keys and the roles


ALL = frozenset(Role)
PERMISSIONS: dict[str, frozenset[Role]] = {
    "clients.read": frozenset({Role.SUPER_ADMIN, Role.CLIENT_ADMIN, Role.AUDITOR}),
    "clients.write": frozenset({Role.SUPER_ADMIN, Role.CLIENT_ADMIN}),
    "registration.write": frozenset({Role.SUPER_ADMIN, Role.CLIENT_ADMIN}),
    "people.read": frozenset({Role.SUPER_ADMIN, Role.SUPPORT}),
    "people.write": frozenset({Role.SUPER_ADMIN, Role.SUPPORT}),
    "connectors.read": frozenset({Role.SUPER_ADMIN, Role.CONNECTOR_ADMIN, Role.AUDITOR}),
    "connectors.write": frozenset({Role.SUPER_ADMIN, Role.CONNECTOR_ADMIN}),
    # The signing keys are the federation's root of trust: only a super-admin changes them.
    "keys.read": frozenset({Role.SUPER_ADMIN, Role.AUDITOR}),
    "keys.write": frozenset({Role.SUPER_ADMIN}),
    "audit.read": frozenset({Role.SUPER_ADMIN, Role.AUDITOR}),
    "roles.read": frozenset({Role.SUPER_ADMIN, Role.AUDITOR}),
    "roles.write": frozenset({Role.SUPER_ADMIN}),
    "me": ALL,
}


def allowed(roles: frozenset[Role] | set[Role], permission: str) -> bool:
    return bool(set(roles) & PERMISSIONS.get(permission, frozenset()))


class UnknownRole(ValueError):
    pass


def parse_role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        raise UnknownRole(f"no role {name!r}: one of {', '.join(r.value for r in Role)}") from None


class AdminRoles:
    """Who holds which role. Read at every admin request (one indexed read by primary key)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def of(self, person_id: str) -> frozenset[Role]:
        with self.db.session() as s:
            names = s.scalars(select(AdminRole.role).where(AdminRole.person_id == person_id)).all()
        return frozenset(Role(n) for n in names if n in Role._value2member_map_)

    def grant(self, person_id: str, role: Role, *, by: str) -> bool:
        """True when the person did not hold the role yet."""
        try:
            with self.db.session() as s:
                if s.get(Person, person_id) is None:
                    raise KeyError(person_id)
                if s.get(AdminRole, (person_id, role.value)) is not None:
                    return False
                s.add(AdminRole(person_id=person_id, role=role.value, granted_at=time.time(), granted_by=by[:255]))
        except IntegrityError:  # granted at the same moment elsewhere
            return False
        return True

    def revoke(self, person_id: str, role: Role) -> bool:
        with self.db.session() as s:
            return s.execute(delete(AdminRole).where(AdminRole.person_id == person_id, AdminRole.role == role.value)).rowcount > 0

    def all(self) -> list[dict]:
        with self.db.session() as s:
            rows = s.scalars(select(AdminRole).order_by(AdminRole.person_id, AdminRole.role)).all()
            return [{"person_id": r.person_id, "role": r.role, "granted_at": r.granted_at, "granted_by": r.granted_by} for r in rows]
