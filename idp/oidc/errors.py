"""The error catalogue: every refusal NIXA answers a relying party with, once, under a stable
reason code, with its OAuth error, the description sent, and the cause and fix an integrator
reads in docs/errors.md (generated from this table: `nixa docs generate`).

Code refuses by reason (`refuse("code_expired", ttl=60)`, `AuthorizationError("pkce_required")`,
`BadRequest("param_repeated", name=...)`), never with a message of its own; the reason goes to
the audit event of the refused request (idp/ops.py), so an operator and the per-client
inspector read why, not just `invalid_grant`. Descriptions are ASCII (RFC 6749 §5.2: %x20-21 /
%x23-5B / %x5D-7E): whatever is interpolated is made so too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Endpoint names as the docs group them.
AUTHORIZE, PAR, TOKEN, USERINFO = "authorize", "par", "token", "userinfo"
INTROSPECT, REVOKE, LOGOUT = "introspect", "revoke", "logout"
ACCOUNT = "account"  # the citizen's account page: not an integrator's endpoint, listed for completeness
ENDPOINTS = (AUTHORIZE, PAR, TOKEN, USERINFO, INTROSPECT, REVOKE, LOGOUT, ACCOUNT)
CLIENT_AUTH = (TOKEN, PAR, INTROSPECT, REVOKE)  # every endpoint that authenticates the client
BODY = (PAR, TOKEN, INTROSPECT, REVOKE, USERINFO, AUTHORIZE, LOGOUT)  # every endpoint that parses parameters
PAGE = "page"  # not sent to the client: a page in the person's language, with the reference

_NOT_ASCII = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def ascii_text(text: str) -> str:
    """RFC 6749 §5.2's character set for error_description; anything else becomes `?`."""
    return _NOT_ASCII.sub("?", text)


@dataclass(frozen=True)
class Refusal:
    reason: str  # stable: audit events, the docs and tests name it
    error: str  # the OAuth error code, or PAGE
    endpoints: tuple[str, ...]
    description: str  # what the client reads (str.format fields), or the i18n key of the page
    cause: str
    fix: str
    status: int = 400
    # "authlib": raised by the library inside a grant, matched by error and text; "params": the
    # parameters did not parse (JSON at API endpoints, a page at /authorize and /logout)
    origin: str = "nixa"

    def text(self, **values: Any) -> str:
        return ascii_text(self.description.format(**{k: ascii_text(str(v)) for k, v in values.items()}))


def _r(reason: str, error: str, endpoints: tuple[str, ...] | str, description: str, cause: str, fix: str, status: int = 400,
       origin: str = "nixa") -> Refusal:
    return Refusal(reason, error, (endpoints,) if isinstance(endpoints, str) else endpoints, description, cause, fix, status, origin)


def _param(reason: str, error: str, endpoints: tuple[str, ...] | str, description: str, cause: str, fix: str, status: int = 400) -> Refusal:
    return _r(reason, error, endpoints, description, cause, fix, status, origin="params")


def _lib(reason: str, error: str, endpoints: tuple[str, ...] | str, description: str, cause: str, fix: str, status: int = 400) -> Refusal:
    return _r(reason, error, endpoints, description, cause, fix, status, origin="authlib")


_AUTHZ = (AUTHORIZE, PAR)
_AUTHZ_TOKEN = (AUTHORIZE, PAR, TOKEN)

