"""The citizen's account: what NIXA holds about them and what they may change about it.

Every query is scoped to the signed-in person; every change is checked here (not in the page)
and audited with the person and the address it came from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from idp.account.browsers import describe, network
from idp.account.signin import ACCOUNT_CLIENT_ID
from idp.store.models import AccessLogEntry, Consent, Grant, LinkedIdentity

# Connector types whose sign-in itself proves the national ID (linking.py): the registry's
# challenge and a certificate carrying the ID.
PROVING_TYPES = frozenset({"population", "certificate"})
PROFILE_ORDER = ("national_id", "name", "family_name", "middle_name", "given_name", "birthdate", "gender", "email",
                 "phone_number", "address")
HIDDEN_ATTRIBUTES = frozenset({"national_id_source"})  # bookkeeping, not a claim
PAGE_SIZE = 50
EXPORT_LIMIT = 100_000


def iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


def mask_national_id(value: Any) -> str:
    text = str(value or "")
    return "•" * max(len(text) - 4, 0) + text[-4:]


# ---- profile -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileRow:
    name: str
    value: Any
    source: str
    verified_at: float


def profile(nixa: Any, person_id: str, *, masked: bool = True) -> list[ProfileRow]:
    """The verified attributes, national ID first; shown masked except its last 4 digits."""
    attrs = nixa.people.attributes(person_id)
    rank = {name: i for i, name in enumerate(PROFILE_ORDER)}
    rows = []
    for name in sorted(attrs, key=lambda n: (rank.get(n, len(rank)), n)):
        if name in HIDDEN_ATTRIBUTES:
            continue
        attr = attrs[name]
        value = mask_national_id(attr.value) if name == "national_id" and masked else attr.value
        rows.append(ProfileRow(name, value, attr.source, attr.verified_at))
    return rows


# ---- linked identities ----------------------------------------------------------------------------


class Refused(Exception):
    """A change the account area will not make; `code` names the reason shown to the person."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class LinkView:
    id: str
    connector_id: str
    connector_type: str | None
    display_name_vi: str
    display_name_en: str
    subject: str
    loa: int
    created_at: float
    last_used_at: float
    proof_method: str | None
    proof_loa: int | None
    linked_from: str | None
    locked_at: float | None
    proves_national_id: bool


def _connector_type(nixa: Any, connector_id: str) -> str | None:
    entry = nixa.connectors.entry(connector_id)
    return entry.type if entry is not None else None


def proves_national_id(nixa: Any, link: Any) -> bool:
    """A link that stands for the person's national ID: a source that proves it by itself, or a
    link made after a proof of it (its provenance records the proof)."""
    return bool(link.proof_method) or _connector_type(nixa, link.connector_id) in PROVING_TYPES


def links(nixa: Any, person_id: str) -> list[LinkView]:
    out = []
    for link in nixa.people.links(person_id):
        entry = nixa.connectors.entry(link.connector_id)
        out.append(LinkView(
            id=link.id, connector_id=link.connector_id, connector_type=entry.type if entry else None,
            display_name_vi=(entry.display_name_vi if entry else "") or link.connector_id,
            display_name_en=(entry.display_name_en if entry else "") or link.connector_id,
            subject=link.subject, loa=link.loa, created_at=link.created_at, last_used_at=link.last_used_at,
            proof_method=link.proof_method, proof_loa=link.proof_loa, linked_from=link.linked_from,
            locked_at=getattr(link, "locked_at", None),
            proves_national_id=bool(link.proof_method) or (entry is not None and entry.type in PROVING_TYPES),
        ))
    return out


def _own_link(nixa: Any, person_id: str, link_id: str) -> LinkedIdentity:
    with nixa.db.session() as s:
        link = s.get(LinkedIdentity, link_id) if link_id and len(link_id) <= 32 else None
        if link is None or link.person_id != person_id:
            raise Refused("link_not_found")
        return link


def unlink(nixa: Any, person_id: str, link_id: str, *, ip: str | None) -> None:
    """Remove a link, unless it is the last one standing for the national ID (then the person
    could no longer prove who they are here) or the last one at all."""
    link = _own_link(nixa, person_id, link_id)
    if proves_national_id(nixa, link):
        others = [x for x in nixa.people.links(person_id)
                  if x.id != link.id and getattr(x, "locked_at", None) is None and proves_national_id(nixa, x)]
        if not others:
            nixa.events.emit("identity.link_refused", person_id=person_id, ip=ip,
                             data={"connector": link.connector_id, "reason": "last_national_id_link", "action": "unlink"})
            raise Refused("unlink_last_proof")
    try:
        nixa.people.unlink(person_id, link.id, ip=ip)
    except ValueError:
        raise Refused("unlink_last_link") from None


