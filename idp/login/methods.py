"""Which sign-in methods a pending request may use (only those reaching its level), and the
throttle every secret-checking path goes through."""

from __future__ import annotations

import re
from typing import Any

from connectors.base import (
    CertificateConnector,
    ChallengeConnector,
    FormField,
    LevelOfAssurance,
    PasswordConnector,
    RedirectConnector,
)


def _fields(fields: Any, t: Any, values: dict[str, str] | None = None) -> list[dict]:
    return [
        {"name": f.name, "label": f.label_vi if t.lang == "vi" else f.label_en, "kind": f.kind, "autocomplete": f.autocomplete,
         "pattern": f.pattern, "value": (values or {}).get(f.name)}
        for f in fields
    ]


PROOFING_TYPES = ("population", "certificate")


def connector_methods(nixa: Any, required: int, t: Any, proofing: bool = False) -> list[dict]:
    """One entry per (connector, capability) whose level reaches `required`. While proofing a
    national ID, only the sources that prove it (registry, certificate) are offered."""
    out = []
    for entry in nixa.connectors.entries():
        if proofing and entry.type not in PROOFING_TYPES:
            continue
        c = entry.instance
        label = entry.display_name_vi if t.lang == "vi" else entry.display_name_en
        label = label or entry.id
        # A connector can reach a higher level through a challenge (registry + SMS OTP) than
        # through its password-style check alone: offer each capability at its own level.
        challenge_loa = int(LevelOfAssurance.parse(entry.config.get("challenge_loa", entry.loa)))
        if isinstance(c, ChallengeConnector) and challenge_loa >= required:
            out.append({"id": f"{entry.id}-challenge", "connector": entry.id, "kind": "form", "loa": challenge_loa,
                        "label": label if not isinstance(c, PasswordConnector) else f"{label} ({t('with_sms_code')})",
                        "action_suffix": f"challenge/{entry.id}", "fields": _fields(c.challenge_fields, t),
                        "button": t("continue")})
        if isinstance(c, PasswordConnector) and int(entry.loa) >= required:
            out.append({"id": entry.id, "connector": entry.id, "kind": "form", "loa": int(entry.loa),
                        "label": label if not isinstance(c, ChallengeConnector) else f"{label} ({t('knowledge_only')})",
                        "action_suffix": f"password/{entry.id}", "fields": _fields(c.fields, t)})
        if isinstance(c, RedirectConnector) and int(entry.loa) >= required:
            hint_fields = list(getattr(c, "hint_fields", ()))
            if not hint_fields and any(k in str(entry.config.get("login_hint_format", "")) for k in ("msisdn", "e164")):
                hint_fields = [FormField("login_hint", "Số điện thoại di động", "Mobile phone number", "tel", "tel")]
            out.append({"id": f"{entry.id}-redirect", "connector": entry.id, "kind": "link", "loa": int(entry.loa), "label": label,
                        "action_suffix": f"redirect/{entry.id}", "fields": _fields(hint_fields, t), "button": t("continue")})
        if isinstance(c, CertificateConnector) and int(entry.loa) >= required:
            out.append({"id": f"{entry.id}-cert", "connector": entry.id, "kind": "link", "loa": int(entry.loa), "label": label,
                        "action_suffix": f"certificate/{entry.id}", "fields": [], "button": t("continue")})
    return out


_USERNAME_HINT = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


def _username_hint(hint: str | None) -> str | None:
    """login_hint (OIDC Core §3.1.2.1) prefills the username when it looks like one."""
    return hint if hint and _USERNAME_HINT.match(hint) else None


def available_methods(nixa: Any, pending: Any, t: Any, csrf: str) -> list[dict]:
    proofing = bool(pending.proofing)
    required = int(LevelOfAssurance.LOW) if proofing else pending.required_loa
    methods: list[dict] = []
    if not proofing and nixa.settings.local_accounts and required <= LevelOfAssurance.LOW:
        methods.append({
            "id": "local", "kind": "form", "loa": int(LevelOfAssurance.LOW), "label": t("method_local"),
            "action": f"/interaction/{pending.rid}/local",
            "fields": [
                {"name": "username", "label": t("username"), "kind": "text", "autocomplete": "username", "pattern": None,
                 "value": _username_hint(pending.params.get("login_hint"))},
                {"name": "password", "label": t("password"), "kind": "password", "autocomplete": "current-password", "pattern": None,
                 "value": None},
            ],
        })
    for m in connector_methods(nixa, required, t, proofing):
        m["action"] = f"/interaction/{pending.rid}/{m.pop('action_suffix')}"
        methods.append(m)
    methods.sort(key=lambda m: -m["loa"])
    return methods


def throttle(nixa: Any, keys: list[str], *, peek: bool = False) -> int:
    """Count a failure against every key (account, address); with peek, only tell whether any
    key is over its limit. Returns seconds to wait, 0 when free."""
    limit = nixa.settings.login_attempts_per_window
    window = nixa.settings.login_window
    wait = 0
    for key in keys:
        name = f"throttle:{key}"
        if peek:
            count = nixa.store.get(name) or 0
        else:
            count = nixa.store.incr(name, window)
        factor = 10 if key.startswith("ip:") else 1  # an address may be shared (NAT): more slack
        if int(count) >= limit * factor:
            wait = max(wait, int(nixa.store.ttl(name) or window))
    return wait