CATALOGUE: dict[str, Refusal] = {r.reason: r for r in (
    # ---- any endpoint: the parameters themselves (idp/oidc/params.py) ----
    _param("form_content_type", "invalid_request", (PAR, TOKEN, INTROSPECT, REVOKE, AUTHORIZE, LOGOUT), "The request must be sent as {media_type}.",
       "The POST body is not form-encoded (JSON, multipart, no Content-Type).",
       "Send `Content-Type: application/x-www-form-urlencoded` with a form body, as RFC 6749 requires."),
    _param("body_too_large", "invalid_request", BODY, "The request body is too large.",
       "The body is longer than `NIXA_MAX_BODY_BYTES` (64 KiB).", "Send only the protocol's parameters.", 413),
    _param("query_too_long", "invalid_request", (AUTHORIZE, LOGOUT), "The query string is too long.",
       "The query string is over eight times `NIXA_MAX_PARAM_LENGTH`.", "Push a long request with PAR instead.", 414),
    _param("not_utf8", "invalid_request", BODY, "The {source} is not valid UTF-8.",
       "Bytes that are not UTF-8 in the body or query.", "Encode parameters as UTF-8, then percent-encode them."),
    _param("percent_not_utf8", "invalid_request", BODY, "The {source} has percent-encoded bytes that are not valid UTF-8.",
       "A `%XX` sequence that decodes to bytes that are not UTF-8.", "Percent-encode the UTF-8 bytes of each value."),
    _param("too_many_params", "invalid_request", BODY, "The {source} has too many parameters.",
       "More than 100 parameters.", "Send only the protocol's parameters."),
    _param("nul_character", "invalid_request", BODY, "Parameters must not contain NUL characters.",
       "A parameter name or value contains U+0000.", "Remove it; no protocol value contains one."),
    _param("param_name_too_long", "invalid_request", BODY, "A parameter name is too long.",
       "A parameter name over 128 characters.", "Send only the protocol's parameters."),
    _param("param_too_long", "invalid_request", BODY, "The parameter '{name}' is too long (at most {limit} characters).",
       "A value longer than `NIXA_MAX_PARAM_LENGTH` (4096).", "Shorten it; push a long request with PAR."),
    _param("param_repeated", "invalid_request", BODY, "The parameter '{name}' is included more than once.",
       "RFC 6749 §3.1: a parameter other than `resource` sent twice.", "Send each parameter once (scopes go space-separated in one `scope`)."),
    _param("resource_has_space", "invalid_target", BODY, "A {name} value must be an absolute URI (no spaces).",
       "A `resource` value with white space.", "Repeat `resource` once per API, each an absolute URI."),
    _r("basic_malformed", "invalid_client", CLIENT_AUTH, "The Basic credentials are malformed.",
       "The Authorization header's Basic value is not base64 of UTF-8 `id:secret`, or holds NUL or over 1 KiB.",
       "Send `base64(urlencode(client_id) + ':' + urlencode(secret))` (RFC 6749 §2.3.1).", 401),
    _r("account_filter_date", "invalid_request", ACCOUNT, "not a date (YYYY-MM-DD): {value}",
       "The access log's `from`/`to` filter is not a date (shown on the account page).", "Pick the dates in the form."),
    _r("account_filter_page", "invalid_request", ACCOUNT, "page: a positive number",
       "The access log's `page` is not a positive number (shown on the account page).", "Follow the page links."),
    # ---- client authentication (idp/oidc/server.py, grants.py) ----
    _r("client_unknown", "invalid_client", CLIENT_AUTH, "Unknown client_id, or no client authentication in the request.",
       "The client_id is not registered (or the client is disabled), or the request names no client at all.",
       "Check the client_id NIXA printed at import, and that the client was not disabled (`nixa clients list`).", 401),
    _r("client_auth_missing", "invalid_client", CLIENT_AUTH, "No client authentication in the request: this client authenticates with {registered}.",
       "A confidential client sent only its client_id.", "Authenticate the way the client is registered: the message names it.", 401),
    _r("client_auth_method_mismatch", "invalid_client", CLIENT_AUTH, "This client is registered for {registered}, and the request used {presented}.",
       "The request authenticates another way than the client's `token_endpoint_auth_method` (e.g. the secret in the body for a `client_secret_basic` client).",
       "Use the registered method, or re-import the client with the method you use.", 401),
    _r("client_secret_wrong", "invalid_client", CLIENT_AUTH, "The client secret is wrong.",
       "The secret does not match (a secret from another deployment, an old one after `nixa clients rotate-secret`, a stray newline).",
       "Use the secret NIXA printed when the client was imported or its secret rotated.", 401),
    _r("client_assertion_rejected", "invalid_client", CLIENT_AUTH, "The client assertion was not accepted.",
       "A `private_key_jwt` assertion with a wrong `iss`/`sub`/`aud`, an expired one, or a `jti` already used.",
       "`iss` and `sub` = your client_id, `aud` = the issuer or the endpoint URL, a fresh `jti` every time, `exp` in a few minutes."),
    _r("client_assertion_claims", "invalid_client", CLIENT_AUTH, "The client assertion was not accepted: {detail}",
       "Authlib's check of the assertion's claims failed (`iss` and `sub` differ, `aud` is not NIXA, no `jti`, a `jti` used before).",
       "`iss` and `sub` = your client_id, `aud` = the issuer or the endpoint URL, a fresh `jti` every time."),
    _r("client_assertion_invalid", "invalid_client", CLIENT_AUTH, "Invalid client assertion.",
       "The assertion's signature does not verify under the client's registered keys, or its alg is not asymmetric (HS256 is refused).",
       "Sign with the private key of a key in your registered `jwks`/`jwks_uri`, alg ES256, PS256, RS256 or EdDSA, with its `kid`."),
    _r("client_assertion_no_exp", "invalid_client", CLIENT_AUTH, "The client assertion has no valid exp.",
       "The assertion has no numeric `exp`.", "Set `exp` at most `NIXA_CLIENT_ASSERTION_MAX_LIFETIME` (300 s) ahead."),
    _r("client_assertion_no_iat", "invalid_client", CLIENT_AUTH, "The client assertion has no valid iat.",
       "The assertion has no numeric `iat` (RFC 7523 §3 lets a server require it; NIXA does).", "Set `iat` to the time you sign it."),
    _r("client_assertion_future_iat", "invalid_client", CLIENT_AUTH, "The client assertion was issued in the future.",
       "`iat` is more than 60 s ahead of NIXA's clock.", "Synchronise your clock (NTP)."),
    _r("client_assertion_too_long", "invalid_client", CLIENT_AUTH, "The client assertion lives too long (exp at most {limit} s ahead).",
       "`exp` is further ahead than `NIXA_CLIENT_ASSERTION_MAX_LIFETIME` (Authlib signs hour-long assertions by default).",
       "Sign assertions that live a few minutes (Authlib: pass a shorter `expires_in`)."),
    _r("client_not_private_key_jwt", "invalid_client", CLIENT_AUTH, "This client does not authenticate with private_key_jwt.",
       "A client assertion from a client registered for another method.", "Authenticate the registered way, or re-import it with `private_key_jwt` and its keys."),
    _r("client_keys_unavailable", "invalid_client", CLIENT_AUTH, "The client's keys cannot be obtained.",
       "The registered `jwks_uri` did not answer, answered something that is not a JWKS, or points where NIXA does not fetch (audited `fetch.refused`).",
       "Serve your JWKS over https from a public address; or register `jwks` inline."),
    _r("client_id_mismatch", "invalid_client", CLIENT_AUTH, "client_id does not match the authenticated client",
       "The body's `client_id` names another client than the Basic credentials or the assertion.", "Send one client's credentials and id."),
    # ---- the authorization request: to the redirect_uri at /authorize, JSON at /par (idp/login/flow.py) ----
    _r("redirect_uri_missing", "invalid_request", PAR, "redirect_uri is required",
       "A pushed request without `redirect_uri`.", "Send the redirect_uri, exactly as registered."),
    _r("redirect_uri_not_registered", "invalid_request", PAR, "redirect_uri is not registered for this client",
       "The redirect_uri is not one of the client's, character for character (a native client's loopback port excepted).",
       "Send exactly a registered redirect URI, or re-import the client with it."),
    _r("request_object_unsupported", "request_not_supported", _AUTHZ, "Request objects are not supported",
       "A `request` parameter (a signed request object).", "Send the parameters themselves, or push them with PAR."),
    _r("request_uri_unsupported", "request_uri_not_supported", AUTHORIZE, "request_uri is only supported from the PAR endpoint",
       "A `request_uri` that is not one NIXA's `/par` returned.", "Use PAR's `request_uri`, or send the parameters themselves."),
    _r("request_uri_in_par", "invalid_request", PAR, "request_uri is not allowed in a pushed request",
       "A pushed request that itself names a `request_uri`.", "Push the parameters themselves."),
    _r("response_type_unsupported", "unsupported_response_type", _AUTHZ, "Only response_type=code is supported",
       "`response_type` other than `code` (implicit and hybrid flows are refused, RFC 9700 §2.1.2).", "Use the code flow with PKCE."),
    _r("code_flow_not_allowed", "unauthorized_client", _AUTHZ, "This client may not use the authorization code flow",
       "The client is registered without `authorization_code` in `grant_types` (a `client_credentials`-only client).",
       "Re-import the client with `grant_types: [\"authorization_code\"]` and `response_types: [\"code\"]`."),
    _r("response_mode_unsupported", "invalid_request", _AUTHZ, "Only response_mode=query is supported",
       "`response_mode` other than `query` (fragment, form_post, jwt).", "Omit `response_mode`."),
    _r("pkce_required", "invalid_request", _AUTHZ, "PKCE (code_challenge with code_challenge_method=S256) is required",
       "No `code_challenge` (RFC 9700 §2.1.1 requires PKCE of every client, confidential ones included).",
       "Send `code_challenge=BASE64URL(SHA256(verifier))` and `code_challenge_method=S256`, then the verifier at /token."),
    _r("pkce_challenge_missing", "invalid_request", _AUTHZ, "code_challenge is missing",
       "`code_challenge_method` without `code_challenge`.", "Send both."),
    _r("pkce_method_not_s256", "invalid_request", _AUTHZ, "code_challenge_method must be S256 (plain, or no method, is refused)",
       "`plain`, or a challenge without a method (which means `plain`, RFC 7636 §4.3).", "Send `code_challenge_method=S256`."),
    _r("prompt_unknown", "invalid_request", _AUTHZ, "Unknown prompt value",
       "A `prompt` value other than none, login, consent, select_account.", "Send only those."),
    _r("prompt_none_combined", "invalid_request", _AUTHZ, "prompt=none cannot be combined with other values",
       "OIDC Core §3.1.2.1: `none` with another value.", "Send `prompt=none` alone."),
    _r("max_age_invalid", "invalid_request", _AUTHZ, "max_age must be a non-negative integer",
       "`max_age` that is not digits (or over nine of them).", "Send seconds as a non-negative integer."),
    _r("openid_scope_missing", "invalid_scope", _AUTHZ, "The openid scope is required",
       "`scope` without `openid`: NIXA answers OpenID Connect requests only.", "Add `openid` to `scope`."),
    _r("param_value_too_long", "invalid_request", _AUTHZ, "{name} is too long",
       "`state`, `nonce`, `login_hint`, `ui_locales` or `acr_values` over 1024 characters.", "Keep them short (a random `state` and `nonce` of 32 bytes is plenty)."),
    _r("scope_not_allowed", "invalid_scope", _AUTHZ_TOKEN, "Scope(s) not allowed for this client: {scopes}",
       "Only for a client registered with `nixa_refuse_unknown_scopes: true`: scopes that do not exist, that the client is not registered for, "
       "or `national_id` without `nixa_national_id_authorized`. Without the flag they are dropped silently (see claims.md).",
       "Ask only for the client's registered scopes, or register the scope (an administrator authorises `national_id`)."),
    _r("par_required", "invalid_request", AUTHORIZE, "This client must use pushed authorization requests (RFC 9126)",
       "The client is registered with `require_pushed_authorization_requests`.", "POST the parameters to `/par`, then send `client_id` and `request_uri` to `/authorize`."),
    _r("id_token_hint_invalid", "invalid_request", AUTHORIZE, "id_token_hint is not an ID token issued to this client",
       "An `id_token_hint` NIXA did not sign, or signed for another client.", "Send an ID token NIXA issued to you (an expired one is fine), or none."),
    _r("acr_values_unsupported", "invalid_request", AUTHORIZE, "acr_values: none of the requested levels is supported; supported: {supported}",
       "`acr_values` (or the client's `default_acr_values`) names no level NIXA knows; NIXA never falls back to low silently.",
       "Use the URIs of levels.md (`urn:nixa:loa:low`, `urn:nixa:loa:substantial`, `urn:nixa:loa:high`)."),
    _r("login_required", "login_required", AUTHORIZE, "The person must sign in",
       "`prompt=none` and no SSO session satisfies the request (level, `max_age`, `id_token_hint`).", "Send the request again without `prompt=none`."),
    _r("consent_required", "consent_required", AUTHORIZE, "The person must consent",
       "`prompt=none` and the person has not consented to every scope asked.", "Send the request again without `prompt=none`."),
    _r("consent_declined", "access_denied", AUTHORIZE, "The person declined",
       "The person pressed Cancel on the sign-in or consent page.", "Show your own page; let them try again."),
    _r("level_unreachable", "unmet_authentication_requirements", AUTHORIZE, "No sign-in method reaches the requested level of assurance",
       "No method enabled in this deployment reaches the level asked (e.g. high without the certificate connector).",
       "Ask for a level the deployment offers (discovery's `acr_values_supported` lists the levels, not the methods); tell the person."),
    # ---- resource indicators, RFC 8707 (idp/oidc/resources.py) ----
    _r("resource_too_many", "invalid_target", _AUTHZ_TOKEN, "At most {limit} resources may be requested at once.",
       "More than five `resource` values.", "Ask for one API per token where you can."),
    _r("resource_malformed", "invalid_target", _AUTHZ_TOKEN, "{detail}.",
       "A `resource` that is not an absolute URI without fragment (RFC 8707 §2).", "Send the API's registered identifier."),
    _r("resource_unknown", "invalid_target", _AUTHZ_TOKEN, "Unknown resource: {resource}",
       "No resource server is registered under that identifier.", "An administrator registers the API (`nixa resources add`)."),
    _r("resource_not_granted", "invalid_target", TOKEN, "The resource was not granted by the authorization (a token may only narrow it).",
       "At /token, a `resource` the authorization did not include.", "Ask for every API at /authorize; at /token name a subset."),
    _r("resource_scope_unaccepted", "invalid_target", _AUTHZ_TOKEN, "No requested resource accepts the scope {scope}.",
       "An API scope (not one of NIXA's own) that none of the requested resources accepts.", "Ask for the API's scopes with that API's `resource`."),
    # ---- the token endpoint: codes and refresh tokens (idp/oidc/grants.py) ----
    _r("code_reused", "invalid_grant", TOKEN, "This code was already used: a code works once (RFC 6749, 4.1.2), and the tokens it gave are now revoked.",
       "The code was redeemed before (a retried request, a double submit, or someone else holding it): NIXA revoked what it issued.",
       "Redeem each code once; never retry a /token call that may have succeeded. The person signs in again."),
    _r("code_expired", "invalid_grant", TOKEN, "This code expired (codes live {ttl} s): redeem it as soon as the callback arrives, or start the sign-in again.",
       "The code was issued, but not redeemed within its lifetime (`NIXA_CODE_TTL`, or the client's `nixa_code_ttl`).",
       "Redeem the code in the callback handler, at once."),
    _r("code_unknown", "invalid_grant", TOKEN, "This code was never issued by this NIXA: send the `code` from the callback, unchanged.",
       "The code is not one this NIXA issued (truncated, decoded twice, from another deployment or issuer).", "Send the callback's `code` unchanged to the issuer that sent it."),
    _r("code_other_client", "invalid_grant", TOKEN, "This code was issued to another client.",
       "A code redeemed by a client other than the one it was issued to (it is now spent).", "Redeem codes with the client that asked for them."),
    _r("code_without_pkce", "invalid_grant", TOKEN, "The code was issued without PKCE, which this client must use.",
       "A code issued without a challenge (a client since re-registered without `nixa_pkce_optional`).", "Sign in again with PKCE."),
    _r("refresh_reused", "invalid_grant", TOKEN, "The refresh token was already used: the grant is now revoked.",
       "A refresh token that had already been exchanged (refresh tokens rotate): NIXA treats it as stolen and revokes the whole grant.",
       "Keep only the newest refresh token; serialise refreshes. The person signs in again."),
    _r("refresh_unknown", "invalid_grant", TOKEN, "Unknown refresh token.",
       "A refresh token this NIXA never issued (truncated, from another deployment).", "Send the refresh token unchanged."),
    _r("refresh_expired", "invalid_grant", TOKEN, "The refresh token expired.",
       "Older than `NIXA_REFRESH_TOKEN_TTL` (or the client's `nixa_refresh_token_ttl`).", "The person signs in again."),
    _r("refresh_grant_revoked", "invalid_grant", TOKEN, "The grant of this refresh token was revoked.",
       "The person revoked their consent or ended the session, an administrator disabled the client, or a code or refresh token was replayed.",
       "The person signs in again."),
    _r("refresh_grant_ended", "invalid_grant", TOKEN, "The grant reached its maximum lifetime (at most {limit} s from its first token): sign in again.",
       "`NIXA_REFRESH_GRANT_MAX_LIFETIME` (90 days) since the first token, however often it rotated.", "The person signs in again."),
    _r("refresh_person_refused", "invalid_grant", TOKEN, "The person can no longer be signed in through this grant.",
       "At refresh, a source said the person is gone (registry: locked or deceased ID; directory: disabled staff account): the grant is ended.",
       "Sign the person out of your app."),
    _r("client_disabled", "invalid_token", USERINFO, "The client is no longer registered",
       "The token's client was deleted or disabled after it was issued.", "Ask the federation's operators."),
    # ---- raised by Authlib inside the grants and endpoints (matched in server.handle_error_response) ----
    _lib("grant_type_unsupported", "unsupported_grant_type", TOKEN, "grant_type={grant_type} is not supported",
         "A `grant_type` other than authorization_code, refresh_token, client_credentials.", "Use one of those."),
    _lib("grant_type_not_allowed", "unauthorized_client", TOKEN, "The client is not authorized to use 'grant_type={grant_type}'",
         "The client's registered `grant_types` do not include it.", "Re-import the client with that grant type."),
    _lib("code_missing", "invalid_request", TOKEN, "Missing 'code' in request.", "No `code`.", "Send the callback's `code`."),
    _lib("code_redirect_uri_mismatch", "invalid_grant", TOKEN, "Invalid 'redirect_uri' in request.",
         "The `redirect_uri` at /token differs from the one of the authorization request.", "Send the same redirect_uri, character for character."),
    _lib("code_verifier_missing", "invalid_request", TOKEN, "Missing 'code_verifier'",
         "The code was issued with a PKCE challenge and no `code_verifier` came.", "Send the verifier you made the challenge from."),
    _lib("code_verifier_malformed", "invalid_request", TOKEN, "Invalid 'code_verifier'",
         "A verifier that is not 43-128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1).", "Make the verifier from 32 random bytes, base64url."),
    _lib("code_verifier_wrong", "invalid_grant", TOKEN, "Code challenge failed.",
         "BASE64URL(SHA256(code_verifier)) is not the `code_challenge` of the authorization request.",
         "Keep the verifier of this very sign-in (per browser session, not per app)."),
    _lib("code_verifier_without_challenge", "invalid_request", TOKEN,
         "The authorization request had no 'code_challenge', but a 'code_verifier' was provided.",
         "A verifier for a code issued without PKCE (a `nixa_pkce_optional` client; RFC 9700 §4.8).", "Send a challenge at /authorize, or no verifier."),
    _lib("refresh_missing", "invalid_request", TOKEN, "Missing 'refresh_token' in request.", "No `refresh_token`.", "Send it."),
    _lib("refresh_scope_wider", "invalid_scope", TOKEN, "The requested scope is invalid, unknown, or malformed.",
         "A refresh with `scope` naming a scope the grant does not have.", "Ask for a subset of the granted scope, or none."),
    _lib("token_param_missing", "invalid_request", (INTROSPECT, REVOKE), "",
         "No `token` parameter.", "Send `token` (and optionally `token_type_hint`)."),
    _lib("token_type_unsupported", "unsupported_token_type", (INTROSPECT, REVOKE), "",
         "A `token_type_hint` other than access_token or refresh_token.", "Send one of those, or none."),
    # ---- userinfo, RFC 6750 (idp/oidc/endpoints.py) ----
    _r("token_missing", "invalid_request", USERINFO, "No access token",
       "No `Authorization: Bearer` header and no `access_token` in a POST form.", "Send `Authorization: Bearer <access_token>`.", 401),
    _r("bearer_malformed", "invalid_request", USERINFO, "The Authorization header must be 'Bearer <token>'.",
       "Another scheme, or `Bearer` with nothing after it.", "Send `Authorization: Bearer <access_token>`."),
    _r("token_sent_twice", "invalid_request", USERINFO, "The access token was sent more than once",
       "RFC 6750 §2: the token in the header and in the body.", "Send it once, in the header."),
    _r("token_invalid", "invalid_token", (USERINFO,), "The access token is invalid",
       "Not a NIXA access token: another issuer, a bad signature, an ID token (`typ` is not `at+jwt`), or signed by a revoked key.",
       "Send the `access_token` of the token response, not the ID token.", 401),
    _r("token_expired", "invalid_token", (USERINFO,), "The access token expired",
       "Past `exp` (`NIXA_ACCESS_TOKEN_TTL`, 600 s by default).", "Refresh it (`offline_access`) or sign the person in again.", 401),
    _r("token_revoked", "invalid_token", (USERINFO,), "The access token was revoked",
       "Revoked at /revoke, or its grant was (consent revoked, session ended, replay).", "Sign the person in again.", 401),
    _r("token_not_for_userinfo", "invalid_token", USERINFO, "The access token is not meant for UserInfo (its audience is another resource)",
       "A token asked for with `resource` naming an API only (RFC 9068 §4).", "Ask for a token without `resource`, or name `{issuer}/userinfo` as a resource too.", 401),
    _r("token_without_openid", "insufficient_scope", USERINFO, "The access token does not carry the openid scope",
       "A `client_credentials` token, or one narrowed to an API's scopes.", "Use the token of a sign-in with `openid`.", 403),
    # ---- revocation, RFC 7009 (idp/oidc/introspection.py) ----
    _r("revoke_other_client", "unauthorized_client", REVOKE, "The token was not issued to this client.",
       "RFC 7009 §2.1: a client revokes only its own tokens.", "Revoke with the client the token was issued to."),
    _r("server_error", "server_error", (PAR, TOKEN, USERINFO, INTROSPECT, REVOKE), "The server could not answer; try again",
       "A fault inside NIXA (a bug): the browser gets a page, an API caller this JSON; the details are in "
       "NIXA's log under the request id.", "Retry later with backoff; if it lasts, give NIXA's operators the `request_id`.", 500),
    _r("temporarily_unavailable", "temporarily_unavailable", (PAR, TOKEN, USERINFO, INTROSPECT, REVOKE),
       "The service is unavailable; retry later",
       "NIXA's database or session store does not answer (an outage, a restart); the answer carries `Retry-After` and "
       "the browser gets a page saying so.", "Retry after the `Retry-After` seconds, with backoff; nothing was done.", 503),
    # ---- pages: the request cannot go back to the client (idp/login/flow.py, routes.py) ----
    _r("unknown_client", PAGE, AUTHORIZE, "error_unknown_client",
       "The client_id is not registered, or the client is disabled; NIXA cannot redirect to an unproven client.", "Check the client_id; `nixa clients list`."),
    _r("invalid_redirect_uri", PAGE, AUTHORIZE, "error_invalid_redirect_uri",
       "No redirect_uri, or one not registered for the client (exact match): NIXA never redirects to it (RFC 9700 §4.1).",
       "Send exactly a registered redirect URI."),
    _r("invalid_request_uri", PAGE, AUTHORIZE, "error_invalid_request_uri",
       "A PAR `request_uri` that expired (`NIXA_PAR_TTL`, 60 s), was already used, or was pushed by another client.",
       "Push again and send the browser at once; each `request_uri` works once."),
    _r("expired_request", PAGE, (AUTHORIZE, LOGOUT), "error_expired_request",
       "The sign-in (or sign-out) took longer than `NIXA_PENDING_REQUEST_TTL` (30 min), was finished in another tab, or is from another browser.",
       "Start again from your app."),
    _r("request_conflict", PAGE, AUTHORIZE, "error_request_conflict",
       "The same sign-in changed in another tab too many times at once.", "Reload.", 409),
    _r("logout_hint_invalid", PAGE, LOGOUT, "error_logout_hint_invalid",
       "An `id_token_hint` NIXA did not sign (an expired one is fine).", "Send the ID token NIXA gave you, unchanged, or none."),
    _r("logout_client_mismatch", PAGE, LOGOUT, "error_logout_client_mismatch",
       "`client_id` names a client the `id_token_hint` was not issued to.", "Send your own client_id, or none with the hint."),
    _r("logout_redirect_not_registered", PAGE, LOGOUT, "error_logout_redirect_not_registered",
       "A `post_logout_redirect_uri` not registered for the client, or sent with neither `client_id` nor `id_token_hint` to say whose it is.",
       "Register it in `post_logout_redirect_uris`; send `id_token_hint` (or `client_id`) with it."),
)}


