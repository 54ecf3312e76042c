"""Durable state (SQLite embedded, PostgreSQL scale-out). Every change needs an Alembic migration."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    pass


class Person(Base):
    """One human, whatever the sources they signed in with. `id` is internal and never released."""

    __tablename__ = "persons"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # The verified 12-digit personal identification number, once a source proved it.
    national_id: Mapped[str | None] = mapped_column(String(12), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class PersonAttribute(Base):
    """A verified claim value with its source and verification time (OIDC4IDA verified_claims)."""

    __tablename__ = "person_attributes"
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[float] = mapped_column(Float)


class LinkedIdentity(Base):
    __tablename__ = "linked_identities"
    __table_args__ = (UniqueConstraint("connector_id", "subject", name="uq_link_connector_subject"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    connector_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    # The level this source is trusted for as this person: min(source level, level of the proof
    # of the person's national ID that made the link), idp/identity/linking.py.
    loa: Mapped[int] = mapped_column(Integer, default=1)
    connector_data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    last_used_at: Mapped[float] = mapped_column(Float, default=now)
    # Provenance: what proved the national ID when this link was made, at which level, from where.
    proof_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    proof_loa: Mapped[int | None] = mapped_column(Integer, nullable=True)
    linked_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set when the person disowned this link ("this wasn't me"): it no longer signs them in.
    locked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LocalAccount(Base):
    """Local test/demo accounts: username + argon2id password, linked to a Person."""

    __tablename__ = "local_accounts"
    username: Mapped[str] = mapped_column(String(128), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Client(Base):
    """A relying party. `metadata_` holds RFC 7591 metadata; the secret only as a keyed hash."""

    __tablename__ = "clients"
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    may_receive_national_id: Mapped[bool] = mapped_column(Boolean, default=False)
    require_par: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    # Secret rotation with an overlap: the secret before the last rotation stays valid until then.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_secret_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # RFC 7592: the registration access token of a dynamically registered client, as SHA-256.
    registration_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Consent(Base):
    __tablename__ = "consents"
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True)
    scopes: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[float] = mapped_column(Float, default=now)


class Grant(Base):
    """What a person let a client have; refresh tokens and access tokens hang off it."""

    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), nullable=True, index=True)
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    auth_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    acr: Mapped[str | None] = mapped_column(String(128), nullable=True)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    # The sign-in methods (connector ids) behind the grant: each is asked again at refresh
    # whether the person is still valid there.
    methods: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshToken(Base):
    """Stored only as SHA-256 of the token; a dump yields nothing usable."""

    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float] = mapped_column(Float)
    rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # RFC 8707: the resources granted at /authorize (NULL: none, the token is for UserInfo);
    # each refresh may narrow them, never widen.
    resources: Mapped[list | None] = mapped_column(JSON, nullable=True)


class SigningKey(Base):
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[str] = mapped_column(String(16))  # pending | active | retired
    # database: private_enc holds the sealed private key; pkcs11: it is empty, the private key
    # lives in the HSM token under this kid (keys/pkcs11.py)
    backend: Mapped[str] = mapped_column(String(16), default="database", server_default="database")
    private_enc: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    activated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    retired_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class KeyRingState(Base):
    """One row per alg; `generation` is the optimistic lock that makes rotation race-safe."""

    __tablename__ = "key_ring_state"
    alg: Mapped[str] = mapped_column(String(16), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    rotated_at: Mapped[float] = mapped_column(Float, default=now)


class KekVersion(Base):
    """One row per master key NIXA has sealed under (keys/sealing.py): its fingerprint, never
    the key. The newest version is current; a sealed value names the version it needs."""

    __tablename__ = "kek_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class StableSecret(Base):
    """Secrets that must outlive any master key (pairwise-subject key, client-secret pepper,
    CSRF key, access-token seal), sealed under the KEK (keys/stable.py)."""

    __tablename__ = "stable_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ConnectorConfig(Base):
    __tablename__ = "connector_configs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    display_name_vi: Mapped[str] = mapped_column(String(128), default="")
    display_name_en: Mapped[str] = mapped_column(String(128), default="")
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    loa: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=100)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class AuditEvent(Base):
    """Append-only and hash-chained: each row's hash covers the previous row's hash."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, default=now, index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AccessLogEntry(Base):
    """What the citizen sees: which app received which of their claims, when."""

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[float] = mapped_column(Float, default=now)
    claims: Mapped[list] = mapped_column(JSON, default=list)
    channel: Mapped[str] = mapped_column(String(16))  # id_token | userinfo


