"""Which sign-in methods a pending request may use (only those reaching its level), their ids
(what the pending request records as offered), and the canonical identifier each method's
throttle is keyed on."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from connectors.base import (
    CertificateConnector,
    ChallengeConnector,
    FormField,
    GuardedConnector,
    LevelOfAssurance,
    PasswordConnector,
    RedirectConnector,
    canonical_username,
)
from connectors.population.cccd import normalize_pin
from connectors.telecom.phone import normalize_msisdn
from idp.identity import factors, passkeys
from idp.identity.linking import PROOF_TYPES

LOCAL_METHOD = "local"


def method_id(connector_id: str, capability: str) -> str:
    """The id a method is offered (and checked) under: `<connector>-<capability>`; a
    password-style connector's id is the connector id itself, the local accounts' `local`."""
    return connector_id if capability == "password" else f"{connector_id}-{capability}"


# The canonical form of each identifying form field: the same functions the connectors use for
# their own lookups, so a variant of an identifier (spaces, full-width or other Unicode digits,
# case) is the same account to the throttle as to the source.
CANONICAL: dict[str, Callable[[str], str]] = {"pin": normalize_pin, "phone": normalize_msisdn, "username": canonical_username}


def canonical_identifier(form: dict[str, str], field_names: list[str]) -> str | None:
    """The canonical identifier in a submitted form, or None when it is not a valid one."""
    for name in field_names:
        canon = CANONICAL.get(name)
        if canon is not None:
            try:
                return canon(form.get(name, ""))
            except ValueError:
                return None
    return None


def _fields(fields: Any, t: Any, values: dict[str, str] | None = None) -> list[dict]:
    return [
        {"name": f.name, "label": f.label_vi if t.lang == "vi" else f.label_en, "kind": f.kind, "autocomplete": f.autocomplete,
         "pattern": f.pattern, "value": (values or {}).get(f.name)}
        for f in fields
    ]


def combine_dates(form: dict[str, str]) -> dict[str, str]:
    """A date typed as day, month and year (`name__day`, `name__month`, `name__year`: the page
    never uses a date picker, whose order follows the browser's locale, not the page's) becomes
    `name` = YYYY-MM-DD; an impossible date becomes `name` = "invalid" (the method refuses it)."""
    out = dict(form)
    for key in [k for k in form if k.endswith("__day")]:
        name = key[: -len("__day")]
        parts = [form.get(f"{name}__{p}", "").strip() for p in ("year", "month", "day")]
        for p in ("day", "month", "year"):
            out.pop(f"{name}__{p}", None)
        try:
            year, month, day = (int(p) for p in parts)
            out[name] = dt.date(year, month, day).isoformat() if 1900 <= year <= 2100 else "invalid"
        except ValueError:
            out[name] = "invalid"
    return out


def is_staff(entry: Any) -> bool:
    """A staff directory (agency officials), shown on its own entry, never among citizen methods:
    every LDAP connector unless configured `audience: citizen`, and any connector configured
    `audience: staff`."""
    return entry.config.get("audience", "staff" if entry.type == "ldap" else "citizen") == "staff"


def challenge_level(entry: Any) -> int:
    return int(LevelOfAssurance.parse(entry.config.get("challenge_loa", entry.loa)))


def connector_methods(nixa: Any, required: int, t: Any, proofing: bool = False) -> list[dict]:
    """One entry per (connector, capability) whose level reaches `required`. While proofing a
    national ID, only the methods that prove one (linking.py) are offered: the registry's
    challenge (code to the phone on record) and certificates."""
    out = []
    for entry in nixa.connectors.entries():
        if proofing and entry.type not in PROOF_TYPES:
            continue
        c = entry.instance
        label = entry.display_name_vi if t.lang == "vi" else entry.display_name_en
        label = label or entry.id
        staff = is_staff(entry)
        first = len(out)
        if isinstance(c, ChallengeConnector) and challenge_level(entry) >= required:
            out.append({"id": method_id(entry.id, "challenge"), "connector": entry.id, "kind": "form", "loa": challenge_level(entry),
                        "label": label, "action_suffix": f"challenge/{entry.id}", "fields": _fields(c.challenge_fields, t),
                        "button": t("continue"), "staff": staff})
        if isinstance(c, PasswordConnector) and not proofing and int(entry.loa) >= required:
            out.append({"id": method_id(entry.id, "password"), "connector": entry.id, "kind": "form", "loa": int(entry.loa),
                        "label": label, "action_suffix": f"password/{entry.id}", "fields": _fields(c.fields, t), "staff": staff})
        if isinstance(c, RedirectConnector) and not proofing and int(entry.loa) >= required:
            hint_fields = list(getattr(c, "hint_fields", ()))
            if not hint_fields and any(k in str(entry.config.get("login_hint_format", "")) for k in ("msisdn", "e164")):
                hint_fields = [FormField("login_hint", "Số điện thoại di động", "Mobile phone number", "tel", "tel")]
            out.append({"id": method_id(entry.id, "redirect"), "connector": entry.id, "kind": "link", "loa": int(entry.loa),
                        "label": label, "action_suffix": f"redirect/{entry.id}", "fields": _fields(hint_fields, t),
                        "button": t("continue"), "staff": staff})
        if isinstance(c, CertificateConnector) and int(entry.loa) >= required:
            out.append({"id": method_id(entry.id, "cert"), "connector": entry.id, "kind": "link", "loa": int(entry.loa), "label": label,
                        "action_suffix": f"certificate/{entry.id}", "fields": [], "button": t("continue"), "staff": staff})
        # A source this worker currently fails fast (its circuit breaker is open) is shown as
        # unavailable, without its form: the other methods are there to use instead.
        unavailable = isinstance(c, GuardedConnector) and c.circuit_open()
        for m in out[first:]:
            m["unavailable"] = unavailable
    return out


_USERNAME_HINT = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


def _username_hint(hint: str | None) -> str | None:
    """login_hint (OIDC Core §3.1.2.1) prefills the username when it looks like one."""
    return hint if hint and _USERNAME_HINT.match(hint) else None


def passkey_method(pending: Any, t: Any, required: int) -> dict:
    """Usernameless sign-in with a passkey (idp/identity/passkeys.py). A passkey earns the level
    of the session that registered it, so it is offered only where another method reaches the
    level (no session could have bound a passkey above every method there is), at the level
    asked; the credential's own level is checked after the assertion."""
    return {"id": passkeys.METHOD, "kind": "passkey", "loa": max(int(required), int(LevelOfAssurance.LOW)), "label": t("method_passkey"),
            "action": f"/interaction/{pending.rid}/passkey", "options": f"/interaction/{pending.rid}/passkey/options", "fields": [],
            "button": t("passkey_sign_in"), "staff": False}


