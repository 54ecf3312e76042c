"""A small demo relying party (an agency portal) that signs in through NIXA with Authlib's
Starlette client, exactly as an agency app would: discovery, code + PKCE, ID token
validation, userinfo, RP-initiated logout."""

from __future__ import annotations

import html
import json
import secrets
from typing import Any

from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Cổng dịch vụ công (demo)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}
header{{background:#0b3d91;color:#fff;padding:.75rem 1rem}} a.button,button{{display:inline-block;background:#b3001b;color:#fff;
padding:.5rem 1rem;border-radius:4px;text-decoration:none;border:0;font-size:1rem}} pre{{background:#f4f4f4;padding:1rem;overflow:auto}}
label{{font-weight:600}} select{{font-size:1rem}}</style></head><body>
<header><strong>Cổng dịch vụ công (demo)</strong> · Public-service portal (demo)</header><main>{body}</main></body></html>"""

LEVELS = [
    ("urn:nixa:loa:low", "Thấp · Low"),
    ("urn:nixa:loa:substantial", "Đáng kể · Substantial"),
    ("urn:nixa:loa:high", "Cao · High"),
]


def create_rp(issuer: str, client_id: str, client_secret: str, base_url: str) -> Starlette:
    oauth = OAuth()
    oauth.register(
        "nixa",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email phone address", "code_challenge_method": "S256"},
    )

    async def home(request: Request) -> HTMLResponse:
        user = request.session.get("user")
        if user:
            body = (
                f"<h1>Xin chào, {html.escape(str(user['userinfo'].get('name', '')))}</h1><p>Hello — you are signed in through NIXA.</p>"
                "<h2>Thông tin đã xác minh trong ID token · Verified ID-token claims</h2>"
                f"<pre>{html.escape(json.dumps(user['id_token_claims'], indent=2, ensure_ascii=False))}</pre>"
                "<h2>UserInfo</h2>"
                f"<pre>{html.escape(json.dumps(user['userinfo'], indent=2, ensure_ascii=False))}</pre>"
                '<form method="post" action="/logout"><button type="submit">Đăng xuất · Sign out</button></form>'
            )
        else:
            options = "".join(f'<option value="{v}">{label}</option>' for v, label in LEVELS)
            body = (
                "<h1>Cổng dịch vụ công (demo)</h1><p>Đăng nhập bằng tài khoản định danh quốc gia NIXA.<br>"
                "Sign in with your NIXA national identity.</p>"
                '<form method="get" action="/login"><p><label for="acr">Mức độ đảm bảo · Level of assurance</label> '
                f'<select id="acr" name="acr">{options}</select></p>'
                '<p><button type="submit">Đăng nhập bằng NIXA · Sign in with NIXA</button></p></form>'
            )
        return HTMLResponse(PAGE.format(body=body))

    async def login(request: Request) -> Any:
        acr = request.query_params.get("acr") or LEVELS[0][0]
        nonce = secrets.token_urlsafe(16)
        request.session["nonce"] = nonce
        return await oauth.nixa.authorize_redirect(request, f"{base_url}/callback", nonce=nonce, acr_values=acr, ui_locales="vi")

    async def callback(request: Request) -> Any:
        if "error" in request.query_params:
            msg = html.escape(request.query_params.get("error_description") or request.query_params["error"])
            return HTMLResponse(PAGE.format(body=f"<h1>Không đăng nhập được · Sign-in failed</h1><p role='alert'>{msg}</p><p><a href='/'>←</a></p>"),
                                status_code=400)
        token = await oauth.nixa.authorize_access_token(request)  # validates the ID token (signature, iss, aud, nonce)
        userinfo = await oauth.nixa.userinfo(token=token)
        request.session["user"] = {"id_token_claims": dict(token["userinfo"]), "userinfo": dict(userinfo), "id_token": token["id_token"]}
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Any:
        user = request.session.pop("user", None)
        metadata = await oauth.nixa.load_server_metadata()
        if not user:
            return RedirectResponse("/", status_code=303)
        from urllib.parse import urlencode

        state = secrets.token_urlsafe(8)
        query = urlencode({"id_token_hint": user["id_token"], "post_logout_redirect_uri": f"{base_url}/", "state": state})
        return RedirectResponse(f"{metadata['end_session_endpoint']}?{query}", status_code=303)

    app = Starlette(routes=[Route("/", home), Route("/login", login), Route("/callback", callback), Route("/logout", logout, methods=["POST"])])
    app.add_middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32), session_cookie="demo_portal", same_site="lax")
    return app
