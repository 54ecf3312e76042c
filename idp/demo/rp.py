"""Demo relying parties (agency portals) that sign in through NIXA with Authlib's Starlette client,
exactly as an agency app would: discovery, code + PKCE, ID token validation, userinfo, step-up
with `acr_values`, RP-initiated logout, and OpenID Connect Back-Channel Logout 1.0 (a logout
token from NIXA ends the portal's own session for that `sid`).

Two portals in `make demo` (public services, e-tax), separate clients on separate ports: signing
in on one and opening the other signs the citizen in without a prompt (SSO); signing out on
either signs them out of both."""

from __future__ import annotations

import html
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

LEVELS = [
    ("urn:nixa:loa:low", "Thấp · Low"),
    ("urn:nixa:loa:substantial", "Đáng kể · Substantial"),
    ("urn:nixa:loa:high", "Cao · High"),
]
LEVEL_NAMES = dict(LEVELS)


@dataclass(frozen=True)
class Portal:
    """What an agency portal looks like and holds (synthetic, for the demo)."""

    name_vi: str
    name_en: str
    color: str
    cookie: str
    holdings_title_vi: str
    holdings_title_en: str
    holdings: tuple[tuple[str, str], ...]  # (Vietnamese, English)
    # Keeps access while the citizen is away (offline_access: a refresh token, held server-side),
    # to bring their records up to date from NIXA without a new sign-in.
    offline: bool = False


PUBLIC_SERVICES = Portal(
    "Cổng Dịch vụ công (demo)", "Public-service portal (demo)", "#0b3d91", "demo_portal",
    "Hồ sơ của bạn", "Your applications",
    (("Đăng ký thường trú — đang xử lý", "Permanent residence registration — in progress"),
     ("Cấp đổi giấy phép lái xe — đã trả kết quả", "Driving licence renewal — done"),
     ("Trợ cấp thai sản — chờ bổ sung giấy tờ", "Maternity allowance — documents requested")),
)
E_TAX = Portal(
    "Thuế điện tử (demo)", "e-Tax portal (demo)", "#00695c", "demo_tax",
    "Nghĩa vụ thuế", "Tax obligations",
    (("Quyết toán thuế TNCN năm 2025 — hạn 30/04/2026", "2025 personal income tax return — due 30/04/2026"),
     ("Lệ phí trước bạ xe máy — đã nộp", "Motorbike registration fee — paid"),
     ("Số dư nghĩa vụ: 0 đ", "Balance due: 0 VND")),
    offline=True,
)

STYLE = """body{{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:0 auto;padding:0 1rem 2rem}}
header{{background:{color};color:#fff;padding:.75rem 1rem;margin:0 -1rem 1rem}} a.button,button{{display:inline-block;
background:#b3001b;color:#fff;padding:.5rem 1rem;border-radius:4px;text-decoration:none;border:0;font-size:1rem;cursor:pointer}}
button.secondary{{background:#fff;color:{color};border:1px solid {color}}} pre{{background:#f4f4f4;padding:1rem;overflow:auto}}
label{{font-weight:600}} select{{font-size:1rem}} .badge{{background:#eef;border-radius:3px;padding:0 .4rem}}
ul.holdings li{{margin:.25rem 0}} footer{{margin-top:2rem;color:#555;font-size:.9rem}}"""


def _page(portal: Portal, body: str) -> str:
    return (f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{html.escape(portal.name_vi)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE.format(color=portal.color)}</style>'
            f'</head><body><header><strong>{html.escape(portal.name_vi)}</strong> · '
            f'<span lang="en">{html.escape(portal.name_en)}</span></header><main id="main">{body}</main>'
            '<footer>Dữ liệu minh hoạ, không phải dữ liệu thật · <span lang="en">Synthetic demo data</span></footer>'
            '</body></html>')


class EndedSessions:
    """The portal's record of NIXA sessions ended by back-channel logout (by `sid`)."""

    def __init__(self) -> None:
        self._ended: dict[str, float] = {}
        self._seen_jti: dict[str, float] = {}

    def end(self, sid: str, jti: str) -> bool:
        now = time.time()
        for store in (self._ended, self._seen_jti):
            for key in [k for k, at in store.items() if at < now - 86400]:
                del store[key]
        if jti in self._seen_jti:
            return False  # a replayed logout token
        self._seen_jti[jti] = now
        self._ended[sid] = now
        return True

    def is_ended(self, sid: str | None) -> bool:
        return bool(sid) and sid in self._ended