Index("ix_access_log_person_at", AccessLogEntry.person_id, AccessLogEntry.at)


class LogoutDelivery(Base):
    """The back-channel logout outbox (OpenID Connect Back-Channel Logout 1.0): one row per app
    to tell, written before the logout is acknowledged, delivered and retried by any worker.
    No token is stored: a fresh short-lived logout token is signed at each attempt from these
    fields, so the table never holds a usable credential."""

    __tablename__ = "logout_deliveries"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True)  # as this client saw it (ID token `sid`)
    uri: Mapped[str] = mapped_column(String(2000))
    reason: Mapped[str] = mapped_column(String(64), default="logout")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=now)
    # The issuer the logout happened under: a logout token is signed only by a worker of that
    # issuer (NULL: queued before this column, any worker).
    issuer: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # A worker's claim on the row while it delivers; an expired claim (a crashed worker) lapses.
    claimed_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)


Index("ix_logout_deliveries_due", LogoutDelivery.status, LogoutDelivery.next_attempt_at)


class ResourceServer(Base):
    """An agency API that accepts NIXA access tokens (RFC 8707 resource, RFC 9068 `aud`): the
    scopes it accepts and the client it authenticates with to introspect its tokens."""

    __tablename__ = "resource_servers"
    identifier: Mapped[str] = mapped_column(String(512), primary_key=True)  # absolute URI, no fragment
    name: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(Text, default="")  # space-separated
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class WebAuthnCredential(Base):
    """A passkey of a person (WebAuthn): its public key, the sign count last seen (a regression
    flags a cloned authenticator), and the level it earns (that of the session it was registered in)."""

    __tablename__ = "webauthn_credentials"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the credential id, base64url
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(64))
    transports: Mapped[list] = mapped_column(JSON, default=list)
    aaguid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    loa: Mapped[int] = mapped_column(Integer, default=2)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The person whose WebAuthn user handle the authenticator holds (it was registered as theirs,
    # then moved here by a merge); None: this row's person.
    user_handle_of: Mapped[str | None] = mapped_column(String(32), nullable=True)


class TotpFactor(Base):
    """A person's authenticator-app secret (RFC 6238), sealed at rest; `last_step` is the last
    time step accepted, so each code is accepted once."""

    __tablename__ = "totp_factors"
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    confirmed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_step: Mapped[int] = mapped_column(Integer, default=0)


class RecoveryCode(Base):
    """A single-use recovery code, stored only as a keyed hash."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("code_hash", name="uq_recovery_code_hash"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The person the keyed hash was made for (moved here by a merge); None: this row's person.
    bound_to: Mapped[str | None] = mapped_column(String(32), nullable=True)


class AdminRole(Base):
    """A role of the admin API held by a Person (admin/roles.py says what each role may do)."""

    __tablename__ = "admin_roles"
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    granted_at: Mapped[float] = mapped_column(Float, default=now)
    granted_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class InitialAccessToken(Base):
    """RFC 7591 §3: a token an agency presents to register a client itself (the sandbox), as
    SHA-256, with its expiry and the registrations it has left."""

    __tablename__ = "initial_access_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float] = mapped_column(Float)
    uses_left: Mapped[int] = mapped_column(Integer, default=1)
