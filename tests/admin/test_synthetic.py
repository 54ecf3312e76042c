"""`nixa synthetic persons`: Persons as sign-ins would have made them, at the size of a country."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from admin.synthetic import load_persons
from connectors.base import Assertion, LevelOfAssurance, VerifiedAttribute
from connectors.population.synthetic import CitizenFactory

SEED = 777  # not the sandboxes' seed: these Persons must not be anyone another test signs in as


def _count(nixa, model, **where) -> int:  # noqa: ANN001
    from idp.store import models

    table = getattr(models, model)
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    with nixa.db.session() as s:
        return s.scalar(query)


def test_the_command_adds_persons_links_and_attributes_once(run, nixa) -> None:  # noqa: ANN001
    first = [CitizenFactory(random.Random(SEED)).row() for _ in range(1)][0]
    before = _count(nixa, "Person")
    out = run("synthetic", "persons", "--count", "300", "--seed", str(SEED))
    assert out.exit_code == 0, out.output
    assert "300 Persons" in out.output
    assert _count(nixa, "Person") == before + 300
    with nixa.db.session() as s:
        from idp.store.models import LinkedIdentity, Person, PersonAttribute

        person = s.scalar(select(Person).where(Person.national_id == first[0]))
        assert person is not None and person.status == first[10]
        links = {link.connector_id: link for link in s.scalars(select(LinkedIdentity).where(LinkedIdentity.person_id == person.id))}
        names = {a.name: a.value for a in s.scalars(select(PersonAttribute).where(PersonAttribute.person_id == person.id))}
    assert links["population"].subject == first[0] and links["population"].loa == int(LevelOfAssurance.SUBSTANTIAL)
    assert links["population"].proof_method == "population"
    assert names["name"] == first[4] and names["birthdate"] == first[5]
    # Again: nothing is added twice, and the command says so.
    again = run("synthetic", "persons", "--count", "300", "--seed", str(SEED))
    assert again.exit_code == 0 and "300 already there" in again.output
    assert _count(nixa, "Person") == before + 300


def test_a_registry_sign_in_of_a_generated_citizen_finds_their_person(nixa) -> None:  # noqa: ANN001
    seed = SEED + 1
    load_persons(nixa.db, 50, seed=seed)
    pin = CitizenFactory(random.Random(seed)).row()[0]
    persons = _count(nixa, "Person")
    proven = Assertion(connector_id="population", subject=pin, loa=LevelOfAssurance.SUBSTANTIAL,
                       attributes={"national_id": VerifiedAttribute("national_id", pin, "population", 0.0)})
    resolution = nixa.people.resolve(proven)
    assert not resolution.created and not resolution.linked  # the existing link, as after years of use
    assert _count(nixa, "Person") == persons


def test_a_number_already_linked_stays_with_its_owner(nixa) -> None:  # noqa: ANN001
    from connectors.telecom.phone import normalize_msisdn
    from idp.store.models import LinkedIdentity, Person

    seed = SEED + 2
    factory = CitizenFactory(random.Random(seed))
    rows = [factory.row() for _ in range(200)]
    pin, phone = next((r[0], r[9]) for r in rows if r[9])
    msisdn = normalize_msisdn(phone)
    owner = nixa.people.create(national_id=None)
    with nixa.db.session() as s:
        s.add(LinkedIdentity(person_id=owner, connector_id="operator", subject=msisdn, loa=2))
    report = load_persons(nixa.db, 200, seed=seed)
    assert report.persons == 200
    with nixa.db.session() as s:
        holder = s.scalar(select(LinkedIdentity.person_id).where(LinkedIdentity.connector_id == "operator",
                                                                 LinkedIdentity.subject == msisdn))
        generated = s.scalar(select(Person.id).where(Person.national_id == pin))
        theirs = list(s.scalars(select(LinkedIdentity.connector_id).where(LinkedIdentity.person_id == generated)))
    assert holder == owner and theirs == ["population"]
