"""Telling the citizen what happened to their identity: an SMS to the phone the population
registry has on record (through the operator's SMS API connector, throttled like every send).
A notice that cannot be sent is audited and never blocks what it reports."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from typing import Any

from connectors.base import ConnectorError

KNOWN_DEVICE_TTL = 365 * 86400


def phone_on_record(nixa: Any, person_id: str) -> str | None:
    """Only a number the registry verified: a self-asserted or upstream number is never told."""
    phone = nixa.people.attributes(person_id).get("phone_number")
    registries = {e.id for e in nixa.connectors.entries() if e.type == "population"}
    return str(phone.value) if phone is not None and phone.source in registries else None


def notify(nixa: Any, person_id: str, kind: str, text: str, *, ip: str | None = None, **data: Any) -> bool:
    """Send `text` (unaccented Vietnamese / English: one GSM-7 SMS) to the phone on record."""
    phone = phone_on_record(nixa, person_id)
    sender = next((e for e in nixa.connectors.entries() if hasattr(e.instance, "send_notice")), None)
    if phone is None or sender is None:
        nixa.events.emit("notification.failed", person_id=person_id, ip=ip,
                         data={"kind": kind, "reason": "no_phone_on_record_or_sender", **data})
        return False
    try:
        # Not charged to the client's address: a notice follows a successful sign-in or link and
        # goes to the person's own phone; its destination and the global limits still apply.
        sender.instance.send_notice(phone, text)
    except ConnectorError as err:
        nixa.events.emit("notification.failed", person_id=person_id, ip=ip, data={"kind": kind, "reason": err.code, **data})
        return False
    nixa.events.emit("notification.sent", person_id=person_id, ip=ip, data={"kind": kind, "channel": sender.id, **data})
    return True


def unaccented(text: str) -> str:
    """Vietnamese without diacritics keeps an SMS in GSM-7 (160 characters a segment)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def when(nixa: Any) -> str:
    return time.strftime("%H:%M %d/%m/%Y", time.localtime(nixa.clock()))


def new_link(nixa: Any, person_id: str, connector_id: str, ip: str | None) -> None:
    linked = nixa.connectors.entry(connector_id)
    name = unaccented((linked.display_name_en if linked else "") or connector_id)
    at = when(nixa)
    notify(nixa, person_id, "identity.linked",
           f"NIXA: {name} vua duoc lien ket voi so dinh danh cua ban luc {at}. Neu khong phai ban, hay khoa ngay. "
           f"/ {name} was linked to your ID at {at}. Not you? Lock it now.", ip=ip, connector=connector_id)


def sign_in_from_new_device(nixa: Any, person_id: str, browser: str | None, ip: str | None) -> None:
    """The first sign-in of this person from this browser (NIXA's browser-binding cookie)."""
    if not browser:
        return
    key = "known-device:" + hashlib.sha256(f"{person_id}\x00{browser}".encode()).hexdigest()
    if not nixa.store.add(key, 1, KNOWN_DEVICE_TTL):
        return
    at = when(nixa)
    notify(nixa, person_id, "login.new_device",
           f"NIXA: Tai khoan dinh danh cua ban vua dang nhap tren mot thiet bi moi luc {at}. Neu khong phai ban, hay khoa ngay. "
           f"/ Your ID signed in on a new device at {at}. Not you? Lock it now.", ip=ip)


def consent_granted(nixa: Any, person_id: str, client_name: str, ip: str | None) -> None:
    at = when(nixa)
    notify(nixa, person_id, "consent.granted",
           f"NIXA: Ban vua dong y chia se thong tin voi {unaccented(client_name)} luc {at}. "
           f"/ You agreed to share your data with {unaccented(client_name)} at {at}.",
           ip=ip)


def passkey_registered(nixa: Any, person_id: str, name: str, ip: str | None) -> None:
    """A new passkey signs this person in from now on: they must hear of one they did not add."""
    at = when(nixa)
    label = unaccented(name)[:30]
    notify(nixa, person_id, "passkey.registered",
           f"NIXA: Khoa truy cap \"{label}\" vua duoc them vao tai khoan cua ban luc {at}. Neu khong phai ban, hay go ngay. "
           f"/ Passkey \"{label}\" was added to your ID at {at}. Not you? Remove it now.", ip=ip)
