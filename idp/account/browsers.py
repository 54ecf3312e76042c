"""A short human name for the browser behind a session ("Chrome", "Linux") from its User-Agent,
and where its address is (a kind of network; a city when the operator gives NIXA a city
database). Only for the citizen to recognise their own devices: never used to decide anything."""

from __future__ import annotations

import ipaddress
import logging

# Order matters: Edge, Opera and Cốc Cốc also say "Chrome"; Chrome also says "Safari".
_BROWSERS = (
    ("coc_coc_browser", "Cốc Cốc"),
    ("Edg", "Edge"),
    ("OPR/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Zalo", "Zalo"),
    ("Firefox/", "Firefox"),
    ("FxiOS", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
# Android says "Linux" too, iOS says "like Mac OS X".
_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> tuple[str | None, str | None]:
    """(browser, operating system); None for what cannot be told."""
    ua = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    return browser, system


def network(ip: str | None) -> str:
    """Where an address is, as far as NIXA can tell without a geolocation database: "this
    device" (loopback), "private" (an office or home network, or a proxy), "internet", or
    "unknown". A key of the page's text, never used to decide anything."""
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return "unknown"
    if address.is_loopback:
        return "this_device"
    if address.is_private or address.is_link_local:
        return "private"
    return "internet"


class Places:
    """The approximate place of an address from a MaxMind-format city database (maxminddb), opened
    on first use; without one (or for an address it does not know) there is no place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader = None

    def near(self, ip: str | None) -> dict[str, str] | None:
        """{"vi": "Hà Nội, Việt Nam", "en": "Hanoi, Vietnam"}, or None."""
        if not self.path or network(ip) != "internet":
            return None
        if self._reader is None:
            import maxminddb

            try:
                self._reader = maxminddb.open_database(self.path)
            except (OSError, maxminddb.InvalidDatabaseError):
                logging.getLogger("nixa.account").exception("NIXA_GEOIP_DATABASE %s cannot be read: no places shown", self.path)
                self.path = ""
                return None
        record = self._reader.get(str(ip).strip())
        if not isinstance(record, dict):
            return None
        names = [record.get(k, {}).get("names", {}) for k in ("city", "country")]
        place = {lang: ", ".join(n.get(lang) or n.get("en", "") for n in names if n) for lang in ("vi", "en")}
        return place if place["en"] or place["vi"] else None
