"""The one linking policy: when a sign-in proves a Person's national ID, and when a source may be
linked to a Person (DESIGN.md "Identity proofing and linking").

Knowing is not proving: the ID number, name and birth date are printed on every photocopy of the
card, so they only *identify* a registry record. A national ID is proven by something the person
holds that the registry binds to them:

- the population registry's challenge: the code sent to the phone the registry has on record
  for that ID (level of the challenge, substantial by default);
- a digital-signature certificate from a trusted CA carrying the ID (high);
- an upstream configured as asserting the ID (`asserts_national_id`: a Vietnamese operator
  registers every SIM against its owner's ID), and then only when the MSISDN it signed in is
  the registry's phone on record for that ID (the upstream's level).

A new LinkedIdentity needs a proof at a level at least the level the source will be trusted for;
the link is trusted for min(source level, proof level), and so is the session it makes. Every
link records its provenance (method, level, time, address); the citizen is told of each new link
by SMS to the phone on record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.base import Assertion, ConnectorError, NotAllowed

PROOF_TYPES = ("population", "certificate")  # connector types whose assertions prove the ID


@dataclass(frozen=True)
class Proof:
    """A national ID proven during this sign-in: by which method, at which level."""

    national_id: str
    method: str
    loa: int


class LinkRefused(NotAllowed):
    """The link would be weaker than the level it grants, or contradicts the registry."""

    code = "link_refused"


def asserts_national_id(entry: Any) -> bool:
    return bool(entry.config.get("asserts_national_id")) and entry.type not in PROOF_TYPES


def national_id_proof(nixa: Any, entry: Any, assertion: Assertion, loa: int) -> Proof | None:
    """Whether `assertion` (from `entry`, reaching `loa`) proves a national ID, and how well."""
    nid = assertion.national_id
    if not nid:
        return None
    if entry.type == "population":
        # Only the challenge (code to the phone on record) proves; the registry connector no
        # longer signs anyone in on knowledge alone, but check what reached us all the same.
        return Proof(nid, entry.id, loa) if {"sms", "otp"} & set(assertion.amr) else None
    if entry.type == "certificate":
        return Proof(nid, entry.id, loa)
    if asserts_national_id(entry):
        on_record = registry_phone(nixa, assertion)
        if not on_record or on_record != assertion.value("phone_number"):
            raise LinkRefused("the operator's number is not the registry's phone on record for this ID", code="msisdn_not_on_record")
        return Proof(nid, entry.id, loa)
    return None


def registry_phone(nixa: Any, assertion: Assertion) -> str | None:
    """The phone the population registry has on record for the assertion's national ID."""
    from connectors.base import AttributeSource

    for entry in nixa.connectors.entries():
        if entry.type == "population" and isinstance(entry.instance, AttributeSource):
            try:
                attrs = entry.instance.enrich(assertion)
            except NotAllowed:
                raise
            except ConnectorError:
                return None
            phone = attrs.get("phone_number")
            return str(phone.value) if phone else None
    return None


def strip_unproven_national_id(entry: Any, assertion: Assertion) -> Assertion:
    """An upstream that is not trusted to assert the national ID may still send one (a claims
    mapping, a ministry's IdP): it is then not a verified attribute and must not link."""
    if not assertion.national_id or entry.type in PROOF_TYPES or asserts_national_id(entry):
        return assertion
    from dataclasses import replace

    return replace(assertion, attributes={k: v for k, v in assertion.attributes.items() if k != "national_id"})


def check_link(source_loa: int, proof: Proof) -> int:
    """The level a new link (and the session it makes) is trusted for, or LinkRefused."""
    if proof.loa < source_loa:
        raise LinkRefused(f"a proof at level {proof.loa} cannot link a source trusted at {source_loa}", code="proof_too_weak")
    return min(source_loa, proof.loa)
