"""A software authenticator: a test double of the citizen's device (not of NIXA). It answers
WebAuthn options the way a platform authenticator does: ES256 keys, attestation "none", user
present and verified, a sign count that grows by one per assertion (or whatever a test sets, to
play a cloned device). The responses are the JSON a browser's PublicKeyCredential.toJSON() gives."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Passkey:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)


def _cose(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()


@dataclass
class SoftAuthenticator:
    origin: str
    passkeys: list[Passkey] = field(default_factory=list)
    user_verified: bool = True

    def _flags(self, extra: int = 0) -> int:
        return UP | (UV if self.user_verified else 0) | extra

    def create(self, options: str | dict) -> tuple[str, Passkey]:
        """navigator.credentials.create(): a new discoverable ES256 credential."""
        o = json.loads(options) if isinstance(options, str) else options
        rp_id = o["rp"]["id"]
        passkey = Passkey(secrets.token_bytes(32), ec.generate_private_key(ec.SECP256R1()), rp_id, unb64url(o["user"]["id"]))
        attested = bytes(16) + struct.pack(">H", len(passkey.credential_id)) + passkey.credential_id + _cose(passkey.key)
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([self._flags(AT)]) + struct.pack(">I", 0) + attested
        client_data = _client_data("webauthn.create", o["challenge"], self.origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.passkeys.append(passkey)
        body = {"id": passkey.id, "rawId": passkey.id, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation), "transports": ["internal"]}}
        return json.dumps(body), passkey

    def get(self, options: str | dict, passkey: Passkey | None = None, *, sign_count: int | None = None) -> str:
        """navigator.credentials.get() with an empty allowCredentials: the person picks `passkey`
        (the newest one by default); the counter grows by one unless `sign_count` is given."""
        o = json.loads(options) if isinstance(options, str) else options
        passkey = passkey or self.passkeys[-1]
        passkey.sign_count = passkey.sign_count + 1 if sign_count is None else sign_count
        auth_data = hashlib.sha256(passkey.rp_id.encode()).digest() + bytes([self._flags()]) + struct.pack(">I", passkey.sign_count)
        client_data = _client_data("webauthn.get", o["challenge"], self.origin)
        signature = passkey.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        body = {"id": passkey.id, "rawId": passkey.id, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature), "userHandle": b64url(passkey.user_handle)}}
        return json.dumps(body)