def authlib_reason(error: str, description: str) -> str:
    """The catalogue's reason for a refusal Authlib raised itself: by its error and text, else the
    one entry with that error, else `authlib:<error>` (an entry missing here: the test says so)."""
    exact = [r.reason for r in CATALOGUE.values() if r.origin == "authlib" and (r.error, r.description) == (error, description)]
    if exact:
        return exact[0]
    same = [r.reason for r in CATALOGUE.values() if r.origin == "authlib" and r.error == error]
    return same[0] if len(same) == 1 else f"authlib:{error}"


def refusal(reason: str) -> Refusal:
    return CATALOGUE[reason]  # a reason not listed is a programming error, like an unknown event type


def note(reason: str, *, client_id: str | None = None) -> None:
    """The refused request's reason (and client, when known), for its audit event (idp/ops.py)."""
    from idp.ops import current_refusal

    found = current_refusal.get()
    if found is not None:
        found["reason"] = reason
        if client_id:
            found["client_id"] = str(client_id)[:128]


def note_redirected(error: str) -> None:
    """The refusal goes to the client's redirect_uri (a 303, not an error status): still a refusal."""
    from idp.ops import current_refusal

    found = current_refusal.get()
    if found is not None:
        found["error"] = error


def note_page(key: str) -> None:
    """An error page: its reason, unless the code already noted a more precise one."""
    from idp.ops import current_refusal

    found = current_refusal.get()
    if found is not None and "reason" not in found:
        reason = next((r.reason for r in CATALOGUE.values() if r.error == PAGE and r.description == key), None)
        if reason:
            found["reason"] = reason


