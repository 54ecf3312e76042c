"""How the account area authenticates the citizen.

The account pages are served by NIXA itself, on the origin of its own SSO session cookie, so
they read that session directly (no tokens, no second session that could outlive a logout).
The session must hold an authentication at substantial or higher that is recent enough.
When it does not, the browser goes through NIXA's own /authorize as the first-party client
`nixa-account` (acr_values substantial, max_age, prompt=login for sensitive actions): the one
sign-in state machine (idp/login) decides which methods may be used and steps the session up;
the account area never authenticates anyone by itself. The callback checks the state it
stored for this browser and returns to the account page, which reads the stepped-up session.

The authorization code sent to the callback is never redeemed: the PKCE verifier is thrown
away when the request is made, so nobody can ever redeem it, and it expires on its own.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.exc import IntegrityError

from connectors.base import LevelOfAssurance
from idp.login.session import SsoSession
from idp.oidc.metadata import InvalidClientMetadata
from idp.store.models import Client

ACCOUNT_CLIENT_ID = "nixa-account"
CALLBACK_PATH = "/account/callback"
REQUIRED_LOA = int(LevelOfAssurance.SUBSTANTIAL)
VIEW_MAX_AGE = 1800  # seconds since the substantial sign-in: reading personal data and the access log
SENSITIVE_MAX_AGE = 300  # removing a linked identity: a sign-in within the last 5 minutes


def callback_url(nixa: Any) -> str:
    return nixa.settings.issuer + CALLBACK_PATH


def client_metadata(nixa: Any) -> dict[str, Any]:
    return {
        "client_id": ACCOUNT_CLIENT_ID,
        "client_name": "Tài khoản NIXA",
        "redirect_uris": [callback_url(nixa)],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",  # public client: PKCE, no secret to keep
        "scope": "openid",
        "nixa_first_party": True,
        "nixa_minimum_acr": LevelOfAssurance(REQUIRED_LOA).acr,
    }


def ensure_client(nixa: Any) -> None:
    """Register `nixa-account` the first time it is needed. An existing row is left as the
    administrator keeps it (a disabled client closes the account area's sign-in)."""
    with nixa.db.session() as s:
        if s.get(Client, ACCOUNT_CLIENT_ID) is not None:
            return
    md = client_metadata(nixa)
    try:
        try:
            nixa.clients.upsert(md)
        except InvalidClientMetadata as err:
            # The metadata rule "https, or http on loopback" protects third-party callbacks. This
            # callback is the issuer's own address, which is configuration: an http issuer on a
            # non-loopback name (a development or test host) is taken as configured. Validate
            # everything else through the ordinary path, then store the issuer's own callback.
            if err.error != "invalid_redirect_uri" or not nixa.settings.issuer.startswith("http://"):
                raise
            nixa.clients.upsert({**md, "redirect_uris": ["https://" + callback_url(nixa)[len("http://"):]]})
            with nixa.db.session() as s:
                row = s.get(Client, ACCOUNT_CLIENT_ID)
                row.metadata_ = {**row.metadata_, "redirect_uris": [callback_url(nixa)]}
            nixa.clients.invalidate(ACCOUNT_CLIENT_ID)
    except IntegrityError:
        pass  # another worker registered it at the same moment


def satisfied(nixa: Any, session: SsoSession | None, max_age: int) -> bool:
    """A substantial (or higher) authentication within `max_age` seconds."""
    return session is not None and session.satisfying(REQUIRED_LOA, max_age, nixa.clock()) is not None


def forget_account_client(nixa: Any, cookie: str | None) -> None:
    """The sign-in flow lists every client it issued a code to as an app of the session (to
    sign it out at logout). The account area keeps no session of its own, so it is no such
    app: take it off the list, or the logout page would ask the person to sign out of it."""
    session = nixa.sessions.load(cookie)
    if cookie and session is not None and ACCOUNT_CLIENT_ID in session.clients:
        nixa.sessions.update(cookie, session, lambda s: s.clients.remove(ACCOUNT_CLIENT_ID) if ACCOUNT_CLIENT_ID in s.clients else None)


class AccountSignIns:
    """The typed repository of account sign-ins in flight (key `account-signin:`): the state
    sent to /authorize, bound to the browser, and where to return."""

    def __init__(self, nixa: Any) -> None:
        self.store = nixa.store
        self.ttl = nixa.settings.pending_request_ttl

    def start(self, browser: str, next_path: str) -> str:
        state = secrets.token_urlsafe(24)
        self.store.put(f"account-signin:{state}", {"browser": browser, "next": next_path}, self.ttl)
        return state

    def finish(self, state: str | None, browser: str | None) -> str | None:
        """Where to return, once: None for an unknown, used or other browser's state."""
        if not state or len(state) > 64 or not browser:
            return None
        data = self.store.take(f"account-signin:{state}")
        if not data or data.get("browser") != browser:
            return None
        return data["next"]


def safe_next(path: str | None) -> str:
    """Only account pages are return targets (no open redirect through the callback)."""
    if not path or not path.startswith("/account") or path.startswith("/account/callback") or "//" in path or "\\" in path:
        return "/account"
    return path


def authorize_url(nixa: Any, browser: str, next_path: str, *, max_age: int, force: bool = False, lang: str | None = None) -> str:
    """NIXA's own /authorize for the account client, returning to `next_path` afterwards."""
    ensure_client(nixa)
    state = AccountSignIns(nixa).start(browser, safe_next(next_path))
    verifier = secrets.token_urlsafe(48)  # dropped at once: the code can never be redeemed
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    params = {
        "response_type": "code",
        "client_id": ACCOUNT_CLIENT_ID,
        "redirect_uri": callback_url(nixa),
        "scope": "openid",
        "state": state,
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": LevelOfAssurance(REQUIRED_LOA).acr,
        "max_age": str(max_age),
    }
    if force:
        params["prompt"] = "login"
    if lang:
        params["ui_locales"] = lang
    return "/authorize?" + urlencode(params)
