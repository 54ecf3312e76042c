"""A small agency app that signs citizens in with NIXA, built on Authlib's Flask client.

What an agency app has to do, and nothing else:
- sign in: authorization code + PKCE (S256), `state` and `nonce` (Authlib makes and checks
  them), the ID token validated by Authlib (signature from the JWKS, `iss`, `aud`, `exp`,
  `nonce`), and the authorization response's `iss` checked (RFC 9207);
- a level step-up: `acr_values` asks for a level, and the app checks the ID token's `acr`
  reaches it (NIXA never gives less, but the app is the one that must not accept less);
- UserInfo with the access token, whose `sub` must be the ID token's;
- RP-initiated logout (`end_session_endpoint` with `id_token_hint`, a registered
  `post_logout_redirect_uri` and `state`);
- back-channel logout: NIXA POSTs a logout token; the app verifies it (OpenID Connect
  Back-Channel Logout 1.0 §2.6) and ends its own session for that `sid`.

Configuration (environment): NIXA_ISSUER, CLIENT_ID, CLIENT_SECRET, APP_URL (this app's own
address, which decides the port it listens on). Over https, trust a private CA with
REQUESTS_CA_BUNDLE (Authlib's Flask client uses requests).

Run: see README.md beside this file.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, Response, redirect, request, session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

ISSUER = os.environ.get("NIXA_ISSUER", "http://127.0.0.1:8000").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "example-authlib")
CLIENT_SECRET = os.environ.get("CLIENT_SECRET", "")
APP_URL = os.environ.get("APP_URL", "http://127.0.0.1:8011").rstrip("/")

# NIXA's levels of assurance, lowest first (discovery lists them as acr_values_supported).
LEVELS = ["urn:nixa:loa:low", "urn:nixa:loa:substantial", "urn:nixa:loa:high"]
LEVEL_NAMES = {LEVELS[0]: "Thấp · Low", LEVELS[1]: "Đáng kể · Substantial", LEVELS[2]: "Cao · High"}
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
SIGNING_ALGS = ["ES256", "RS256", "EdDSA", "PS256"]

app = Flask(__name__)
app.secret_key = os.environ.get("APP_SESSION_SECRET") or secrets.token_urlsafe(32)
app.config.update(SESSION_COOKIE_NAME="example_authlib", SESSION_COOKIE_SAMESITE="Lax",
                  SESSION_COOKIE_SECURE=APP_URL.startswith("https://"))

oauth = OAuth(app)
oauth.register(
    "nixa",
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    client_kwargs={"scope": "openid profile email phone address", "code_challenge_method": "S256"},
)

# Signed-in users, server-side: the cookie holds only a random key, never a token.
USERS: dict[str, dict[str, Any]] = {}
ENDED_SIDS: dict[str, float] = {}  # NIXA sessions ended by back-channel logout
SEEN_LOGOUT_JTI: dict[str, float] = {}
LOCK = threading.Lock()


def page(title: str, body: str, status: int = 200) -> Response:
    return Response(
        f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
        f'<header><strong>Ứng dụng mẫu (Authlib)</strong> · <span lang="en">Sample app (Authlib)</span></header>'
        f'<main id="main">{body}</main></body></html>', status=status, mimetype="text/html")


def current_user() -> dict[str, Any] | None:
    key = session.get("user")
    with LOCK:
        user = USERS.get(key) if key else None
        if user and user["claims"].get("sid") in ENDED_SIDS:
            USERS.pop(key, None)  # NIXA told us this session was signed out
            user = None
    if user is None:
        session.pop("user", None)
    return user


def error_page(error: str, description: str, status: int = 400) -> Response:
    return page("Lỗi · Error", "<h1>Không đăng nhập được · <span lang='en'>Sign-in failed</span></h1>"
                f"<p role='alert' id='error'><code>{html.escape(error)}</code>: {html.escape(description)}</p>"
                "<p><a href='/'>Quay lại · <span lang='en'>Back</span></a></p>", status)


def level_form(levels: list[str], label: str, button: str) -> str:
    options = "".join(f'<option value="{v}">{html.escape(LEVEL_NAMES[v])}</option>' for v in levels)
    return (f'<form method="get" action="/login"><p><label for="acr">{label}</label> '
            f'<select id="acr" name="acr">{options}</select> <button type="submit">{button}</button></p></form>')


@app.get("/")
def home() -> Response:
    user = current_user()
    note = ""
    if request.args.get("state") and request.args.get("state") == session.pop("logout_state", None):
        note = "<p role='status' id='signed-out'>Bạn đã đăng xuất · <span lang='en'>You are signed out.</span></p>"
    if not user:
        return page("Ứng dụng mẫu", note + "<h1>Đăng nhập bằng NIXA · <span lang='en'>Sign in with NIXA</span></h1>"
                    + level_form(LEVELS, "Mức độ đảm bảo · <span lang='en'>Level of assurance</span>",
                                 "Đăng nhập · <span lang='en'>Sign in</span>"))
    claims = user["claims"]
    higher = LEVELS[LEVELS.index(claims["acr"]) + 1:]
    step_up = level_form(higher, "Nâng mức · <span lang='en'>Step up to</span>", "Nâng mức · <span lang='en'>Step up</span>") if higher else ""
    return page("Ứng dụng mẫu", (
        f"<h1>Xin chào · <span lang='en'>Hello</span>, {html.escape(str(claims.get('name') or claims['sub']))}</h1>"
        f"<p>Mức · <span lang='en'>Level</span>: <span id='acr'>{html.escape(claims['acr'])}</span></p>"
        "<h2>ID token (đã xác minh · <span lang='en'>verified</span>)</h2>"
        f"<pre id='id-token-claims'>{html.escape(json.dumps(claims, indent=2, ensure_ascii=False))}</pre>"
        f"{step_up}<p><a href='/userinfo'>UserInfo</a></p>"
        '<form method="post" action="/logout"><button type="submit">Đăng xuất · <span lang="en">Sign out</span></button></form>'))


@app.get("/login")
def login() -> Response:
    acr = request.args.get("acr") or LEVELS[0]
    if acr not in LEVELS:
        acr = LEVELS[0]
    session["wanted_acr"] = acr
    # Authlib adds state, nonce and the PKCE challenge, and keeps them in the session.
    return oauth.nixa.authorize_redirect(f"{APP_URL}/callback", acr_values=acr)


@app.get("/callback")
def callback() -> Response:
    if "error" in request.args:  # an OAuth error NIXA sent back (after checking this client and redirect_uri)
        return error_page(request.args["error"], request.args.get("error_description", ""))
    metadata = oauth.nixa.load_server_metadata()
    if request.args.get("iss") != metadata["issuer"]:  # RFC 9207: the response comes from the provider we asked
        return error_page("invalid_response", "the authorization response's iss is not NIXA's issuer")
    try:
        token = oauth.nixa.authorize_access_token()  # state, code + PKCE, and the ID token (signature, iss, aud, exp, nonce)
    except OAuthError as exc:
        return error_page(exc.error or "error", exc.description or "")
    claims = dict(token["userinfo"])
    wanted = session.pop("wanted_acr", LEVELS[0])
    if claims.get("acr") not in LEVELS or LEVELS.index(claims["acr"]) < LEVELS.index(wanted):
        return error_page("insufficient_acr", f"asked for {wanted}, the ID token says {claims.get('acr')}", 403)
    key = secrets.token_urlsafe(16)
    with LOCK:
        USERS[key] = {"claims": claims, "token": dict(token)}
    old = session.get("user")
    session.clear()
    session["user"] = key
    with LOCK:
        USERS.pop(old, None)
    return redirect("/", 303)


@app.get("/userinfo")
def userinfo() -> Response:
    user = current_user()
    if not user:
        return redirect("/", 303)
    try:
        info = oauth.nixa.userinfo(token=user["token"])
    except (OAuthError, requests.HTTPError) as exc:
        return error_page("userinfo_failed", str(exc), 502)
    if info.get("sub") != user["claims"]["sub"]:  # OIDC Core §5.3.2: UserInfo's sub must be the ID token's
        return error_page("invalid_userinfo", "UserInfo's sub is not the ID token's", 502)
    return page("UserInfo", f"<h1>UserInfo</h1><pre id='userinfo'>{html.escape(json.dumps(dict(info), indent=2, ensure_ascii=False))}"
                "</pre><p><a href='/'>←</a></p>")


@app.post("/logout")
def logout() -> Response:
    key = session.pop("user", None)
    with LOCK:
        user = USERS.pop(key, None) if key else None
    if not user:
        return redirect("/", 303)
    state = secrets.token_urlsafe(12)
    session["logout_state"] = state
    end_session = oauth.nixa.load_server_metadata()["end_session_endpoint"]
    query = urlencode({"id_token_hint": user["token"]["id_token"], "post_logout_redirect_uri": f"{APP_URL}/", "state": state})
    return redirect(f"{end_session}?{query}", 303)


class Jwks:
    """NIXA's signing keys, re-fetched when a token names a `kid` we do not hold (key rotation)."""

    def __init__(self) -> None:
        self.keys: KeySet | None = None
        self.kids: set[str] = set()
        self.fetched_at = 0.0

    def for_kid(self, kid: str | None) -> KeySet:
        # At most one re-fetch a minute: a forged token with a made-up kid cannot make us hammer NIXA.
        if self.keys is None or (kid not in self.kids and time.monotonic() - self.fetched_at > 60):
            self.fetched_at = time.monotonic()
            data = requests.get(oauth.nixa.load_server_metadata()["jwks_uri"], timeout=5).json()
            self.keys = KeySet.import_key_set(data)
            self.kids = {k.get("kid") for k in data["keys"]}
        return self.keys


