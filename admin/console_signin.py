"""How the admin console signs an operator in: a backend-for-frontend over NIXA's own code flow.

/admin/console/login sends the browser through the ordinary /authorize as the admin console
client (`nixa-admin-console`, public, PKCE S256, state and nonce, `resource=<issuer>/admin/api`,
scope `openid admin`, acr_values substantial): the one sign-in state machine (idp/login) decides
the methods and the level. /admin/console/callback checks the state it stored for this browser,
redeems the code at NIXA's real token endpoint (in-process, through the whole ASGI app: client
and PKCE checks, audit, metrics; nothing bypassed), checks the ID token (signature, issuer,
audience, nonce) and keeps the tokens server-side, sealed under a key only the console cookie
holds (a dump of the store yields no usable token). Every console request then authenticates
the access token with admin/auth.authenticate, exactly as the admin API does.

The console cookie is HttpOnly, SameSite=Strict and `__Host-` (Secure) when the issuer is https;
its value is 256 random bits, from which both the store key and the sealing key are derived."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from admin.auth import ADMIN_SCOPE, CONSOLE_CLIENT_ID, MINIMUM_LEVEL, admin_resource, console_redirect_uris
from connectors.base import ACR_BY_LEVEL
from idp.login.session import cookie_name

CONSOLE_PATH = "/admin/console"
CONSOLE_COOKIE = "nixa_console"
SIGNIN_TTL = 600  # seconds a sign-in may take between /login and /callback


def _derive(cookie: str, label: str) -> bytes:
    return hashlib.sha256(f"nixa-console\x00{label}\x00{cookie}".encode()).digest()


@dataclass(frozen=True)
class ConsoleSession:
    """What the console holds for one signed-in browser (never sent to it)."""

    key: str  # the store key (a hash of the cookie): binds the CSRF token to this session
    access_token: str
    id_token: str
    expires_at: float


class ConsoleSessions:
    """The typed repository of console sessions (key `console-session:<sha256 of the cookie>`),
    sealed with AES-GCM under a key derived from the cookie value."""

    PREFIX = "console-session:"

    def __init__(self, nixa: Any) -> None:
        self.store = nixa.store

    def open(self, access_token: str, id_token: str, expires_in: int) -> str:
        cookie = secrets.token_urlsafe(32)
        nonce = secrets.token_bytes(12)
        body = json.dumps({"at": access_token, "it": id_token, "exp": time.time() + expires_in}).encode()
        sealed = AESGCM(_derive(cookie, "seal")).encrypt(nonce, body, b"console-session")
        self.store.put(self.PREFIX + _derive(cookie, "key").hex(), {"n": base64.b64encode(nonce).decode(),
                                                                   "s": base64.b64encode(sealed).decode()}, max(1, expires_in))
        return cookie

    def load(self, cookie: str | None) -> ConsoleSession | None:
        if not cookie or len(cookie) > 128:
            return None
        key = _derive(cookie, "key").hex()
        held = self.store.get(self.PREFIX + key)
        if not isinstance(held, dict):
            return None
        try:
            body = AESGCM(_derive(cookie, "seal")).decrypt(base64.b64decode(held["n"]), base64.b64decode(held["s"]), b"console-session")
            data = json.loads(body)
        except (InvalidTag, KeyError, ValueError, TypeError):
            return None
        return ConsoleSession(key, data["at"], data["it"], float(data["exp"]))

    def end(self, cookie: str | None) -> None:
        if cookie and len(cookie) <= 128:
            self.store.delete(self.PREFIX + _derive(cookie, "key").hex())


class ConsoleSignIns:
    """The typed repository of console sign-ins in flight (key `console-signin:<state>`): the
    browser it was started in, the PKCE verifier, the nonce, and the page to return to."""

    PREFIX = "console-signin:"

    def __init__(self, nixa: Any) -> None:
        self.store = nixa.store

    def start(self, browser: str, next_path: str) -> tuple[str, str, str]:
        state, verifier, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        self.store.put(self.PREFIX + state, {"browser": browser, "verifier": verifier, "nonce": nonce, "next": next_path}, SIGNIN_TTL)
        return state, verifier, nonce

    def finish(self, state: str | None, browser: str | None) -> dict[str, str] | None:
        """The sign-in, once: None for an unknown, used, expired or other browser's state."""
        if not state or len(state) > 64 or not browser:
            return None
        data = self.store.take(self.PREFIX + state)
        if not isinstance(data, dict) or data.get("browser") != browser:
            return None
        return data


