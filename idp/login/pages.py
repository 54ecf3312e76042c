"""Rendering: Jinja2 pages in the person's language, browser-binding and session cookies."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp.i18n import Translator, pick_language
from idp.login.session import BROWSER_COOKIE, SESSION_COOKIE, cookie_name

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


def translator(request: Request, ui_locales: str | None = None) -> Translator:
    explicit = request.query_params.get("lang") if "lang" in request.query_params else request.cookies.get("nixa_lang")
    return Translator(pick_language(ui_locales, request.headers.get("accept-language"), explicit))


def lang_url(request: Request, t: Translator) -> str | None:
    other = "en" if t.lang == "vi" else "vi"
    if request.method != "GET":
        # The answer to a form: switching reloads the sign-in step it belongs to (never the POST
        # URL as a GET, a "bad request"); other forms' answers offer no switch.
        step = re.match(r"^/interaction/[A-Za-z0-9_-]+", request.url.path)
        return f"{step.group()}?{urlencode({'lang': other})}" if step else None
    query = dict(request.query_params)
    query["lang"] = other
    return f"{request.url.path}?{urlencode(query)}"


def render(request: Request, template: str, t: Translator, status: int = 200, **ctx: Any) -> Response:
    response = templates.TemplateResponse(request, template, {"t": t, "lang_url": lang_url(request, t), **ctx}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if "lang" in request.query_params and request.query_params["lang"] in ("vi", "en"):
        response.set_cookie("nixa_lang", request.query_params["lang"], max_age=365 * 86400, httponly=True, samesite="lax", path="/")
    return response


def message(request: Request, t: Translator, key: str, status: int = 400, *, is_error: bool = True, back_url: str | None = None,
            title_key: str = "error_title", **kw: Any) -> Response:
    from idp.oidc.errors import note_page
    from idp.ops import request_id

    if is_error:
        note_page(key)
    return render(request, "message.html", t, status=status, title=t(title_key), message=t(key, **kw), is_error=is_error,
                  back_url=back_url, reference=request_id.get())


def rate_limited_text(t: Translator, seconds: int) -> str:
    """How long to wait, as a person reads it: seconds under a minute and a half, else minutes."""
    if seconds >= 90:
        return t("rate_limited_minutes", minutes=-(-seconds // 60))
    return t("rate_limited", seconds=seconds)


def nixa_of(request: Request) -> Any:
    return request.app.state.nixa


def browser_id(request: Request) -> str | None:
    secure = nixa_of(request).settings.secure_cookies
    value = request.cookies.get(cookie_name(BROWSER_COOKIE, secure))
    return value if value and len(value) <= 64 else None


def ensure_browser_id(request: Request) -> tuple[str, bool]:
    current = browser_id(request)
    return (current, False) if current else (secrets.token_urlsafe(24), True)


def set_cookie(response: Response, request: Request, base: str, value: str, max_age: int | None) -> None:
    secure = nixa_of(request).settings.secure_cookies
    response.set_cookie(cookie_name(base, secure), value, max_age=max_age, httponly=True, secure=secure, samesite="lax", path="/")


def delete_cookie(response: Response, request: Request, base: str) -> None:
    secure = nixa_of(request).settings.secure_cookies
    response.delete_cookie(cookie_name(base, secure), path="/", secure=secure, httponly=True, samesite="lax")


def session_cookie(request: Request) -> str | None:
    secure = nixa_of(request).settings.secure_cookies
    return request.cookies.get(cookie_name(SESSION_COOKIE, secure))


def redirect(url: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response
