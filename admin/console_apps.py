"""The console's agency apps: list, onboard (the secret shown once), edit, disable, enable,
delete, rotate the secret with an overlap; the permissions of the admin API's /clients routes
(clients.read, clients.write) and its service, admin/apps.py AgencyApps (the validation of
`nixa clients import`). A refused form comes back with the reason and the operator's input."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from admin.apps import AgencyApps
from admin.console import CONSOLE_PATH, Visit, get_page, known_notice, notice_page, page, post_action
from admin.service import AdminRefused
from idp.login.pages import redirect
from idp.oidc.metadata import LIFETIMES

APPS = CONSOLE_PATH + "/apps"
GRANTS = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
OVERLAPS = (0, 3600, 86400, 7 * 86400)  # seconds the old secret stays valid beside a new one


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def metadata_from_form(form: dict[str, str], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """RFC 7591 metadata from the app form, over the current metadata for an edit (the fields
    the form does not show are kept). The services validate it; here only the form's own
    shapes are checked (a lifetime is whole seconds)."""
    md: dict[str, Any] = dict(current or {})
    md.update({
        "client_id": (form.get("client_id") or md.get("client_id") or "").strip(),
        "client_name": (form.get("client_name") or "").strip(),
        "redirect_uris": _lines(form.get("redirect_uris")),
        "grant_types": [g for g in GRANTS if form.get(f"grant_{g}")],
        "scope": " ".join((form.get("scope") or "").split()),
        "token_endpoint_auth_method": form.get("token_endpoint_auth_method", ""),
    })
    for key, value in (("post_logout_redirect_uris", _lines(form.get("post_logout_redirect_uris"))),
                       ("backchannel_logout_uri", (form.get("backchannel_logout_uri") or "").strip()),
                       ("jwks_uri", (form.get("jwks_uri") or "").strip())):
        if value:
            md[key] = value
        else:
            md.pop(key, None)
    if md.get("backchannel_logout_uri"):
        md["backchannel_logout_session_required"] = True
    else:
        md.pop("backchannel_logout_session_required", None)
    for flag in ("nixa_national_id_authorized", "nixa_first_party"):
        if form.get(flag):
            md[flag] = True
        else:
            md.pop(flag, None)
    for key, (low, high) in LIFETIMES.items():
        raw = (form.get(key) or "").strip()
        if not raw:
            md.pop(key, None)
        elif not raw.isdigit():
            raise AdminRefused(400, "invalid_client_metadata", f"{key}: whole seconds from {low} to {high}")
        else:
            md[key] = int(raw)
    if not md["client_name"]:
        md.pop("client_name")
    return md


def _app_form(v: Visit, *, app: dict[str, Any] | None, form: dict[str, str] | None = None, error: str | None = None,
              status: int = 200) -> Response:
    md = (app or {}).get("metadata", {})
    if form is None:  # the form as the app is now
        form = {"client_id": md.get("client_id", ""), "client_name": md.get("client_name", ""),
                "redirect_uris": "\n".join(md.get("redirect_uris", [])),
                "post_logout_redirect_uris": "\n".join(md.get("post_logout_redirect_uris", [])),
                "backchannel_logout_uri": md.get("backchannel_logout_uri", ""), "jwks_uri": md.get("jwks_uri", ""),
                "scope": md.get("scope", "openid profile"),
                "token_endpoint_auth_method": md.get("token_endpoint_auth_method", "client_secret_basic"),
                **{f"grant_{g}": "on" for g in md.get("grant_types", ["authorization_code"])},
                **{k: "on" for k in ("nixa_national_id_authorized", "nixa_first_party") if md.get(k)},
                **{k: str(md[k]) for k in LIFETIMES if k in md}}
    return page(v, "console_app_form.html", status, app=app, form=form, error=error, grants=GRANTS, auth_methods=AUTH_METHODS,
                lifetimes=LIFETIMES)


def _app_page(v: Visit, client_id: str, *, notice: str | None = None, error: str | None = None, secret: str | None = None,
              status: int = 200, **extra: Any) -> Response:
    try:
        app = AgencyApps(v.nixa).get(client_id)
    except AdminRefused:
        return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
    return page(v, "console_app.html", status, app=app, notice=notice, error=error, secret=secret, overlaps=OVERLAPS, **extra)


def install_apps(router: APIRouter) -> None:
    @router.get(APPS)
    @get_page("clients.read")
    def apps_list(v: Visit) -> Response:
        return page(v, "console_apps.html", apps=AgencyApps(v.nixa).list(), notice=known_notice(v, "console_notice_app_"))

    @router.get(APPS + "/new")
    @get_page("clients.write")
    def app_new(v: Visit) -> Response:
        return _app_form(v, app=None)

    @router.post(APPS + "/new")
    @post_action("clients.write")
    def app_create(v: Visit, form: dict[str, str]) -> Response:
        try:
            created, secret = AgencyApps(v.nixa).create(v.actor(), metadata_from_form(form))
        except AdminRefused as exc:
            return _app_form(v, app=None, form=form, error=exc.description, status=exc.status)
        return page(v, "console_app.html", 201, app=created, secret=secret, notice="created", overlaps=OVERLAPS)

    @router.get(APPS + "/{client_id}")
    @get_page("clients.read")
    def app_view(v: Visit, client_id: str) -> Response:
        return _app_page(v, client_id, notice=known_notice(v, "console_notice_app_"))

    @router.get(APPS + "/{client_id}/edit")
    @get_page("clients.write")
    def app_edit(v: Visit, client_id: str) -> Response:
        try:
            app = AgencyApps(v.nixa).get(client_id)
        except AdminRefused:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        return _app_form(v, app=app)

    @router.post(APPS + "/{client_id}/edit")
    @post_action("clients.write")
    def app_update(v: Visit, form: dict[str, str], client_id: str) -> Response:
        apps = AgencyApps(v.nixa)
        try:
            app = apps.get(client_id)
        except AdminRefused:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        try:
            md = metadata_from_form({**form, "client_id": client_id}, app["metadata"])
            apps.update(v.actor(), client_id, md, force=bool(form.get("force")))
        except AdminRefused as exc:
            return _app_form(v, app=app, form=form, error=exc.description, status=exc.status)
        return redirect(f"{APPS}/{client_id}?notice=updated")

    def app_action(name: str, act: Any) -> None:
        @router.post(APPS + "/{client_id}/" + name)
        @post_action("clients.write")
        def run(v: Visit, form: dict[str, str], client_id: str) -> Response:
            try:
                return act(v, form, client_id)
            except AdminRefused as exc:
                return _app_page(v, client_id, error=exc.description, status=exc.status)

        run.__name__ = f"app_{name}"

    def disable(v: Visit, form: dict[str, str], client_id: str) -> Response:
        AgencyApps(v.nixa).set_disabled(v.actor(), client_id, True)
        return redirect(f"{APPS}/{client_id}?notice=disabled")

    def enable(v: Visit, form: dict[str, str], client_id: str) -> Response:
        AgencyApps(v.nixa).set_disabled(v.actor(), client_id, False)
        return redirect(f"{APPS}/{client_id}?notice=enabled")

    def delete(v: Visit, form: dict[str, str], client_id: str) -> Response:
        if not form.get("confirm"):
            raise AdminRefused(400, "invalid_request", v.t("console_delete_confirm_needed"))
        AgencyApps(v.nixa).delete(v.actor(), client_id)
        return redirect(f"{APPS}?notice=deleted")

    def rotate(v: Visit, form: dict[str, str], client_id: str) -> Response:
        raw = form.get("overlap", "0")
        overlap = int(raw) if raw.isdigit() and int(raw) in OVERLAPS else -1
        secret, expires = AgencyApps(v.nixa).rotate_secret(v.actor(), client_id, overlap)
        return _app_page(v, client_id, notice="rotated", secret=secret, previous_expires=expires)

    for name, act in (("disable", disable), ("enable", enable), ("delete", delete), ("secret", rotate)):
        app_action(name, act)