def _local_method(pending: Any, t: Any, loa: int) -> dict:
    """The NIXA password: the whole sign-in at low; at substantial, the first of two steps
    (a second factor follows, idp/login/totp.py)."""
    return {
        "id": LOCAL_METHOD, "kind": "form", "loa": loa, "label": t("method_local" if loa <= LevelOfAssurance.LOW else "method_local_totp"),
        "action": f"/interaction/{pending.rid}/local",
        "fields": [
            {"name": "username", "label": t("username"), "kind": "text", "autocomplete": "username", "pattern": None,
             "value": _username_hint(pending.params.get("login_hint"))},
            {"name": "password", "label": t("password"), "kind": "password", "autocomplete": "current-password", "pattern": None,
             "value": None},
        ],
        "staff": False,
    }


def password_step(pending: Any) -> dict | None:
    """This request's NIXA password step (the first factor), if it was done."""
    return next((s for s in reversed(pending.steps) if s["method"] == LOCAL_METHOD), None)


def second_factor_methods(nixa: Any, pending: Any, t: Any) -> list[dict]:
    """After the NIXA password in this very request, the second step that lifts it to
    substantial: offered only to the person the password proved, only with a confirmed
    authenticator app (recovery codes stand in for it)."""
    step = password_step(pending)
    if step is None or pending.proofing or pending.proof_level > factors.LEVEL:
        return []
    out = []
    for method in factors.second_factors(nixa, step["person_id"]):
        totp = method == factors.TOTP_METHOD
        out.append({"id": method, "kind": "form", "loa": factors.LEVEL, "label": t("method_totp" if totp else "method_recovery_code"),
                    "action": f"/interaction/{pending.rid}/{method}", "button": t("continue"), "staff": False,
                    "fields": [{"name": "code", "label": t("totp_code" if totp else "recovery_code"), "kind": "text",
                                "autocomplete": "one-time-code" if totp else "off", "pattern": "[0-9]{6}" if totp else None,
                                "value": None}],
                    "help_url": "/account/recover", "help_label": t("lost_device")})
    return out


def available_methods(nixa: Any, pending: Any, t: Any, csrf: str) -> list[dict]:
    proofing = bool(pending.proofing)
    required = pending.proof_level
    methods: list[dict] = []
    if not proofing and nixa.settings.local_accounts and required <= LevelOfAssurance.LOW:
        methods.append(_local_method(pending, t, int(LevelOfAssurance.LOW)))
    for m in connector_methods(nixa, required, t, proofing):
        m["action"] = f"/interaction/{pending.rid}/{m.pop('action_suffix')}"
        methods.append(m)
    if not proofing and nixa.settings.local_accounts and required == factors.LEVEL:
        methods.append(_local_method(pending, t, factors.LEVEL))
    if methods and not proofing:
        methods.append(passkey_method(pending, t, required))
    # The recommended method first: the least effort that reaches the level asked (the lowest
    # sufficient level), then the operator's order of the connectors (stable sort).
    methods.sort(key=lambda m: (bool(m.get("unavailable")), m["loa"]))  # an unavailable source last, never recommended
    return second_factor_methods(nixa, pending, t) + methods
