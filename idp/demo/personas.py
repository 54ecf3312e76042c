"""The demo's side of the sandbox personas (connectors/personas.py): NIXA's own accounts seeded
from the list, and the list as the sandbox page shows it."""

from __future__ import annotations

import html
import re
from typing import Any

from markupsafe import Markup

from connectors.personas import LOCAL_ACCOUNTS, PERSONAS, Persona, outcome, steps


def seed_local_accounts(nixa: Any) -> None:
    """The personas' NIXA accounts, each attached to the Person of its national ID (idempotent:
    the demo seeds at every start)."""
    from connectors.telecom.phone import normalize_msisdn

    from idp.identity import factors

    for account in LOCAL_ACCOUNTS:
        c = account.citizen
        person_id = nixa.people.add_local_account(account.username, account.password, {
            "name": c.full_name, "family_name": c.family_name, "given_name": c.given_name, "birthdate": c.date_of_birth,
            "gender": c.sex, "email": account.email, "address": c.residence,
            **({"phone_number": normalize_msisdn(c.phone)} if c.phone else {}),
        }, national_id=c.pin)
        if account.totp_secret:
            factors.seed_demo_totp(nixa, person_id, account.totp_secret)


_CODE = re.compile(r"`([^`]+)`")
_EMPHASIS = re.compile(r"\*([^*]+)\*")


def as_html(text: str) -> Markup:
    """The Markdown the steps are written in (code spans, emphasis) as safe HTML."""
    escaped = html.escape(text, quote=False)
    return Markup(_EMPHASIS.sub(r"<em>\1</em>", _CODE.sub(r"<code>\1</code>", escaped)))


def page_rows(lang: str) -> list[dict[str, Any]]:
    def row(p: Persona) -> dict[str, Any]:
        return {"key": p.key, "name": p.name, "method": p.method, "about": p.about_vi if lang == "vi" else p.about_en,
                "level": p.level, "refusal": p.refusal, "outcome": outcome(p, lang), "steps": [as_html(s) for s in steps(p, lang)]}

    return [row(p) for p in PERSONAS]