def note_client(client_id: str | None) -> None:
    from idp.ops import current_refusal

    found = current_refusal.get()
    if found is not None and client_id:
        found.setdefault("client_id", str(client_id)[:128])


def refuse(reason: str, *, status: int | None = None, **values: Any) -> Exception:
    """An Authlib OAuth2Error for `reason`, to raise where Authlib expects one (grants, client
    authentication, endpoints); Authlib answers it, and the server notes the reason."""
    from authlib.oauth2.rfc6749 import (
        InvalidClientError,
        InvalidGrantError,
        InvalidRequestError,
        InvalidScopeError,
        OAuth2Error,
        UnauthorizedClientError,
    )

    from idp.oidc.resources import InvalidTargetError

    entry = refusal(reason)
    kinds = {"invalid_client": InvalidClientError, "invalid_grant": InvalidGrantError, "invalid_request": InvalidRequestError,
             "invalid_scope": InvalidScopeError, "unauthorized_client": UnauthorizedClientError, "invalid_target": InvalidTargetError}
    kind = kinds.get(entry.error, OAuth2Error)
    error = kind(description=entry.text(**values))
    if kind is OAuth2Error:
        error.error = entry.error
    if status is not None:
        error.status_code = status
    error.nixa_reason = reason  # type: ignore[attr-defined]
    error.nixa_values = values  # type: ignore[attr-defined]
    note(reason)
    return error