JWKS = Jwks()


def verify_logout_token(token: str) -> dict[str, Any]:
    """Back-Channel Logout 1.0 §2.6: signature, typ, iss, aud, iat, jti, events, sid or sub, no nonce."""
    kid = extract_compact(token.encode()).headers().get("kid")
    decoded = jwt.decode(token, JWKS.for_kid(kid), algorithms=SIGNING_ALGS)
    claims = decoded.claims
    aud = claims.get("aud")
    if decoded.header.get("typ") != "logout+jwt":
        raise ValueError("not a logout token (typ)")
    if claims.get("iss") != ISSUER or CLIENT_ID not in (aud if isinstance(aud, list) else [aud]):
        raise ValueError("wrong issuer or audience")
    if not isinstance(claims.get("iat"), int) or abs(time.time() - claims["iat"]) > 300:
        raise ValueError("iat too far from now")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        raise ValueError("expired")
    if not isinstance(claims.get("events"), dict) or BACKCHANNEL_EVENT not in claims["events"]:
        raise ValueError("no back-channel logout event")
    if "nonce" in claims or not claims.get("sid") or not claims.get("jti"):
        raise ValueError("a nonce, or no sid (this app registers backchannel_logout_session_required), or no jti")
    return claims


@app.post("/backchannel-logout")
def backchannel_logout() -> Response:
    # Back-Channel Logout 1.0 §2.5: a form POST with logout_token; 200 once done, 400 when refused.
    try:
        claims = verify_logout_token(request.form.get("logout_token", ""))
    except (JoseError, ValueError, KeyError, requests.RequestException) as exc:
        return Response(f"invalid logout token: {exc}", status=400, mimetype="text/plain", headers={"Cache-Control": "no-store"})
    now = time.time()
    with LOCK:
        if claims["jti"] in SEEN_LOGOUT_JTI:
            return Response("logout token replayed", status=400, mimetype="text/plain", headers={"Cache-Control": "no-store"})
        for store in (SEEN_LOGOUT_JTI, ENDED_SIDS):  # forget after a day: NIXA's sessions are shorter
            for old in [k for k, at in store.items() if at < now - 86400]:
                del store[old]
        SEEN_LOGOUT_JTI[claims["jti"]] = now
        ENDED_SIDS[claims["sid"]] = now
        for key in [k for k, u in USERS.items() if u["claims"].get("sid") == claims["sid"]]:
            del USERS[key]
    return Response(status=200, headers={"Cache-Control": "no-store"})


if __name__ == "__main__":
    if not CLIENT_SECRET:
        raise SystemExit("sample app: set CLIENT_SECRET (`nixa clients import client.json` prints it once)")
    url = urlsplit(APP_URL)
    print(f"sample app (Authlib + Flask) on {APP_URL}, NIXA at {ISSUER}, client {CLIENT_ID}", flush=True)
    app.run(host=url.hostname, port=url.port or 80, threaded=True)