def report_link(nixa: Any, person_id: str, link_id: str, *, current_sid: str, ip: str | None) -> dict[str, int]:
    """"This wasn't me": lock the link, end every other session of the person, end the grants
    that sign-ins through that source gave, and audit it."""
    link = _own_link(nixa, person_id, link_id)
    now = nixa.clock()
    locked = hasattr(LinkedIdentity, "locked_at")
    if locked:
        with nixa.db.session() as s:
            s.execute(update(LinkedIdentity).where(LinkedIdentity.id == link.id, LinkedIdentity.person_id == person_id)
                      .values(locked_at=now))
    # TODO(migration 0004): without the locked_at column the link cannot be locked yet; the
    # report is still audited and the sessions and grants are still ended.
    ended = end_other_sessions(nixa, person_id, current_sid, ip=ip, reason="identity_reported")
    with nixa.db.session() as s:
        grants = s.execute(select(Grant.id, Grant.client_id, Grant.methods)
                           .where(Grant.person_id == person_id, Grant.revoked_at.is_(None))).all()
    revoked = 0
    for gid, client_id, methods in grants:
        if link.connector_id in (methods or []):
            revoked += nixa.tokens.revoke_grant(gid, "identity_reported", client_id=client_id, person_id=person_id)
    nixa.events.emit("identity.reported", person_id=person_id, ip=ip,
                     data={"connector": link.connector_id, "link_id": link.id, "locked": locked,
                           "sessions_ended": ended, "grants_revoked": revoked})
    return {"sessions_ended": ended, "grants_revoked": revoked}


# ---- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionView:
    handle: str  # what the page posts back: not the session id itself
    created_at: float
    last_seen: float
    browser: str | None
    system: str | None
    ip: str
    loa: int
    methods: list[str]
    current: bool
    apps: list[str]  # the agency apps this session signed in to (their names)
    network: str  # browsers.network(ip): this device, a private network, the internet
    place: dict[str, str] | None  # the approximate place, from the operator's city database (vi/en)


def session_handle(nixa: Any, sid: str) -> str:
    return nixa.people.client_sid(sid, ACCOUNT_CLIENT_ID)


def sessions(nixa: Any, person_id: str, current_sid: str) -> list[SessionView]:
    out = []
    for _, s in nixa.sessions.person_sessions(person_id):
        browser, system = describe(s.user_agent)
        out.append(SessionView(session_handle(nixa, s.sid), s.created_at, s.last_seen or s.auth_time, browser, system, s.ip,
                               s.loa, list(s.methods), s.sid == current_sid,
                               [client_name(nixa, c) for c in s.clients if c != ACCOUNT_CLIENT_ID], network(s.ip),
                               nixa.places.near(s.ip)))
    return sorted(out, key=lambda v: (not v.current, -v.created_at))


def _end(nixa: Any, person_id: str, sid: str, ip: str | None, reason: str) -> bool:
    ended = nixa.sessions.end_sid(person_id, sid)
    if ended is None:
        return False
    backchannel = getattr(nixa, "backchannel", None)  # OIDC Back-Channel Logout (idp/oidc/logout.py)
    if backchannel is not None and ended.clients:
        backchannel.enqueue(ended, ended.clients, f"account:{reason}")  # the apps of that device sign out too
    nixa.events.emit("session.ended", person_id=person_id, ip=ip, data={"sid": sid, "reason": reason, "clients": ended.clients})
    return True


def end_session(nixa: Any, person_id: str, handle: str, *, current_sid: str, ip: str | None) -> None:
    for _, s in nixa.sessions.person_sessions(person_id):
        if session_handle(nixa, s.sid) == handle:
            if s.sid == current_sid:
                raise Refused("session_current")  # this browser signs out through /logout
            _end(nixa, person_id, s.sid, ip, "account")
            return
    raise Refused("session_not_found")


def end_other_sessions(nixa: Any, person_id: str, current_sid: str, *, ip: str | None, reason: str = "account") -> int:
    return sum(_end(nixa, person_id, s.sid, ip, reason)
               for _, s in nixa.sessions.person_sessions(person_id) if s.sid != current_sid)


# ---- consents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentView:
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: float


def client_name(nixa: Any, client_id: str) -> str:
    client = nixa.clients.get(client_id)
    return client.name if client is not None else client_id


def consents(nixa: Any, person_id: str) -> list[ConsentView]:
    with nixa.db.session() as s:
        rows = s.scalars(select(Consent).where(Consent.person_id == person_id).order_by(Consent.granted_at.desc())).all()
        data = [(r.client_id, r.scopes, r.granted_at) for r in rows]
    from idp.app import STANDARD_SCOPES

    rank = {name: i for i, name in enumerate(STANDARD_SCOPES)}
    return [ConsentView(cid, client_name(nixa, cid), sorted(scopes.split(), key=lambda sc: (rank.get(sc, len(rank)), sc)), at)
            for cid, scopes, at in data]


def revoke_consent(nixa: Any, person_id: str, client_id: str, *, ip: str | None) -> None:
    """Withdraw consent: the app's grants end with it (its refresh and access tokens stop
    working at once, idp/app.py Nixa.revoke_consent)."""
    with nixa.db.session() as s:
        if not client_id or len(client_id) > 128 or s.get(Consent, (person_id, client_id)) is None:
            raise Refused("consent_not_found")
    nixa.revoke_consent(person_id, client_id, ip=ip)


