"""Signing keys held in an HSM through PKCS#11 (python-pkcs11; SoftHSM2 in the tests).

Each key is generated inside the token as a non-extractable, sensitive private key with the
kid as its label and id; NIXA's database keeps only the row (state, times) and the public JWK.
Signatures are made inside the token and plugged into joserfc as the signing half of a JWS
algorithm, so header and payload encoding stay joserfc's:

- ES256: the SHA-256 digest is signed with CKM_ECDSA, whose output is already r || s of 32
  bytes each (PKCS#11 v2.40 §2.3.1), which is the JWS form (RFC 7518 §3.4): no DER step.
- RS256: CKM_SHA256_RSA_PKCS over the signing input (RSASSA-PKCS1-v1_5, RFC 7518 §3.3).
- EdDSA: CKM_EDDSA (pure Ed25519, RFC 8037 §3.1).

One logged-in session per process and token: PKCS#11 login is per application, so a second
C_Login in the same process answers "already logged in" without checking the PIN; a second
connection with another PIN is refused here rather than silently trusted. python-pkcs11
serializes the operations of one session, so threads may share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc._rfc7515.model import JWSAlgModel

HSM_ALGS = ("ES256", "RS256", "EdDSA")
_OID_ED25519 = "1.3.101.112"


class HsmProblem(RuntimeError):
    """NIXA cannot use the configured HSM (unreachable, wrong PIN, a key missing from the
    token): a refusal to start with one clear line, never a 500 later. Never holds the PIN."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class HsmSigning(JWSAlgModel):
    """A JWS algorithm whose signing happens in the token; checking keys and verifying stay
    joserfc's own (public keys only)."""

    def __init__(self, hsm: Hsm, software: JWSAlgModel) -> None:
        self.hsm = hsm
        self.software = software
        self.name = software.name
        self.description = f"{software.description} (signed inside the HSM)"
        self.recommended = True
        self.key_type = software.key_type
        self.algorithm_security = software.algorithm_security

    def check_key(self, key: Any) -> None:
        self.software.check_key(key)

    def sign(self, msg: bytes, key: Any) -> bytes:
        return self.hsm.sign(key.kid, self.name, msg)

    def verify(self, msg: bytes, sig: bytes, key: Any) -> bool:
        return self.software.verify(msg, sig, key)


# (module, token label) → (PIN digest, session): one login per process and token.
_SESSIONS: dict[tuple[str, str], tuple[bytes, Any]] = {}
_SESSIONS_LOCK = threading.Lock()


def _pin_digest(pin: str) -> bytes:
    return hmac.new(b"nixa pkcs11 pin", pin.encode(), hashlib.sha256).digest()


