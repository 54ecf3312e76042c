"""Support and incidents: find a person, see what NIXA holds about them, and act.

Every look at a person and every action on one needs a reason: it is audited (`admin.viewed`,
`admin.changed`, with the actor) and shown to the person in their access log, as done by NIXA
support (idp/events.py). Ending what a person holds reuses the code the registry's status
checks use (idp/identity/status.py): grants revoked, SSO sessions ended, every app that had a
session told by back-channel logout."""

from __future__ import annotations

import json
from typing import Any

import phonenumbers
from sqlalchemy import String, cast, func, select

from admin.service import AdminRefused, check_reason, not_found, record
from idp.account import service as account
from idp.identity import factors
from idp.identity import status as id_status
from idp.store.models import Consent, Grant, LinkedIdentity, Person, PersonAttribute

LOCKED = "locked"  # an administrator's status: check_person refuses it until it is lifted here
MAX_RESULTS = 50


def _json_text(value: str) -> str:
    """How a string attribute value is stored in the JSON column (SQLAlchemy's serializer)."""
    return json.dumps(value)


def normalise_phone(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, "VN")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if phonenumbers.is_possible_number(number) else None


class Support:
    def __init__(self, nixa: Any) -> None:
        self.nixa = nixa

    # ---- finding and seeing ---------------------------------------------------------------

    def search(self, actor: dict[str, Any], reason: str | None, *, national_id: str | None = None, name: str | None = None,
               phone: str | None = None) -> list[dict[str, Any]]:
        reason = check_reason(reason)
        if not any((national_id, name, phone)):
            raise AdminRefused(400, "invalid_request", "search by national_id, name or phone")
        query = select(Person.id)
        if national_id:
            if not (national_id.isdigit() and len(national_id) == 12):
                raise AdminRefused(400, "invalid_request", "national_id: 12 digits")
            query = query.where(Person.national_id == national_id)
        if phone:
            e164 = normalise_phone(phone)
            if e164 is None:
                raise AdminRefused(400, "invalid_request", "phone: not a phone number")
            query = query.where(Person.id.in_(select(PersonAttribute.person_id).where(
                PersonAttribute.name == "phone_number", cast(PersonAttribute.value, String) == _json_text(e164))))
        if name:
            name = " ".join(name.split())
            if not 2 <= len(name) <= 128:
                raise AdminRefused(400, "invalid_request", "name: 2 to 128 characters")
            pattern = "%" + _json_text(name)[1:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(Person.id.in_(select(PersonAttribute.person_id).where(
                PersonAttribute.name == "name", func.lower(cast(PersonAttribute.value, String)).like(pattern.lower(), escape="\\"))))
        with self.nixa.db.session() as s:
            ids = s.scalars(query.order_by(Person.created_at.desc()).limit(MAX_RESULTS)).all()
        record(self.nixa, actor, "people.search", ",".join(k for k, v in (("national_id", national_id), ("name", name),
                                                                         ("phone", phone)) if v), reason=reason, viewed=True)
        return self._summaries(list(ids))

    def _summaries(self, ids: list[str]) -> list[dict[str, Any]]:
        """Two queries for the whole list: the persons, then their names and phones."""
        with self.nixa.db.session() as s:
            persons = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_(ids)))}
            shown: dict[tuple[str, str], Any] = {
                (a.person_id, a.name): a.value
                for a in s.scalars(select(PersonAttribute).where(PersonAttribute.person_id.in_(ids),
                                                                 PersonAttribute.name.in_(("name", "phone_number"))))}
        return [{"person_id": pid, "status": persons[pid].status, "national_id": persons[pid].national_id,
                 "name": shown.get((pid, "name")), "phone_number": shown.get((pid, "phone_number")), "created_at": persons[pid].created_at}
                for pid in ids if pid in persons]

    def _summary(self, person_id: str) -> dict[str, Any]:
        self._person(person_id)
        return self._summaries([person_id])[0]

    def _person(self, person_id: str) -> Person:
        person = self.nixa.people.get(person_id) if isinstance(person_id, str) and len(person_id) <= 32 else None
        if person is None:
            raise not_found(f"person {person_id!r}")
        return person

    def view(self, actor: dict[str, Any], person_id: str, reason: str | None) -> dict[str, Any]:
        """Everything support may see: never a secret, a token, a session id or connector data."""
        reason = check_reason(reason)
        summary = self._summary(person_id)
        nixa = self.nixa
        with nixa.db.session() as s:
            grants = [{"grant_id": g.id, "client_id": g.client_id, "scope": g.scope, "acr": g.acr, "methods": list(g.methods or []),
                       "created_at": g.created_at, "revoked_at": g.revoked_at, "revoked_reason": g.revoked_reason}
                      for g in s.scalars(select(Grant).where(Grant.person_id == person_id).order_by(Grant.created_at.desc()).limit(200))]
        out = {
            **summary,
            "attributes": {k: {"value": v.value, "source": v.source, "verified_at": v.verified_at}
                           for k, v in nixa.people.attributes(person_id).items()},
            "links": [{"link_id": v.id, "connector_id": v.connector_id, "subject": v.subject, "loa": v.loa, "created_at": v.created_at,
                       "last_used_at": v.last_used_at, "locked_at": v.locked_at,
                       "provenance": {"method": v.proof_method, "loa": v.proof_loa, "from": v.linked_from}}
                      for v in account.links(nixa, person_id)],
            "sessions": [{"created_at": ss.created_at, "last_seen": ss.last_seen or ss.auth_time, "loa": ss.loa, "methods": list(ss.methods),
                          "clients": list(ss.clients), "ip": ss.ip, "user_agent": ss.user_agent}
                         for _, ss in nixa.sessions.person_sessions(person_id)],
            "devices": account.second_factors_json(nixa, person_id),
            "consents": [{"client_id": c.client_id, "scopes": c.scopes, "granted_at": c.granted_at} for c in account.consents(nixa, person_id)],
            "grants": grants,
            "access_log": [{"at": r.at, "client_id": r.client_id, "claims": r.claims, "channel": r.channel}
                           for r in account.access_log(nixa, person_id, account.AccessLogFilter())[0]],
        }
        record(nixa, actor, "person.view", person_id, person_id=person_id, reason=reason, support=True, viewed=True)
        return out

    # ---- acting ---------------------------------------------------------------------------

    def lock(self, actor: dict[str, Any], person_id: str, reason: str | None) -> dict[str, Any]:
        """No sign-in or refresh until unlocked; every session and grant ends now, and every app
        that had a session is told (back-channel logout)."""
        reason = check_reason(reason)
        before = self._person(person_id).status
        if before == LOCKED:
            raise AdminRefused(409, "conflict", "the person is locked already")
        id_status.end_everything(self.nixa, person_id, LOCKED, ip=actor.get("ip"), source="admin")
        after = self._summary(person_id)
        record(self.nixa, actor, "person.lock", person_id, before={"status": before}, after={"status": after["status"]},
               person_id=person_id, reason=reason, support=True)
        return after

    def unlock(self, actor: dict[str, Any], person_id: str, reason: str | None) -> dict[str, Any]:
        reason = check_reason(reason)
        if self._person(person_id).status != LOCKED:
            raise AdminRefused(409, "conflict", "the person is not locked by an administrator (a registry status follows the registry)")
        with self.nixa.db.session() as s:
            s.get(Person, person_id).status = "active"
        self.nixa.events.emit("person.status_changed", person_id=person_id, data={"status": "active", "source": "admin"})
        record(self.nixa, actor, "person.unlock", person_id, before={"status": LOCKED}, after={"status": "active"},
               person_id=person_id, reason=reason, support=True)
        return self._summary(person_id)

    def unlink(self, actor: dict[str, Any], person_id: str, link_id: str, reason: str | None) -> None:
        """Remove a linked identity; the grants its sign-ins gave end with it."""
        reason = check_reason(reason)
        self._person(person_id)
        with self.nixa.db.session() as s:
            link = s.get(LinkedIdentity, link_id) if len(link_id) <= 32 else None
            if link is None or link.person_id != person_id:
                raise not_found(f"link {link_id!r} of this person")
            before = {"connector_id": link.connector_id, "subject": link.subject, "loa": link.loa}
            grants = s.execute(select(Grant.id, Grant.client_id, Grant.methods).where(Grant.person_id == person_id,
                                                                                      Grant.revoked_at.is_(None))).all()
        try:
            self.nixa.people.unlink(person_id, link_id, ip=actor.get("ip"))
        except ValueError as exc:
            raise AdminRefused(409, "last_link", str(exc)) from None
        revoked = sum(self.nixa.tokens.revoke_grant(gid, "identity_unlinked", client_id=cid, person_id=person_id)
                      for gid, cid, methods in grants if before["connector_id"] in (methods or []))
        record(self.nixa, actor, "person.unlink", person_id, before=before, after={"unlinked": True, "grants_revoked": revoked},
               person_id=person_id, reason=reason, support=True)

    def revoke_sessions(self, actor: dict[str, Any], person_id: str, reason: str | None) -> dict[str, int]:
        """Sign the person out everywhere: every session and grant, every app told."""
        reason = check_reason(reason)
        self._person(person_id)
        grants, sessions = id_status.end_sessions_and_grants(self.nixa, person_id, "admin_revoked")
        after = {"grants_revoked": grants, "sessions_ended": sessions}
        record(self.nixa, actor, "person.revoke_sessions", person_id, after=after, person_id=person_id, reason=reason, support=True)
        return after

    def revoke_grant(self, actor: dict[str, Any], person_id: str, grant_id: str, reason: str | None) -> None:
        """End one app's grant; the app is told to end the person's sessions there."""
        reason = check_reason(reason)
        with self.nixa.db.session() as s:
            grant = s.get(Grant, grant_id) if len(grant_id) <= 32 else None
            if grant is None or grant.person_id != person_id:
                raise not_found(f"grant {grant_id!r} of this person")
            client_id, was = grant.client_id, grant.revoked_at
        if was is not None:
            raise AdminRefused(409, "conflict", "the grant is revoked already")
        self.nixa.tokens.revoke_grant(grant_id, "admin_revoked", client_id=client_id, person_id=person_id)
        self.nixa.backchannel.enqueue(person_id, [client_id], "admin_revoked")
        record(self.nixa, actor, "person.revoke_grant", grant_id, before={"revoked": False}, after={"revoked": True},
               person_id=person_id, client_id=client_id, reason=reason, support=True)

    def merge(self, actor: dict[str, Any], source: str, into: str, reason: str | None) -> dict[str, Any]:
        """Two records of one human: `source` is folded into `into` (links, accounts, grants,
        attributes, the verified national ID when `into` has none, and the second factors:
        passkeys, the authenticator app, recovery codes); `source`'s sessions end. Refused when
        both have an authenticator app: the person removes one first, rather than NIXA
        dropping either without a word."""
        reason = check_reason(reason)
        if source == into:
            raise AdminRefused(400, "invalid_request", "a person cannot be merged into themselves")
        src, dst = self._summary(source), self._summary(into)
        if src["national_id"] and dst["national_id"] and src["national_id"] != dst["national_id"]:
            raise AdminRefused(409, "conflict", "the two persons have different verified national IDs: they are two people")
        with self.nixa.db.session() as s:
            conflict = factors.merge_conflict(s, source, into)
            consents = len(s.scalars(select(Consent).where(Consent.person_id == source)).all())
        if conflict:
            raise AdminRefused(409, "conflict", "both persons have an authenticator app: the person removes one on their "
                                                "account page first (a person has one), then merge")
        before = {"source": {**src, "devices": account.second_factors_json(self.nixa, source)},
                  "into": {**dst, "devices": account.second_factors_json(self.nixa, into)}}
        id_status.end_sessions_and_grants(self.nixa, source, "admin_merged")
        try:
            moved = self.nixa.people.merge(source=source, into=into, reason=reason, ip=actor.get("ip"))
        except factors.FactorConflict as exc:  # an app confirmed in the meantime
            raise AdminRefused(409, "conflict", str(exc)) from None
        after = self._summary(into)
        record(self.nixa, actor, "person.merge", into, before=before,
               after={**after, "devices": account.second_factors_json(self.nixa, into), "second_factors_moved": moved,
                      "consents_dropped": consents},
               person_id=into, reason=reason, support=True)
        return after