# ---- access log ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLogFilter:
    client_id: str | None = None
    since: float | None = None  # inclusive
    until: float | None = None  # exclusive

    def apply(self, query: Any) -> Any:
        if self.client_id:
            query = query.where(AccessLogEntry.client_id == self.client_id)
        if self.since is not None:
            query = query.where(AccessLogEntry.at >= self.since)
        if self.until is not None:
            query = query.where(AccessLogEntry.at < self.until)
        return query


@dataclass(frozen=True)
class AccessLogRow:
    at: float
    client_id: str
    client_name: str
    claims: list[str]
    channel: str


def _rows(nixa: Any, person_id: str, flt: AccessLogFilter, offset: int, limit: int) -> list[AccessLogRow]:
    # The access_log table is fed by the audit writer in the same transaction as each
    # `claims.released` event (idp/events.py): the same entries, indexed by (person, time).
    query = flt.apply(select(AccessLogEntry).where(AccessLogEntry.person_id == person_id))
    query = query.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc()).offset(offset).limit(limit)
    with nixa.db.session() as s:
        data = [(r.at, r.client_id, list(r.claims or []), r.channel) for r in s.scalars(query)]
    names: dict[str, str] = {}
    return [AccessLogRow(at, cid, names.setdefault(cid, client_name(nixa, cid)), claims, channel) for at, cid, claims, channel in data]


def access_log(nixa: Any, person_id: str, flt: AccessLogFilter, page: int = 1) -> tuple[list[AccessLogRow], int]:
    """One page (newest first) and the number of matching entries."""
    with nixa.db.session() as s:
        total = s.scalar(flt.apply(select(func.count(AccessLogEntry.id)).where(AccessLogEntry.person_id == person_id))) or 0
    return _rows(nixa, person_id, flt, (max(page, 1) - 1) * PAGE_SIZE, PAGE_SIZE), int(total)


def access_log_all(nixa: Any, person_id: str, flt: AccessLogFilter) -> list[AccessLogRow]:
    return _rows(nixa, person_id, flt, 0, EXPORT_LIMIT)


def access_log_apps(nixa: Any, person_id: str) -> list[tuple[str, str]]:
    """(client id, name) of every app in the person's access log, for the filter."""
    with nixa.db.session() as s:
        ids = s.scalars(select(AccessLogEntry.client_id).where(AccessLogEntry.person_id == person_id).distinct()).all()
    return sorted(((cid, client_name(nixa, cid)) for cid in ids), key=lambda pair: pair[1].lower())


def access_log_json(row: AccessLogRow) -> dict[str, Any]:
    return {"at": iso(row.at), "client_id": row.client_id, "client_name": row.client_name, "claims": row.claims,
            "channel": row.channel}


# ---- download all my data ------------------------------------------------------------------------


def export(nixa: Any, person_id: str, current_sid: str) -> dict[str, Any]:
    """Everything NIXA holds about the person that is theirs to see. Never a secret: no password
    hash, no connector data, no session cookie or id, no token."""
    return {
        "exported_at": iso(nixa.clock()),
        "profile": [{"name": r.name, "value": r.value, "source": r.source, "verified_at": iso(r.verified_at)}
                    for r in profile(nixa, person_id, masked=False)],
        "linked_identities": [
            {"connector": v.connector_id, "type": v.connector_type, "subject": v.subject, "level": v.loa,
             "created_at": iso(v.created_at), "last_used_at": iso(v.last_used_at), "locked_at": iso(v.locked_at),
             "proves_national_id": v.proves_national_id,
             "provenance": {"method": v.proof_method, "level": v.proof_loa, "from_address": v.linked_from}}
            for v in links(nixa, person_id)
        ],
        "consents": [{"client_id": c.client_id, "client_name": c.client_name, "scopes": c.scopes, "granted_at": iso(c.granted_at)}
                     for c in consents(nixa, person_id)],
        "sessions": [{"started_at": iso(v.created_at), "last_seen_at": iso(v.last_seen), "browser": v.browser,
                      "operating_system": v.system, "address": v.ip, "level": v.loa, "methods": v.methods,
                      "current": v.current} for v in sessions(nixa, person_id, current_sid)],
        "access_log": [access_log_json(r) for r in access_log_all(nixa, person_id, AccessLogFilter())],
        "second_factors": second_factors_json(nixa, person_id),
    }


def second_factors_json(nixa: Any, person_id: str) -> dict[str, Any]:
    """Passkeys (their names, levels and dates: never a key or credential id), the authenticator
    app's dates (never its secret) and how many recovery codes are left (never a code)."""
    from idp.identity import factors, passkeys

    app = factors.totp_state(nixa, person_id)
    return {
        "passkeys": [{"name": p.name, "level": p.loa, "created_at": iso(p.created_at), "last_used_at": iso(p.last_used_at),
                      "flagged_as_cloned_at": iso(p.flagged_at)} for p in passkeys.credentials(nixa, person_id)],
        "authenticator_app": {"added_at": iso(app.created_at), "confirmed_at": iso(app.confirmed_at)} if app else None,
        "recovery_codes_left": factors.recovery_codes_left(nixa, person_id),
    }
