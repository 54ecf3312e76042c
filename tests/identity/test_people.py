"""Matching and linking rules: link only on a verified national ID number, never on an
unverified email or phone; link, unlink and merge are audited."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from connectors.base import Assertion, LevelOfAssurance, VerifiedAttribute
from idp.identity.people import NeedsProofing
from idp.store.models import AuditEvent, LinkedIdentity, Person


def _pin() -> str:
    return "0010" + str(uuid.uuid4().int)[:8]


def _assertion(connector: str, subject: str, **attrs: object) -> Assertion:
    now = time.time()
    return Assertion(connector, subject, {k: VerifiedAttribute(k, v, connector, now) for k, v in attrs.items()},
                     LevelOfAssurance.SUBSTANTIAL, ("sms",))


def _events(nixa, type_: str, person_id: str) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.type == type_, AuditEvent.person_id == person_id)))


def test_same_phone_or_email_never_links_without_a_national_id(nixa) -> None:  # noqa: ANN001
    phone = "+8490" + str(uuid.uuid4().int)[:7]
    first = nixa.people.resolve(_assertion("ldap-a", uuid.uuid4().hex, phone_number=phone, email="x@example.vn"), allow_unproofed=True)
    second = nixa.people.resolve(_assertion("ldap-b", uuid.uuid4().hex, phone_number=phone, email="x@example.vn"), allow_unproofed=True)
    assert first.person_id != second.person_id
    with pytest.raises(NeedsProofing):  # a citizen source without the ID number must be proofed first
        nixa.people.resolve(_assertion("operator", uuid.uuid4().hex, phone_number=phone))


def test_verified_national_id_links_sources_to_one_person(nixa) -> None:  # noqa: ANN001
    pin = _pin()
    a = nixa.people.resolve(_assertion("population", pin, national_id=pin, name="Đỗ Thị Lan"))
    b = nixa.people.resolve(_assertion("certificate", pin, national_id=pin))
    assert a.created and not b.created and a.person_id == b.person_id
    again = nixa.people.resolve(_assertion("certificate", pin, national_id=pin))
    assert again.person_id == a.person_id and not again.linked
    assert len(_events(nixa, "identity.linked", a.person_id)) == 2
    assert nixa.people.attributes(a.person_id)["name"].value == "Đỗ Thị Lan"


def test_proving_a_held_national_id_merges_and_is_audited(nixa) -> None:  # noqa: ANN001
    pin = _pin()
    citizen = nixa.people.resolve(_assertion("population", pin, national_id=pin)).person_id
    staff = nixa.people.resolve(_assertion("ldap-c", uuid.uuid4().hex, title="Chuyên viên"), allow_unproofed=True).person_id
    merged_into = nixa.people.link(staff, _assertion("certificate", pin, national_id=pin))
    assert merged_into == citizen
    with nixa.db.session() as s:
        assert s.get(Person, staff) is None
        connectors = set(s.scalars(select(LinkedIdentity.connector_id).where(LinkedIdentity.person_id == citizen)))
    assert connectors == {"population", "ldap-c", "certificate"}
    merged = _events(nixa, "identity.merged", citizen)
    assert merged and merged[0].data["merged_from"] == staff
    assert nixa.people.attributes(citizen)["title"].value == "Chuyên viên"


def test_unlink_is_audited_and_keeps_the_last_link(nixa) -> None:  # noqa: ANN001
    pin = _pin()
    pid = nixa.people.resolve(_assertion("population", pin, national_id=pin)).person_id
    nixa.people.resolve(_assertion("telecom", "+84911" + pin[-6:], national_id=pin))
    links = nixa.people.links(pid)
    assert nixa.people.unlink(pid, links[1].id)
    assert _events(nixa, "identity.unlinked", pid)
    with pytest.raises(ValueError):
        nixa.people.unlink(pid, links[0].id)
    assert not nixa.people.unlink("someone-else", links[0].id)
