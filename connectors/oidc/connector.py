"""Any upstream OpenID provider (a mobile operator's sign-in, a ministry's IdP), brokered with the
authorization code flow: PKCE S256, nonce, state, RFC 9207 `iss` check, full ID token
validation. A redirect-style connector (connectors/base.py `RedirectConnector`).

`login_url` returns the URL and the data the caller keeps server-side until the callback;
`handle_callback` takes the callback's query parameters and that data back. The caller must
take `saved` exactly once (EphemeralStore.take) so a callback can't be replayed against it.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwk

from connectors.base import (
    Assertion,
    ConnectorContext,
    ConnectorError,
    Health,
    InvalidCredentials,
    NotAllowed,
    UpstreamUnavailable,
    VerifiedAttribute,
)
from connectors.oidc.config import RFC8176_AMR, UpstreamOidcConfig
from connectors.oidc.errors import UpstreamResponseRejected
from connectors.oidc.id_token import UnknownSigningKey, validate_id_token
from connectors.oidc.metadata import UpstreamMetadata, json_or_none
from connectors.oidc.msisdn import normalize_msisdn, phone_to_e164
from connectors.resilience import ResilientHttp
from connectors.safe_fetch import MAX_DOCUMENT_BYTES, FetchPolicy

# RFC 6749 §4.1.2.1 error codes the person caused (refused, or can't be signed in silently).
REFUSAL_ERRORS = {"access_denied", "login_required", "interaction_required", "consent_required", "account_selection_required"}
UNAVAILABLE_ERRORS = {"server_error", "temporarily_unavailable"}
# Claims whose OIDC Core §5.1 `*_verified` flag must be true before NIXA treats them as verified.
FLAGGED_CLAIMS = {"phone_number": "phone_number_verified", "email": "email_verified"}


class UpstreamOidcConnector:
    """Sign-in at an upstream OpenID provider; the assertion's subject is the upstream `sub`."""

    config_class = UpstreamOidcConfig
    secret_keys = ("client_secret", "private_key")
    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.id = ctx.connector_id
        self.config = UpstreamOidcConfig.from_mapping(ctx.config)
        self.display_name_vi = self.config.display_name_vi or f"Đăng nhập qua {self.config.issuer}"
        self.display_name_en = self.config.display_name_en or f"Sign in with {self.config.issuer}"
        self.source = f"oidc:{self.id}"
        # Discovery names the URLs called next: they are the upstream's choice, not the operator's,
        # so they go under the fetch policy. One upstream: its breaker is its negative cache.
        self.http = ResilientHttp(timeout=self.config.timeout, retries=self.config.retries, name=self.source,
                                  policy=ctx.fetch_policy or FetchPolicy(), max_bytes=MAX_DOCUMENT_BYTES)
        self.metadata = UpstreamMetadata(self.http, ctx.store, self.id, self.config.issuer, self.config.metadata_ttl)

    # ---- health ----------------------------------------------------------------------------

    def circuit_open(self) -> bool:
        return self.http.circuit_open()

    def health(self) -> Health:
        started = time.perf_counter()
        try:
            self.metadata.discovery(fresh=True)
        except UpstreamUnavailable as exc:
            return Health(False, str(exc), (time.perf_counter() - started) * 1000)
        return Health(True, "discovery ok", (time.perf_counter() - started) * 1000)

    # ---- the authorization request -----------------------------------------------------------

    def login_url(self, state: str, callback: str, *, login_hint: str | None = None) -> tuple[str, Mapping[str, Any]]:
        discovery = self.metadata.discovery()
        verifier = generate_token(64)  # RFC 7636 §4.1: 43..128 characters of unreserved set
        nonce = generate_token(32)
        extra: dict[str, str] = {
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if self.config.acr_values:
            extra["acr_values"] = " ".join(self.config.acr_values)
        hint = self.format_login_hint(login_hint)
        if hint:
            extra["login_hint"] = hint
        if self.config.prompt:
            extra["prompt"] = self.config.prompt
        if self.config.reauthenticate:
            # OIDC Core §3.1.2.1: a fresh authentication, whatever session the upstream holds.
            extra.setdefault("prompt", "login")
            extra["max_age"] = "0"
        url = prepare_grant_uri(
            discovery["authorization_endpoint"],
            self.config.client_id,
            "code",
            redirect_uri=callback,
            scope=" ".join(self.config.all_scopes),
            state=state,
            **extra,
        )
        saved = {
            "issuer": self.config.issuer,
            "state": state,
            "nonce": nonce,
            "code_verifier": verifier,
            "redirect_uri": callback,
            "requested_at": self.ctx.clock(),
            "expected_msisdn": self.expected_msisdn(login_hint),
        }
        return url, saved

    def expected_msisdn(self, login_hint: str | None) -> str | None:
        """The E.164 number the person typed, when the hint is a phone number and must match."""
        template = self.config.login_hint_format or ""
        if not login_hint or not self.config.match_login_hint or not ("{msisdn}" in template or "{e164}" in template):
            return None
        return phone_to_e164(login_hint)

    def format_login_hint(self, login_hint: str | None) -> str | None:
        template = self.config.login_hint_format
        if not login_hint or not template:
            return None
        if "{msisdn}" in template or "{e164}" in template:
            msisdn = normalize_msisdn(login_hint)
            if msisdn is None:
                raise InvalidCredentials("not a Vietnamese mobile number", code="invalid_msisdn")
            return template.format(msisdn=msisdn, e164="+" + msisdn, login_hint=login_hint.strip())
        return template.format(login_hint=login_hint.strip())

    # ---- the callback ------------------------------------------------------------------------

    def handle_callback(self, params: Mapping[str, str], callback: str, saved: Mapping[str, Any]) -> Assertion:
        self.check_saved(saved, callback)
        self.check_state(params, saved)
        discovery = self.metadata.discovery()
        self.check_issuer(params, discovery)
        self.check_error(params)
        code = params.get("code")
        if not code:
            raise UpstreamResponseRejected("callback without code", code="missing_code")
        tokens = self.redeem_code(code, callback, saved, discovery)
        claims = self.validated_id_token(tokens, saved)
        claims = self.add_userinfo(claims, tokens, discovery)
        self.check_acr(claims)
        self.check_fresh(claims, saved)
        self.check_msisdn(claims, saved)
        return self.assertion(claims, id_token=tokens["id_token"])

    def check_fresh(self, claims: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
        # OIDC Core §2: with max_age requested, auth_time is required; it must not predate this
        # request (else the upstream answered from an old session instead of authenticating).
        if not self.config.reauthenticate:
            return
        auth_time = claims.get("auth_time")
        requested_at = saved.get("requested_at")
        if not isinstance(auth_time, (int, float)) or isinstance(auth_time, bool):
            raise NotAllowed("upstream did not say when the person authenticated", code="upstream_session_reused")
        if isinstance(requested_at, (int, float)) and auth_time < requested_at - self.config.leeway:
            raise NotAllowed("upstream answered from an earlier session", code="upstream_session_reused")

    def check_msisdn(self, claims: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
        # The upstream's own verified number (whatever NIXA maps or trusts it as) must be the one
        # the person typed: no answer for another subscriber than the one asked for.
        expected = saved.get("expected_msisdn")
        if not expected:
            return
        verified = claims.get("phone_number_verified") is True
        if not verified or phone_to_e164(claims.get("phone_number")) != expected:
            raise NotAllowed("the operator signed in another number than the one typed", code="msisdn_mismatch")

    def check_saved(self, saved: Mapping[str, Any], callback: str) -> None:
        if not saved or any(not isinstance(saved.get(k), str) for k in ("state", "nonce", "code_verifier", "redirect_uri")):
            raise UpstreamResponseRejected("no pending sign-in for this callback", code="saved_state_invalid")
        if saved.get("issuer") != self.config.issuer:
            raise UpstreamResponseRejected("pending sign-in was for another issuer", code="saved_state_invalid")
        if saved["redirect_uri"] != callback:
            raise UpstreamResponseRejected("callback URL differs from the one sent", code="callback_mismatch")

    def check_state(self, params: Mapping[str, str], saved: Mapping[str, Any]) -> None:
        # RFC 6749 §10.12: the state binds this callback to the browser's own pending request.
        got = params.get("state") or ""
        if not hmac.compare_digest(got.encode(), saved["state"].encode()):
            raise UpstreamResponseRejected("state does not match", code="state_mismatch")

    def check_issuer(self, params: Mapping[str, str], discovery: Mapping[str, Any]) -> None:
        # RFC 9207 §2.4: compare `iss` when present; require it when the upstream advertises it
        # (mix-up defence: the answer must come from the provider the request went to).
        iss = params.get("iss")
        if iss is None:
            if discovery.get("authorization_response_iss_parameter_supported"):
                raise UpstreamResponseRejected("callback lacks iss", code="issuer_mismatch")
            return
        if iss != self.config.issuer:
            raise UpstreamResponseRejected(f"callback iss {iss!r} is not the upstream", code="issuer_mismatch")

    def check_error(self, params: Mapping[str, str]) -> None:
        error = params.get("error")
        if not error:
            return
        description = params.get("error_description", "")[:200]
        if error in REFUSAL_ERRORS:
            raise NotAllowed(f"upstream refused: {error} {description}".strip(), code="upstream_denied")
        if error in UNAVAILABLE_ERRORS:
            raise UpstreamUnavailable(f"upstream {error} {description}".strip())
        raise UpstreamResponseRejected(f"upstream error {error[:50]!r}", code="upstream_error")

    def redeem_code(self, code: str, callback: str, saved: Mapping[str, Any], discovery: Mapping[str, Any]) -> dict[str, Any]:
        token_endpoint = discovery["token_endpoint"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
            "code_verifier": saved["code_verifier"],
        }
        headers = {"Accept": "application/json"}
        self.authenticate_client(form, headers)
        # Never retried: a code is single-use and a second redemption would revoke the grant.
        response = self.http.post(token_endpoint, data=form, headers=headers, retry=False)
        body = json_or_none(response)
        if response.status_code != 200 or body is None:
            error = (body or {}).get("error", f"HTTP {response.status_code}")
            if error == "invalid_grant":
                raise UpstreamResponseRejected("upstream refused the code (used, expired or not ours)", code="upstream_code_rejected")
            if error in ("invalid_client", "unauthorized_client"):
                raise UpstreamUnavailable(f"upstream rejected NIXA's client credentials: {error}")
            raise UpstreamResponseRejected(f"token endpoint: {str(error)[:80]}", code="upstream_error")
        if not isinstance(body.get("id_token"), str) or str(body.get("token_type", "")).lower() not in ("bearer", "dpop"):
            raise UpstreamResponseRejected("token response lacks an ID token", code="id_token_invalid")
        return body

    def authenticate_client(self, form: dict[str, str], headers: dict[str, str]) -> None:
        method = self.config.token_endpoint_auth_method
        client_id, secret = self.config.client_id, self.config.client_secret or ""
        if method == "client_secret_basic":
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
            pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif method == "client_secret_post":
            form.update(client_id=client_id, client_secret=secret)
        else:
            key, alg = self.client_key()
            header = {"alg": alg, "typ": "JWT"}
            if key.kid:
                header["kid"] = key.kid
            # RFC 7523 §3 / OIDC Core §9; audience = the issuer identifier, which the upstream
            # accepts and which can't be confused with another provider's endpoint.
            assertion = private_key_jwt_sign(
                key,
                client_id,
                self.config.issuer,
                alg=alg,
                header=header,
                issued_at=int(self.ctx.clock()),
                expires_in=60,
            )
            form.update(
                client_id=client_id,
                client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                client_assertion=assertion.decode() if isinstance(assertion, bytes) else assertion,
            )

    def client_key(self) -> tuple[Any, str]:
        """The private_key_jwt signing key (a joserfc key) and its algorithm."""
        raw = self.config.private_key
        alg = self.config.private_key_alg
        if isinstance(raw, Mapping):
            key_type = str(raw.get("kty"))
            alg = alg or DEFAULT_ALG_BY_KEY_TYPE.get(key_type, "RS256")
            return jwk.import_key(dict(raw), key_type), alg
        assert alg  # config.check() requires private_key_alg with a PEM key
        return jwk.import_key(str(raw), KEY_TYPE_BY_ALG_PREFIX[alg[:2]]), alg

    def validated_id_token(self, tokens: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
        discovery = self.metadata.discovery()
        advertised = discovery.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in self.config.id_token_algs if alg in advertised]

        def validate(refetch: bool) -> dict[str, Any]:
            return validate_id_token(
                tokens["id_token"],
                keys=self.metadata.keys(refetch=refetch),
                algorithms=algorithms,
                issuer=self.config.issuer,
                client_id=self.config.client_id,
                nonce=saved["nonce"],
                now=lambda: int(self.ctx.clock()),
                leeway=self.config.leeway,
                max_age=self.config.max_id_token_age,
                access_token=tokens.get("access_token"),
            )

        try:
            return validate(refetch=False)
        except UnknownSigningKey:
            pass
        try:
            return validate(refetch=True)  # the upstream may have rotated its keys
        except UnknownSigningKey as exc:
            raise UpstreamResponseRejected(f"ID token signed with unknown key {exc}", code="id_token_invalid") from exc

    def add_userinfo(self, claims: dict[str, Any], tokens: Mapping[str, Any], discovery: Mapping[str, Any]) -> dict[str, Any]:
        mode = self.config.userinfo
        endpoint = discovery.get("userinfo_endpoint")
        missing = any(name not in claims for name in self.config.claims_map)
        if mode == "never" or not endpoint or not tokens.get("access_token") or (mode == "auto" and not missing):
            return claims
        response = self.http.get(endpoint, headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"})
        userinfo = json_or_none(response)
        if response.status_code != 200 or userinfo is None:
            raise UpstreamResponseRejected(f"userinfo: HTTP {response.status_code}", code="userinfo_invalid")
        # OIDC Core §5.3.4: the UserInfo sub must be exactly the ID token's sub.
        if userinfo.get("sub") != claims["sub"]:
            raise UpstreamResponseRejected("userinfo sub differs from the ID token", code="userinfo_invalid")
        # The ID token's signed claims win over userinfo for anything present in both.
        return {**userinfo, **claims}

    def check_acr(self, claims: Mapping[str, Any]) -> None:
        if self.config.acr_values and self.config.enforce_acr and claims.get("acr") not in self.config.acr_values:
            raise NotAllowed(f"upstream acr {claims.get('acr')!r} is not one requested", code="upstream_acr_not_met")

    # ---- the assertion -----------------------------------------------------------------------

    def assertion(self, claims: Mapping[str, Any], *, id_token: str | None = None) -> Assertion:
        now = self.ctx.clock()
        return Assertion(
            connector_id=self.id,
            subject=claims["sub"],
            attributes=self.verified_attributes(claims, now),
            loa=self.config.loa,
            amr=self.amr(claims),
            connector_data={
                "issuer": self.config.issuer,
                "sub": claims["sub"],
                "acr": claims.get("acr"),
                "auth_time": claims.get("auth_time"),
                "sid": claims.get("sid"),
            },
            authenticated_at=self.authenticated_at(claims, now),
            upstream_session={"id_token_hint": id_token} if id_token else {},
        )

    # ---- sign-out ----------------------------------------------------------------------------

    def end_session_url(self, upstream_session: Mapping[str, Any], post_logout_redirect_uri: str, state: str) -> str | None:
        """RP-Initiated Logout 1.0 §2 at the upstream, when its discovery document has an
        end_session_endpoint: the ID token it issued as the hint (§2: an expired one is still
        a good hint), our registered post-logout URI, and a state to find our way back."""
        try:
            endpoint = self.metadata.discovery().get("end_session_endpoint")
        except ConnectorError:
            return None  # the upstream is down: NIXA's own sign-out must not wait for it
        if not isinstance(endpoint, str) or not endpoint:
            return None
        params = {"client_id": self.config.client_id, "post_logout_redirect_uri": post_logout_redirect_uri, "state": state,
                  "ui_locales": "vi"}
        hint = upstream_session.get("id_token_hint")
        if isinstance(hint, str) and hint:
            params["id_token_hint"] = hint
        return add_params_to_uri(endpoint, params)

    @staticmethod
    def authenticated_at(claims: Mapping[str, Any], now: float) -> float:
        # The upstream's auth_time (when the person actually authenticated there, which may be
        # an earlier upstream session), never later than now.
        auth_time = claims.get("auth_time")
        if isinstance(auth_time, (int, float)) and not isinstance(auth_time, bool):
            return min(float(auth_time), now)
        return now

    def verified_attributes(self, claims: Mapping[str, Any], now: float) -> dict[str, VerifiedAttribute]:
        attributes: dict[str, VerifiedAttribute] = {}
        for claim, attribute in self.config.claims_map.items():
            value = claims.get(claim)
            if value is None or claim not in self.config.verified_claims:
                continue  # unverified or untrusted claims never become attributes
            flag = FLAGGED_CLAIMS.get(claim)
            if flag and claims.get(flag) is not True:
                continue
            if claim == "phone_number":
                value = phone_to_e164(value)
                if value is None:
                    continue  # not a phone number NIXA can match on
            attributes[attribute] = VerifiedAttribute(attribute, value, self.source, now)
        return attributes

    def amr(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        upstream = claims.get("amr")
        if self.config.trust_upstream_amr and isinstance(upstream, list):
            registered = tuple(v for v in upstream if v in RFC8176_AMR)
            if registered:
                return registered
        return self.config.amr


KEY_TYPE_BY_ALG_PREFIX = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
DEFAULT_ALG_BY_KEY_TYPE = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}