def verify_logout_token(token: str, issuer: str, client_id: str, keys: KeySet) -> dict[str, Any]:
    """Back-Channel Logout 1.0 §2.6: signature, typ, iss, aud, iat, events, sid/sub, no nonce."""
    decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256", "EdDSA", "PS256"])
    claims = decoded.claims
    aud = claims.get("aud")
    if decoded.header.get("typ") != "logout+jwt":
        raise ValueError("not a logout token (typ)")
    if claims.get("iss") != issuer or client_id not in (aud if isinstance(aud, list) else [aud]):
        raise ValueError("wrong issuer or audience")
    if not isinstance(claims.get("iat"), int) or abs(time.time() - claims["iat"]) > 300:
        raise ValueError("iat too far from now")
    if not isinstance(claims.get("events"), dict) or BACKCHANNEL_EVENT not in claims["events"]:
        raise ValueError("no back-channel logout event")
    if "nonce" in claims or not (claims.get("sid") or claims.get("sub")) or not claims.get("jti"):
        raise ValueError("nonce present, or neither sid nor sub, or no jti")
    return claims


def create_rp(issuer: str, client_id: str, client_secret: str, base_url: str, portal: Portal = PUBLIC_SERVICES) -> Starlette:
    oauth = OAuth()
    oauth.register(
        "nixa",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email phone address" + (" offline_access" if portal.offline else ""),
                       "code_challenge_method": "S256"},
    )
    ended = EndedSessions()
    refresh_tokens: dict[str, str] = {}  # the portal's session key -> its refresh token (never in the cookie)

    def current_user(request: Request) -> dict | None:
        user = request.session.get("user")
        if user and ended.is_ended(user["id_token_claims"].get("sid")):
            request.session.pop("user", None)  # NIXA told us this session was signed out
            return None
        return user

    async def home(request: Request) -> HTMLResponse:
        user = current_user(request)
        if user:
            claims, info = user["id_token_claims"], user["userinfo"]
            acr = claims.get("acr", "")
            rank = [v for v, _ in LEVELS]
            higher = [(v, label) for v, label in LEVELS if acr not in rank or rank.index(v) > rank.index(acr)]
            items = "".join(f"<li>{html.escape(vi)} <small lang='en'>· {html.escape(en)}</small></li>" for vi, en in portal.holdings)
            step_up = ""
            if higher:
                options = "".join(f'<option value="{v}">{label}</option>' for v, label in higher)
                step_up = ('<form method="get" action="/login"><p><label for="acr">Đăng nhập ở mức cao hơn · '
                           f'<span lang="en">Sign in at a higher level</span></label> <select id="acr" name="acr">{options}</select> '
                           '<button type="submit" class="secondary">Nâng mức · <span lang="en">Step up</span></button></p></form>')
            body = (
                f"<h1>Xin chào, {html.escape(str(info.get('name') or claims.get('name') or ''))}</h1>"
                "<p>Bạn đã đăng nhập qua NIXA · <span lang='en'>You are signed in through NIXA.</span></p>"
                "<p>Mức độ đảm bảo · <span lang='en'>Level</span>: "
                f"<span class='badge'>{html.escape(LEVEL_NAMES.get(acr, acr))}</span></p>"
                f"<h2>{html.escape(portal.holdings_title_vi)} · <span lang='en'>{html.escape(portal.holdings_title_en)}</span></h2>"
                f"<ul class='holdings'>{items}</ul>{step_up}"
                + ('<form method="post" action="/refresh"><button type="submit" class="secondary">Cập nhật thông tin từ NIXA · '
                   '<span lang="en">Update my details from NIXA</span></button></form>' if user.get("key") in refresh_tokens else "")
                +
                '<form method="post" action="/logout"><button type="submit">Đăng xuất · <span lang="en">Sign out</span></button></form>'
                '<p><a href="/dev">Xem token (dành cho nhà phát triển) · '
                '<span lang="en">Token view for developers</span></a></p>'
            )
        else:
            options = "".join(f'<option value="{v}">{label}</option>' for v, label in LEVELS)
            body = (
                f"<h1>{html.escape(portal.name_vi)}</h1><p>Đăng nhập bằng tài khoản định danh quốc gia NIXA.<br>"
                "<span lang='en'>Sign in with your NIXA national identity.</span></p>"
                '<form method="get" action="/login"><p><label for="acr">Mức độ đảm bảo · '
                '<span lang="en">Level of assurance</span></label> '
                f'<select id="acr" name="acr">{options}</select></p>'
                '<p><button type="submit">Đăng nhập bằng NIXA · <span lang="en">Sign in with NIXA</span></button></p></form>'
            )
        return HTMLResponse(_page(portal, body))

    async def dev(request: Request) -> Response:
        user = current_user(request)
        if not user:
            return RedirectResponse("/", status_code=303)
        body = (
            "<h1>Token (nhà phát triển) · <span lang='en'>Tokens (developers)</span></h1>"
            "<h2>ID token đã xác minh · <span lang='en'>Verified ID-token claims</span></h2>"
            f"<pre>{html.escape(json.dumps(user['id_token_claims'], indent=2, ensure_ascii=False))}</pre>"
            "<h2>UserInfo</h2>"
            f"<pre>{html.escape(json.dumps(user['userinfo'], indent=2, ensure_ascii=False))}</pre><p><a href='/'>←</a></p>"
        )
        return HTMLResponse(_page(portal, body))

    async def login(request: Request) -> Any:
        acr = request.query_params.get("acr") or LEVELS[0][0]
        nonce = secrets.token_urlsafe(16)
        request.session["nonce"] = nonce
        return await oauth.nixa.authorize_redirect(request, f"{base_url}/callback", nonce=nonce, acr_values=acr, ui_locales="vi")

    async def callback(request: Request) -> Any:
        if "error" in request.query_params:
            msg = html.escape(request.query_params.get("error_description") or request.query_params["error"])
            return HTMLResponse(_page(portal, "<h1>Không đăng nhập được · <span lang='en'>Sign-in failed</span></h1>"
                                              f"<p role='alert'>{msg}</p><p><a href='/'>←</a></p>"), status_code=400)
        token = await oauth.nixa.authorize_access_token(request)  # validates the ID token (signature, iss, aud, nonce)
        userinfo = await oauth.nixa.userinfo(token=token)
        key = secrets.token_urlsafe(16)
        if token.get("refresh_token"):
            refresh_tokens[key] = token["refresh_token"]
        request.session["user"] = {"id_token_claims": dict(token["userinfo"]), "userinfo": dict(userinfo), "id_token": token["id_token"],
                                   "key": key}
        return RedirectResponse("/", status_code=303)

    async def refresh(request: Request) -> Any:
        """Bring the citizen's details up to date with the refresh token (RFC 6749 §6). NIXA
        refuses it once the citizen revoked this portal's consent: the portal then signs them out."""
        user = current_user(request)
        if not user or user.get("key") not in refresh_tokens:
            return RedirectResponse("/", status_code=303)
        try:
            token = await oauth.nixa.fetch_access_token(grant_type="refresh_token", refresh_token=refresh_tokens[user["key"]])
            user["userinfo"] = dict(await oauth.nixa.userinfo(token=token))
        except OAuthError as exc:
            refresh_tokens.pop(user["key"], None)
            request.session.pop("user", None)
            msg = html.escape(exc.description or exc.error or "")
            return HTMLResponse(_page(portal, "<h1>NIXA không còn cho phép cổng này truy cập · "
                                              "<span lang='en'>NIXA no longer allows this portal access</span></h1>"
                                              f"<p role='alert' id='refresh-refused'>{msg}</p>"
                                              "<p>Bạn đã được đăng xuất khỏi cổng này. · "
                                              "<span lang='en'>You are signed out of this portal.</span></p><p><a href='/'>←</a></p>"),
                                status_code=403)
        refresh_tokens[user["key"]] = token.get("refresh_token") or refresh_tokens[user["key"]]  # rotated
        request.session["user"] = user
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Any:
        user = request.session.pop("user", None)
        if user:
            refresh_tokens.pop(user.get("key"), None)
        metadata = await oauth.nixa.load_server_metadata()
        if not user:
            return RedirectResponse("/", status_code=303)
        state = secrets.token_urlsafe(8)
        query = urlencode({"id_token_hint": user["id_token"], "post_logout_redirect_uri": f"{base_url}/", "state": state})
        return RedirectResponse(f"{metadata['end_session_endpoint']}?{query}", status_code=303)

    async def backchannel_logout(request: Request) -> Response:
        # Back-Channel Logout 1.0 §2.5: a form POST with logout_token; 200 when done, 400 if refused.
        form = await request.form()
        token = str(form.get("logout_token") or "")
        try:
            metadata = await oauth.nixa.load_server_metadata()
            async with httpx.AsyncClient(timeout=5) as http:
                keys = KeySet.import_key_set((await http.get(metadata["jwks_uri"])).json())
            claims = verify_logout_token(token, issuer, client_id, keys)
        except (JoseError, ValueError, KeyError, httpx.HTTPError) as exc:
            return PlainTextResponse(f"invalid logout token: {exc}", status_code=400, headers={"Cache-Control": "no-store"})
        ended.end(str(claims.get("sid") or claims["sub"]), str(claims["jti"]))
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    app = Starlette(routes=[Route("/", home), Route("/dev", dev), Route("/login", login), Route("/callback", callback),
                            Route("/logout", logout, methods=["POST"]), Route("/refresh", refresh, methods=["POST"]),
                            Route("/backchannel-logout", backchannel_logout, methods=["POST"])])
    app.add_middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32), session_cookie=portal.cookie, same_site="lax",
                       https_only=base_url.startswith("https://"))
    app.state.ended_sessions = ended
    return app