def console_cookie(nixa: Any) -> str:
    return cookie_name(CONSOLE_COOKIE, nixa.settings.secure_cookies)


def safe_next(path: str | None) -> str:
    """Only console pages are return targets (no open redirect through the callback)."""
    if (not path or not path.startswith(CONSOLE_PATH + "/") or path.startswith(CONSOLE_PATH + "/callback")
            or path.startswith(CONSOLE_PATH + "/login") or "//" in path or "\\" in path):
        return CONSOLE_PATH + "/"
    return path


def authorize_url(nixa: Any, browser: str, next_path: str, *, lang: str | None = None, force: bool = False) -> str:
    """NIXA's own /authorize for the console client."""
    state, verifier, nonce = ConsoleSignIns(nixa).start(browser, safe_next(next_path))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    params = {
        "response_type": "code",
        "client_id": CONSOLE_CLIENT_ID,
        "redirect_uri": console_redirect_uris(nixa.settings)[0],
        "scope": f"openid {ADMIN_SCOPE}",
        "resource": admin_resource(nixa.settings.issuer),  # RFC 8707: the token is for the admin API only
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": ACR_BY_LEVEL[MINIMUM_LEVEL],
    }
    if force:
        params["prompt"] = "login"
    if lang:
        params["ui_locales"] = lang
    return "/authorize?" + urlencode(params)


class SignInFailed(Exception):
    """The callback could not finish the sign-in; `key` names the text shown."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def redeem(app: Any, nixa: Any, code: str, verifier: str) -> dict[str, Any]:
    """The code at NIXA's token endpoint, through the whole application in-process (RFC 7636
    verifier, exact redirect_uri, the client's checks, audit): the same answer a remote console
    would get over the network."""
    import httpx

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url=nixa.settings.issuer, timeout=30) as http:
        r = await http.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                            "redirect_uri": console_redirect_uris(nixa.settings)[0], "client_id": CONSOLE_CLIENT_ID})
    if r.status_code != 200:
        raise SignInFailed("console_signin_failed")
    tokens = r.json()
    if not isinstance(tokens, dict) or not tokens.get("access_token") or not tokens.get("id_token"):
        raise SignInFailed("console_signin_failed")
    return tokens


def check_id_token(nixa: Any, id_token: str, nonce: str) -> dict[str, Any]:
    """OIDC Core §3.1.3.7: our signature, our issuer, this client as audience, alive, the nonce sent."""
    try:
        claims = dict(nixa.keys.verify(id_token).claims)
    except Exception:  # any decoding failure is one answer: not a token of ours
        raise SignInFailed("console_signin_failed") from None
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if (claims.get("iss") != nixa.settings.issuer or CONSOLE_CLIENT_ID not in auds or float(claims.get("exp", 0)) < time.time()
            or not secrets.compare_digest(str(claims.get("nonce", "")), nonce)):
        raise SignInFailed("console_signin_failed")
    return claims


def logout_url(nixa: Any, session: ConsoleSession | None) -> str:
    """RP-Initiated Logout 1.0 at NIXA, back to the console's start page."""
    params = {"client_id": CONSOLE_CLIENT_ID, "post_logout_redirect_uri": f"{nixa.settings.issuer}{CONSOLE_PATH}/"}
    if session is not None:
        params["id_token_hint"] = session.id_token
    return "/logout?" + urlencode(params)