class Hsm:
    """The token NIXA's keys live in: generate, check, sign, destroy."""

    def __init__(self, module: str, token_label: str, pin: str, *, algs: tuple[str, ...] = HSM_ALGS) -> None:
        if not module:
            raise HsmProblem("NIXA_KEY_BACKEND is pkcs11 but NIXA_PKCS11_MODULE (the HSM's PKCS#11 library) is not set")
        if not token_label:
            raise HsmProblem("NIXA_PKCS11_TOKEN_LABEL is not set: name the token that holds NIXA's signing keys")
        if not pin:
            raise HsmProblem("NIXA_PKCS11_PIN (or NIXA_PKCS11_PIN_FILE) is not set: the user PIN of the token")
        self.module = module
        self.token_label = token_label
        self._pin_value = pin  # kept to log in again when a network HSM drops the session
        self._pin = _pin_digest(pin)
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._session = self._login(pin)
        self._check_mechanisms(algs)
        self.registry = self._registry(algs)

    # ---- connection ------------------------------------------------------------------------

    def _login(self, pin: str) -> Any:
        import pkcs11
        from pkcs11 import exceptions as px

        where = f"token {self.token_label!r} of {self.module}"
        with _SESSIONS_LOCK:
            held = _SESSIONS.get((self.module, self.token_label))
            if held is not None:
                if not hmac.compare_digest(held[0], self._pin):
                    raise HsmProblem(f"{where}: this process is logged in with another PIN (NIXA_PKCS11_PIN)")
                return held[1]
            try:
                lib = pkcs11.lib(self.module)
                token = lib.get_token(token_label=self.token_label)
                session = token.open(rw=True, user_pin=pin)
            except px.PinIncorrect:
                raise HsmProblem(f"{where} refused the PIN (NIXA_PKCS11_PIN): check it; repeated wrong PINs may lock the token") from None
            except px.PinLocked:
                raise HsmProblem(f"{where}: the user PIN is locked; the token's security officer must unlock it") from None
            except px.NoSuchToken:
                raise HsmProblem(f"no token labelled {self.token_label!r} in {self.module} (NIXA_PKCS11_TOKEN_LABEL)") from None
            except px.UserAlreadyLoggedIn:
                raise HsmProblem(f"{where}: another part of this process is logged in; cannot check the PIN") from None
            except px.PKCS11Error as exc:
                # The library's own message names the module file, never the PIN.
                raise HsmProblem(f"the HSM is unreachable ({where}): {type(exc).__name__}: {exc}") from None
            _SESSIONS[(self.module, self.token_label)] = (self._pin, session)
            return session

    def _reconnect(self) -> None:
        """The session died (a network HSM restarted, the token was re-inserted): log in anew."""
        with _SESSIONS_LOCK:
            held = _SESSIONS.get((self.module, self.token_label))
            if held is not None and held[1] is self._session:  # not one another thread already opened anew
                del _SESSIONS[(self.module, self.token_label)]
        self._handles.clear()
        self._session = self._login(self._pin_value)

    def _check_mechanisms(self, algs: tuple[str, ...]) -> None:
        from pkcs11 import Mechanism

        needed = {"ES256": (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA),
                  "RS256": (Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.SHA256_RSA_PKCS),
                  "EdDSA": (Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA)}
        try:
            have = set(self._session.token.slot.get_mechanisms())
        except Exception as exc:  # noqa: BLE001  any PKCS#11 failure here means the token is not usable
            raise HsmProblem(f"the HSM is unreachable (token {self.token_label!r}): {type(exc).__name__}") from None
        missing = [f"{alg} ({m.name})" for alg in algs if alg in needed for m in needed[alg] if m not in have]
        unknown = [alg for alg in algs if alg not in needed]
        if missing or unknown:
            raise HsmProblem(f"token {self.token_label!r} cannot make every signing key NIXA needs: missing "
                             + ", ".join(missing + [f"{a} (not supported with PKCS#11)" for a in unknown]))

    def _registry(self, algs: tuple[str, ...]) -> JWSRegistry:
        """A joserfc registry whose algorithms sign in this token (the class-wide one is untouched)."""
        registry = JWSRegistry(algorithms=list(algs))
        registry.algorithms = {a: HsmSigning(self, JWSRegistry.algorithms[a]) for a in algs}
        return registry

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        from pkcs11 import exceptions as px

        dead = (px.SessionClosed, px.SessionHandleInvalid, px.DeviceRemoved, px.TokenNotPresent, px.UserNotLoggedIn, px.DeviceError)
        try:
            return fn(self._session)
        except dead:
            self._reconnect()  # once: a second failure is the HSM's, said plainly
        try:
            return fn(self._session)
        except dead as exc:
            raise HsmProblem(f"the HSM session ended (token {self.token_label!r}: {type(exc).__name__})") from None

    # ---- keys ----------------------------------------------------------------------------------

    def generate(self, alg: str, kid: str) -> dict:
        """A new key pair inside the token, private half sensitive and never extractable; its
        public JWK."""
        from pkcs11 import Attribute, KeyType, Mechanism
        from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

        private = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.PRIVATE: True}
        common = {"store": True, "label": kid, "id": kid.encode(), "private_template": private,
                  "public_template": {Attribute.VERIFY: True}}
        params = {"kid": kid, "alg": alg, "use": "sig"}

        def make(s: Any) -> dict:
            if alg == "ES256":
                domain = s.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                                                    local=True)
                pub, _ = domain.generate_keypair(**common)
                return ECKey.import_key(encode_ec_public_key(pub), parameters=params).as_dict(private=False)
            if alg == "RS256":
                pub, _ = s.generate_keypair(KeyType.RSA, 2048, **common)
                jwk = {"kty": "RSA", "n": _b64(pub[Attribute.MODULUS]), "e": _b64(pub[Attribute.PUBLIC_EXPONENT])}
                return RSAKey.import_key(jwk, parameters=params).as_dict(private=False)
            if alg == "EdDSA":
                domain = s.create_domain_parameters(KeyType.EC_EDWARDS,
                                                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_OID_ED25519)}, local=True)
                pub, _ = domain.generate_keypair(mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN, **common)
                point = bytes(pub[Attribute.EC_POINT])
                raw = point[2:] if len(point) == 34 and point[:2] == b"\x04\x20" else point  # DER OCTET STRING around 32 bytes
                return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}, parameters=params).as_dict(private=False)
            raise HsmProblem(f"{alg} keys cannot be made in the HSM")

        with self._lock:
            return self._call(make)

    def _private(self, s: Any, kid: str) -> Any:
        from pkcs11 import ObjectClass
        from pkcs11 import exceptions as px

        key = self._handles.get(kid)
        if key is None:
            try:
                key = s.get_key(object_class=ObjectClass.PRIVATE_KEY, id=kid.encode())
            except px.NoSuchKey:
                raise HsmProblem(f"signing key {kid} is not in token {self.token_label!r} (another token configured?)") from None
            self._handles[kid] = key
        return key

    def check(self, kid: str) -> None:
        """The key is in the token (at start and on each new view of the ring)."""
        self._handles.pop(kid, None)
        self._call(lambda s: self._private(s, kid))

    def sign(self, kid: str, alg: str, msg: bytes) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11 import exceptions as px

        def once(s: Any) -> bytes:
            key = self._private(s, kid)
            if alg == "ES256":
                return key.sign(hashlib.sha256(msg).digest(), mechanism=Mechanism.ECDSA)
            if alg == "RS256":
                return key.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS)
            if alg == "EdDSA":
                return key.sign(msg, mechanism=Mechanism.EDDSA)
            raise HsmProblem(f"{alg} is not signed in the HSM")

        try:
            return self._call(once)
        except (px.ObjectHandleInvalid, px.KeyHandleInvalid):
            self._handles.pop(kid, None)  # destroyed or re-made by another worker: look it up once more
            return self._call(once)

    def protection(self, kid: str) -> dict[str, bool]:
        """What the token says of the private key: sensitive, extractable, never extractable."""
        from pkcs11 import Attribute

        def read(s: Any) -> dict[str, bool]:
            key = self._private(s, kid)
            return {"sensitive": bool(key[Attribute.SENSITIVE]), "extractable": bool(key[Attribute.EXTRACTABLE]),
                    "never_extractable": bool(key[Attribute.NEVER_EXTRACTABLE]), "always_sensitive": bool(key[Attribute.ALWAYS_SENSITIVE])}

        return self._call(read)

    def destroy(self, kid: str) -> int:
        """Remove both halves of a key from the token; how many objects went."""

        from pkcs11 import Attribute

        def gone(s: Any) -> int:
            found = list(s.get_objects({Attribute.ID: kid.encode()}))
            for obj in found:
                obj.destroy()
            return len(found)

        self._handles.pop(kid, None)
        with self._lock:
            return self._call(gone)

    def kids(self) -> set[str]:
        """Every key id in the token that has a private key (for audits of stray keys)."""
        from pkcs11 import Attribute, ObjectClass

        return self._call(lambda s: {bytes(o[Attribute.ID]).decode(errors="replace")
                                     for o in s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})})
